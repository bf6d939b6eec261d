#!/usr/bin/env python3
"""The threat list at a million rows: keyset pages cost the same on page 1 and page 10,000.

Builds a throw-away database (SQLite in a temp folder, or `--database-url postgres://...` which it
creates and drops), bulk-inserts `--rows` threats (8 customers, every type, severity and status,
received one second apart; no analysis and no events: only what the list reads), then renders
`/threats/` through Django's test client for: the first page, a page in the middle and the last
page (keyset cursors), each filter alone, a filter plus a cursor, and a text search. For contrast
it times the same middle page read with OFFSET, which the list never does.

Prints a table and appends one JSON line to bench/results/threat_list.jsonl.

    .venv/bin/python bench/bench_threat_list.py --rows 1000000
"""

import argparse
import datetime
import json
import os
import platform
import random
import secrets
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
RESULTS = REPO_ROOT / "bench" / "results" / "threat_list.jsonl"
BATCH = 5000


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="threats to insert (default 1,000,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timed renders per case (default 5)")
    parser.add_argument("--database-url", default="", help="a Postgres server URL; default: SQLite in a temp folder")
    return parser.parse_args()


def configure(args, tmp):
    from tests.integration.server import create_postgres_database

    os.environ.update(DJANGO_SETTINGS_MODULE="socproject.settings", DJANGO_SECRET_KEY=secrets.token_hex(16),
                      DJANGO_ALLOWED_HOSTS="testserver", DJANGO_DEBUG="false", ENABLE_AUTO_THREAT_GENERATION="false")
    os.environ.pop("REDIS_URL", None)
    database = None
    if args.database_url:
        database, os.environ["DATABASE_URL"] = create_postgres_database(args.database_url, "bench_list")
    else:
        os.environ["DATABASE_URL"] = f"sqlite:///{tmp}/list.sqlite3"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    return database


def fill(rows):
    from django.contrib.auth import get_user_model
    from django.db import transaction

    from threats import services
    from threats.choices import Severity, Status, ThreatType
    from threats.generator import CUSTOMER_CATALOGUE
    from threats.models import Threat

    analyst = get_user_model().objects.create_superuser("bench", password="bench")
    customers = [services.customer_for_name(name) for name in CUSTOMER_CATALOGUE]
    rng = random.Random(7)
    start = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)
    severities, statuses, types = Severity.values, Status.values, ThreatType.values
    started = time.monotonic()
    for offset in range(0, rows, BATCH):
        batch = []
        for n in range(offset, min(rows, offset + BATCH)):
            when = start + datetime.timedelta(seconds=n)
            batch.append(Threat(
                threat_type=types[n % len(types)], customer=customers[n % len(customers)],
                title=f"Synthetic threat {n} from 198.51.{n % 256}.{(n // 256) % 256}",
                observables=observables(n), rule=f"rule:{5700 + n % 300}",
                occurred_at=when, received_at=when, severity=severities[rng.randrange(4)],
                status=statuses[rng.randrange(6)], requires_human_review=rng.random() < 0.1,
                assignee=analyst if rng.random() < 0.05 else None, analysis_status="completed",
            ))
        with transaction.atomic():
            Threat.objects.bulk_create(batch)
        if offset // BATCH % 20 == 0:
            print(f"\r  inserted {offset + len(batch):,} / {rows:,}", end="", flush=True)
    print(f"\r  inserted {rows:,} threats in {time.monotonic() - started:.0f} s")
    # A table filled over months has statistics (autovacuum); one filled in minutes not yet.
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("ANALYZE threats_threat" if connection.vendor == "postgresql" else "ANALYZE")
    return analyst


def observables(n):
    """What the pivots read: ~250 threats per address, user or host, 3 per hash, 100 per domain."""
    found = {"src_ip": f"10.{n % 4000 // 250}.{n % 250}.1", "dst_ip": f"192.0.2.{n % 200}",
             "user": f"user{n % 4000}", "host": f"host-{n % 4000:04d}"}
    if n % 3 == 0:
        found["hashes"] = [f"{n // 9:064x}"]
    if n % 10 == 0:
        found["domains"] = [f"cdn{n // 1000}.Example.com"]
    return found


