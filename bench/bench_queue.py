#!/usr/bin/env python3
"""My queue at a million rows (issue 21: ≤ 200 ms p95 at 1,000,000 threats on PostgreSQL).

The same throw-away database as bench/bench_threat_list.py (SQLite in a temp folder, or
`--database-url postgres://...`, created and dropped): `--rows` threats, 8 customers of every tier,
every type, severity and status; then the newest `--recent` are moved into the last four hours, so
SLA clocks run (the queue's time-dependent part) besides the old open threats (static priorities).
Times GET /api/queue through Django's test client: the first page, a later page (cursor), 100 rows,
a customer, assignee=me, a user scoped to two customers, and the /queue/ page (50 rows); for
contrast, one query that ranks every open threat (what threats/queue.py `best` avoids); and the
near-breach check of the beat task (services.warn_near_breach), first and later runs.

Prints a table (median, p95, max) and appends one JSON line to bench/results/queue.jsonl.

    .venv/bin/python bench/bench_queue.py --rows 1000000 --database-url postgres://postgres@127.0.0.1:5432/postgres
"""

import argparse
import datetime
import statistics
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_threat_list import REPO_ROOT, append_result, clean_up, configure, fill  # noqa: E402 - the shared 1M-row set-up

RESULTS = REPO_ROOT / "bench" / "results" / "queue.jsonl"
FOUR_HOURS = 4 * 3600


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="threats to insert (default 1,000,000)")
    parser.add_argument("--recent", type=int, default=5000, help="of them, received in the last 4 h (default 5,000)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per case (default 20)")
    parser.add_argument("--database-url", default="", help="a Postgres server URL; default: SQLite in a temp folder")
    return parser.parse_args()


def make_recent(count):
    """The newest `count` threats received within the last four hours, spread evenly, and analysed
    risk scores on every threat (the list benchmark leaves them empty)."""
    from django.db import connection
    from django.utils import timezone

    from threats.models import Threat

    now = timezone.now()
    newest = list(Threat.objects.order_by("-received_at").values_list("pk", flat=True)[:count])
    step = FOUR_HOURS / max(1, count)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE threats_threat SET risk_score = 5 + (EXTRACT(EPOCH FROM received_at)::bigint % 95)"
                       if connection.vendor == "postgresql" else
                       "UPDATE threats_threat SET risk_score = 5 + (CAST(strftime('%s', received_at) AS INTEGER) % 95)")
    for index, pk in enumerate(newest):
        when = now - datetime.timedelta(seconds=index * step)
        Threat.objects.filter(pk=pk).update(received_at=when, occurred_at=when, acknowledged_at=None)
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE threats_threat" if connection.vendor == "postgresql" else "ANALYZE")


def scoped_user():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from threats.models import Customer, UserAccess

    user = get_user_model().objects.create_user("scoped", password="scoped")
    user.groups.add(Group.objects.get(name="analyst"))
    UserAccess.objects.create(user=user).customers.set(Customer.objects.order_by("name")[:2])
    return user


def timed(client, path, params, repeat):
    samples = []
    for _ in range(repeat + 1):  # the first request warms caches and is not counted
        started = time.perf_counter()
        response = client.get(path, params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (response.status_code, response.content[:300])
    counted = sorted(samples[1:])
    rows = len(response.json()["items"]) if path.startswith("/api/") else response.content.count(b'class="threat-row')
    return {"median_ms": round(statistics.median(counted), 1),
            "p95_ms": round(counted[min(len(counted) - 1, int(0.95 * len(counted)))], 1),
            "max_ms": round(counted[-1], 1), "rows": rows}


def naive_first_page(repeat):
    """For contrast: one query ranking every open threat (what the parts avoid), query only."""
    from django.utils import timezone

    from threats import queue
    from threats.models import Threat

    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        list(queue.ranked(queue.open_threats(Threat.objects.all()), timezone.now()).values_list("pk", flat=True)[:20])
        samples.append((time.perf_counter() - started) * 1000)
    counted = sorted(samples[1:])
    return {"median_ms": round(statistics.median(counted), 1), "max_ms": round(counted[-1], 1), "rows": 20}


def near_breach_check(repeat):
    """The beat task's work (services.warn_near_breach): the first run warns about every threat in
    its window (marks it, records and pushes its event); later runs find those marked."""
    from threats import services

    started = time.perf_counter()
    warned = len(services.warn_near_breach())
    first = round((time.perf_counter() - started) * 1000, 1)
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        services.warn_near_breach()
        samples.append((time.perf_counter() - started) * 1000)
    return {"first_run_ms": first, "warned": warned, "later_run_median_ms": round(statistics.median(samples), 1)}


def third_page_cursor(client):
    cursor = None
    for _ in range(2):
        cursor = client.get("/api/queue", {"limit": 20, **({"cursor": cursor} if cursor else {})}).json()["next_cursor"]
    return cursor


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soc-queue-bench-"))
    database = None
    try:
        database = configure(args, tmp)
        from django.db import connection
        from django.test import Client

        analyst = fill(args.rows)
        make_recent(args.recent)
        client, scoped = Client(), Client()
        client.force_login(analyst)
        scoped.force_login(scoped_user())
        cases = {
            "first page (20)": (client, "/api/queue", {}),
            "third page (cursor)": (client, "/api/queue", {"cursor": third_page_cursor(client)}),
            "limit=100": (client, "/api/queue", {"limit": 100}),
            "customer=retailmax": (client, "/api/queue", {"customer": "retailmax"}),
            "assignee=me": (client, "/api/queue", {"assignee": "me"}),
            "scoped to 2 customers": (scoped, "/api/queue", {}),
            "/queue/ page (50 rows)": (client, "/queue/", {}),
        }
        results = {}
        print(f"{'case':28} {'median':>10} {'p95':>10} {'max':>10}  rows")
        for name, (who, path, params) in cases.items():
            results[name] = r = timed(who, path, params, args.repeat)
            print(f"{name:28} {r['median_ms']:8.1f} ms {r['p95_ms']:8.1f} ms {r['max_ms']:8.1f} ms  {r['rows']}")
        check = near_breach_check(min(args.repeat, 5))
        print(f"near-breach check: first run {check['first_run_ms']} ms ({check['warned']} warned), "
              f"later runs {check['later_run_median_ms']} ms")
        contrast = naive_first_page(min(args.repeat, 5))
        print(f"{'(contrast) one ranking query':28} {contrast['median_ms']:8.1f} ms {'':>10} {contrast['max_ms']:8.1f} ms")
        vendor = connection.vendor
        connection.close()
    finally:
        clean_up(args.database_url, database, tmp)

    append_result(RESULTS, {"database": vendor, "rows": args.rows, "recent": args.recent, "repeat": args.repeat, "cases": results,
            "naive_contrast": contrast, "near_breach_check": check})


if __name__ == "__main__":
    main()
