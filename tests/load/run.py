"""`make load`: the cluster harness (Redis, 3 Daphne pods, a Celery worker, nginx), then Locust
headless against nginx with tests/load/locustfile.py, then everything stopped.

    .venv/bin/python -m tests.load.run [--users 20] [--seconds 60] [--postgres URL] [--out DIR]

Before the run it creates LOAD_ANALYSTS analyst accounts (load-1 ... load-N, so each simulated
analyst has its own rate limit, as people do) and an ingest API key for RetailMax. The report goes
to `--out` (default var/load/): report.html, stats*.csv, and Locust's summary on stdout.
"""

import argparse
import csv
import os
import subprocess
import sys
from pathlib import Path

from tests.integration.cluster import Cluster
from tests.integration.server import REPO_ROOT

ANALYSTS = 100
PREPARE = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from threats import apikeys, services
group = Group.objects.get(name="analyst")
for n in range(1, {count} + 1):
    user, created = get_user_model().objects.get_or_create(username=f"load-{{n}}")
    if created:
        user.set_password("load-password")
        user.save()
    user.groups.add(group)
_, raw = apikeys.issue("load test", ["ingest"], customer=services.customer_for_name("retailmax"))
print(raw)
"""


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=20, help="analysts before the burst (4x during it)")
    parser.add_argument("--seconds", type=int, default=60)
    parser.add_argument("--postgres", default="", help="Postgres server URL (a fresh database); default SQLite")
    parser.add_argument("--out", default=str(REPO_ROOT / "var" / "load"))
    args = parser.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    with Cluster(pods=3, beat=False, postgres_url=args.postgres or None) as cluster:
        key = cluster.manage("shell", "-c", PREPARE.format(count=ANALYSTS)).strip().splitlines()[-1]
        env = {**os.environ, "LOAD_API_KEY": key, "LOAD_USERNAME": "load", "LOAD_PASSWORD": "load-password",
               "LOAD_ANALYSTS": str(ANALYSTS), "LOAD_USERS": str(args.users), "LOAD_SECONDS": str(args.seconds)}
        command = [sys.executable, "-m", "locust", "-f", str(REPO_ROOT / "tests" / "load" / "locustfile.py"),
                   "--headless", "--host", cluster.url, "--html", str(out / "report.html"),
                   "--csv", str(out / "stats"), "--only-summary", "--exit-code-on-error", "0"]
        print(f"Locust against {cluster.url}: {args.users} analysts (x4 in the burst) and ingest clients, "
              f"{args.seconds} s; report in {out}", flush=True)
        finished = subprocess.run(command, env=env, cwd=REPO_ROOT, timeout=args.seconds + 300, check=False)
    print(f"Report: {out / 'report.html'}")
    sys.exit(finished.returncode or _problems(out))


def _problems(out):
    """Exit status 1 when the scenarios themselves broke (a Python exception in a user, or nothing
    sent at all): request failures under load are results, not errors of the run."""
    exceptions = list(csv.DictReader((out / "stats_exceptions.csv").open()))
    total = next((row for row in csv.DictReader((out / "stats_stats.csv").open()) if row["Name"] == "Aggregated"), None)
    for row in exceptions:
        print(f"Exception in the scenarios ({row['Count']}x): {row['Message']}", file=sys.stderr)
    return 1 if exceptions or not total or int(total["Request Count"]) == 0 else 0


if __name__ == "__main__":
    main()