def cursor_at(position):
    """The keyset cursor of the row at `position` (newest first). Setup only: it uses OFFSET."""
    from threats.models import Threat
    from threats.paging import encode_cursor

    return encode_cursor(Threat.objects.order_by("-received_at", "-id")[position])


def timed(client, params, repeat):
    samples = []
    for _ in range(repeat + 1):  # the first render warms caches and is not counted
        started = time.perf_counter()
        response = client.get("/threats/", params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, response.status_code
    rows = response.content.count(b'class="threat-row')
    return {"median_ms": round(statistics.median(samples[1:]), 1), "max_ms": round(max(samples[1:]), 1), "rows": rows}


def offset_page(position, repeat):
    from threats.models import Threat

    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        list(Threat.objects.select_related("customer", "assignee").order_by("-received_at", "-id")[position:position + 50])
        samples.append((time.perf_counter() - started) * 1000)
    return {"median_ms": round(statistics.median(samples[1:]), 1), "max_ms": round(max(samples[1:]), 1), "rows": 50}


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soc-list-bench-"))
    database = None
    try:
        database = configure(args, tmp)
        from django.db import connection
        from django.test import Client

        analyst = fill(args.rows)
        client = Client()
        client.force_login(analyst)
        middle, last = args.rows // 2, args.rows - 10
        cases = {
            "first page": {},
            f"page at row {middle:,} (cursor)": {"cursor": cursor_at(middle)},
            f"page at row {last:,} (cursor)": {"cursor": cursor_at(last)},
            "newer page from the middle (before)": {"before": cursor_at(middle)},
            "severity=CRITICAL": {"severity": "CRITICAL"},
            "threat_type=geo_anomaly": {"threat_type": "geo_anomaly"},
            "status=escalated": {"status": "escalated"},
            "customer=retailmax": {"customer": "retailmax"},
            "assignee=me": {"assignee": "me"},
            "review=yes": {"review": "yes"},
            "severity=HIGH + cursor at the middle": {"severity": "HIGH", "cursor": cursor_at(middle)},
            "search q=threat 4242": {"q": "threat 4242"},
            # Pivots (threats/pivots.py): ~250 matches each, 3 for the hash, ~100 for the domain.
            "pivot ip=10.3.17.1": {"ip": "10.3.17.1"},
            "pivot user=user1234": {"user": "user1234"},
            "pivot host=host-0042": {"host": "host-0042"},
            "pivot hash (3 matches)": {"hash": f"{4242:064x}"},
            "pivot domain=cdn42.example.com": {"domain": "cdn42.example.com"},
            "pivot rule=rule:5742 (1 in 300)": {"rule": "rule:5742"},
            "search q=10.3.17.1 (an address)": {"q": "10.3.17.1"},
            "search q=nothing-matches": {"q": "nothing-matches"},
        }
        results = {}
        print(f"{'case':42} {'median':>10} {'max':>10}  rows")
        for name, params in cases.items():
            results[name] = timed(client, params, args.repeat)
            r = results[name]
            print(f"{name:42} {r['median_ms']:8.1f} ms {r['max_ms']:8.1f} ms  {r['rows']}")
        contrast = offset_page(middle, args.repeat)
        print(f"{'(contrast) OFFSET ' + format(middle, ',') + ', query only':42} {contrast['median_ms']:8.1f} ms "
              f"{contrast['max_ms']:8.1f} ms")
        vendor = connection.vendor
        connection.close()
    finally:
        clean_up(args.database_url, database, tmp)

    append_result(RESULTS, {"database": vendor, "rows": args.rows, "repeat": args.repeat,
            "cases": results, "offset_contrast": contrast})


def clean_up(database_url, database, tmp):
    """Drop the benchmark's own PostgreSQL database (when it made one) and its temporary folder."""
    if database:
        from tests.integration.server import drop_postgres_database

        drop_postgres_database(database_url, database)
    shutil.rmtree(tmp, ignore_errors=True)


def append_result(path, line):
    """One JSON line for bench/report.py, stamped with when and where it was measured."""
    stamped = {"at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"), "machine": platform.node(),
               **line}
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a") as handle:
        handle.write(json.dumps(stamped) + "\n")
    print(f"appended to {path.relative_to(REPO_ROOT)}")


if __name__ == "__main__":
    main()
