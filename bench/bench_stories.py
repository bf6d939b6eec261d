#!/usr/bin/env python3
"""Attack stories at a million threats (issue 21 item 3, docs/stories.md).

The same throw-away database as bench/bench_threat_list.py (SQLite in a temp folder, or
`--database-url postgres://...`, created and dropped): `--rows` threats, 4,000 hosts, users and
source addresses spread over 8 customers (one alert per entity every ~67 minutes). Their stories are
built in bulk, one per entity, customer and day (what stitching yields for such a steady stream,
give or take the window's edges): ~3 stories and ~3 links per threat.

Then it measures:
- stitching per analysed threat (stories.stitching.stitch, as services.do_record_analyses calls
  it): `--stitch` new alerts on existing entities, each the newest of its three stories (one step on
  the stored story), a transaction each and then in batches of 20 (a worker's task); and a tenth as
  many that happened in the middle of their stories' day (the story's links are re-read in time order);
- GET /api/stories through Django's test client: the first page, a later page (cursor), 100 rows,
  flagged only, one entity, one customer, a user scoped to two customers, the /stories/ page, and
  GET /api/stories/{id} and /stories/<id>/ of one story.

Prints a table (median, p95, max) and appends one JSON line to bench/results/stories.jsonl.

    .venv/bin/python bench/bench_stories.py --rows 1000000 --database-url postgres://postgres@127.0.0.1:5432/postgres
"""

import argparse
import datetime
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_queue import scoped_user  # noqa: E402 - the same scoped analyst
from bench_threat_list import REPO_ROOT, append_result, clean_up, configure, fill, observables  # noqa: E402 - the shared 1M-row set-up

RESULTS = REPO_ROOT / "bench" / "results" / "stories.jsonl"
START = datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC)  # bench_threat_list.fill's first alert
ENTITY_FIELDS = {"host": "host", "user": "user", "source": "src_ip"}
# Tactic sets of the bulk stories, by story id modulo 4 (the chips the list shows).
TACTIC_SETS = [
    [("TA0001", "Initial Access")],
    [("TA0001", "Initial Access"), ("TA0002", "Execution")],
    [("TA0007", "Discovery"), ("TA0008", "Lateral Movement"), ("TA0010", "Exfiltration")],
    [],
]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000, help="threats to insert (default 1,000,000)")
    parser.add_argument("--stitch", type=int, default=1000, help="new alerts stitched one by one (default 1,000)")
    parser.add_argument("--repeat", type=int, default=20, help="timed requests per case (default 20)")
    parser.add_argument("--database-url", default="", help="a Postgres server URL; default: SQLite in a temp folder")
    return parser.parse_args()


# --- The stories of the bulk threats ----------------------------------------------------------------


def _dialect(vendor):
    """(entity expression for a field, day expression, JSON literal cast) in this database's SQL."""
    if vendor == "postgresql":
        return (lambda field: f"t.observables->>'{field}'"), "date_trunc('day', t.occurred_at)", "::jsonb"
    return (lambda field: f"json_extract(t.observables, '$.{field}')"), "date(t.occurred_at)", ""


def build_stories():
    """One story per customer, entity and day, its links, synthetic tactics and every third flagged."""
    from django.db import connection

    entity, day, cast = _dialect(connection.vendor)
    started = time.monotonic()
    with connection.cursor() as cursor:
        for kind, field in ENTITY_FIELDS.items():
            cursor.execute(
                "INSERT INTO stories_story (customer_id, entity_kind, entity, first_seen, last_seen, tactics, stage_count,"
                " severity, alert_severity, threat_count, created_at, updated_at)"
                f" SELECT t.customer_id, %s, {entity(field)}, MIN(t.occurred_at), MAX(t.occurred_at), '[]'{cast}, 0,"
                f" 'MEDIUM', 'MEDIUM', COUNT(*), MIN(t.occurred_at), MAX(t.occurred_at) FROM threats_threat t"
                f" GROUP BY t.customer_id, {entity(field)}, {day}", [kind])
            cursor.execute(
                "INSERT INTO stories_storythreat (story_id, threat_id, occurred_at, tactics, severity, counts)"
                f" SELECT s.id, t.id, t.occurred_at, '[]'{cast}, t.severity, %s FROM threats_threat t"
                f" JOIN stories_story s ON s.customer_id = t.customer_id AND s.entity_kind = %s"
                f" AND s.entity = {entity(field)} AND t.occurred_at BETWEEN s.first_seen AND s.last_seen", [True, kind])
        for index, tactics in enumerate(TACTIC_SETS):
            reached = json.dumps([{"id": i, "name": n, "threat": str(uuid.UUID(int=k + 1)), "at": START.isoformat()}
                                  for k, (i, n) in enumerate(tactics)])  # an alert id (gone): the chip still links
            cursor.execute(f"UPDATE stories_story SET tactics = %s{cast}, stage_count = %s,"
                           " flagged_at = CASE WHEN id %% 3 = 0 AND %s > 1 THEN last_seen ELSE NULL END"
                           " WHERE id %% 4 = %s", [reached, len(tactics), len(tactics), index])
        cursor.execute("ANALYZE" if connection.vendor != "postgresql" else "ANALYZE stories_story")
        if connection.vendor == "postgresql":
            cursor.execute("ANALYZE stories_storythreat")
    from stories.models import Story, StoryThreat

    counts = {"stories": Story.objects.count(), "links": StoryThreat.objects.count(),
              "flagged": Story.objects.filter(flagged_at__isnull=False).count()}
    print(f"  {counts['stories']:,} stories, {counts['links']:,} links, {counts['flagged']:,} flagged "
          f"in {time.monotonic() - started:.0f} s")
    return counts


# --- Stitching ---------------------------------------------------------------------------------------


def new_alerts(rows, count, offset_seconds):
    """`count` analysed alerts on the entities of the bulk's last alerts, `offset_seconds` after the
    last one (negative: in the middle of their stories' day)."""
    from threats import services
    from threats.generator import CUSTOMER_CATALOGUE
    from threats.models import Threat

    customers = [services.customer_for_name(name) for name in CUSTOMER_CATALOGUE]  # as fill() spread them
    last = START + datetime.timedelta(seconds=rows - 1)
    made = []
    for k in range(count):
        n = rows - 1 - k  # the entity and customer of an existing alert, so its open stories exist
        customer_id = customers[n % len(customers)].pk
        when = last + datetime.timedelta(seconds=offset_seconds + k)
        made.append(Threat(customer_id=customer_id, threat_type="device_compromise", title=f"Stitched alert {k}",
                           observables=observables(n), occurred_at=when, received_at=when, severity="HIGH",
                           analysis_status="completed", false_positive={"recommendation": "likely_real_threat"},
                           mitre={"tactics": [{"id": "TA0002", "name": "Execution"}, {"id": "TA0010", "name": "Exfiltration"}]}))
    Threat.objects.bulk_create(made)
    return list(Threat.objects.select_related("customer").filter(pk__in=[t.pk for t in made]))


def time_stitching(threats, batch=1):
    """Milliseconds per analysed threat (three stories each): `batch` threats per transaction, as a
    worker stores a task's verdicts (AGENTS_BATCH_SIZE), each batch's time divided by its size."""
    from django.db import transaction

    from stories import stitching

    samples = []
    for start in range(0, len(threats), batch):
        chunk = threats[start:start + batch]
        started = time.perf_counter()
        with transaction.atomic():
            stitching.stitch(chunk)
        samples.append((time.perf_counter() - started) * 1000 / len(chunk))
    samples.sort()
    return {"threats": len(threats), "batch": batch, "median_ms": round(statistics.median(samples), 2),
            "p95_ms": round(samples[min(len(samples) - 1, int(0.95 * len(samples)))], 2),
            "max_ms": round(samples[-1], 2)}


# --- Reading -------------------------------------------------------------------------------------------


def third_page_cursor(client):
    cursor = None
    for _ in range(2):
        cursor = client.get("/api/stories", {"limit": 20, **({"cursor": cursor} if cursor else {})}).json()["next_cursor"]
    return cursor


def read_cases(client, scoped):
    from stories.models import Story

    story = Story.objects.filter(entity_kind="host").order_by("-threat_count").first()
    return {
        "first page (20)": (client, "/api/stories", {}),
        "third page (cursor)": (client, "/api/stories", {"cursor": third_page_cursor(client)}),
        "limit=100": (client, "/api/stories", {"limit": 100}),
        "flagged=true": (client, "/api/stories", {"flagged": "true"}),
        "entity=host-0042": (client, "/api/stories", {"entity": "host-0042"}),
        "customer=retailmax": (client, "/api/stories", {"customer": "retailmax"}),
        "scoped to 2 customers": (scoped, "/api/stories", {}),
        "/stories/ page (50 rows)": (client, "/stories/", {}),
        f"GET /api/stories/{{id}} ({story.threat_count} alerts)": (client, f"/api/stories/{story.pk}", {}),
        f"/stories/<id>/ page ({story.threat_count} alerts)": (client, f"/stories/{story.pk}/", {}),
    }


def timed_case(client, path, params, repeat):
    """Median, p95 and max of `repeat` requests (one more first, uncounted, warms caches), and the
    rows the last answer showed: list items, or a story's alerts."""
    samples = []
    for _ in range(repeat + 1):
        started = time.perf_counter()
        response = client.get(path, params)
        samples.append((time.perf_counter() - started) * 1000)
        assert response.status_code == 200, (response.status_code, response.content[:300])
    counted = sorted(samples[1:])
    return {"median_ms": round(statistics.median(counted), 1),
            "p95_ms": round(counted[min(len(counted) - 1, int(0.95 * len(counted)))], 1),
            "max_ms": round(counted[-1], 1), "rows": _rows(path, response)}


def _rows(path, response):
    if path == "/api/stories":
        return len(response.json()["items"])
    if path.startswith("/api/"):
        return len(response.json()["timeline"])
    return response.content.count(b'class="story-row') or response.content.count(b'class="moment')


def main():
    args = parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="soc-stories-bench-"))
    database = None
    try:
        database = configure(args, tmp)
        from django.db import connection
        from django.test import Client

        analyst = fill(args.rows)
        counts = build_stories()
        newest = time_stitching(new_alerts(args.rows, args.stitch, 60))
        print(f"stitching the newest alert of its stories: median {newest['median_ms']} ms, p95 {newest['p95_ms']} ms "
              f"({newest['threats']} threats, 3 stories each)")
        batched = time_stitching(new_alerts(args.rows, args.stitch, 3600), batch=20)
        print(f"the same in batches of 20 (a worker's task): median {batched['median_ms']} ms per threat, "
              f"p95 {batched['p95_ms']} ms")
        late = time_stitching(new_alerts(args.rows, max(1, args.stitch // 10), -12 * 3600))
        print(f"stitching an alert older than its stories' last (re-read): median {late['median_ms']} ms, "
              f"p95 {late['p95_ms']} ms")
        client, scoped = Client(), Client()
        client.force_login(analyst)
        scoped.force_login(scoped_user())
        results = {}
        print(f"{'case':42} {'median':>10} {'p95':>10} {'max':>10}  rows")
        for name, (who, path, params) in read_cases(client, scoped).items():
            results[name] = r = timed_case(who, path, params, args.repeat)
            print(f"{name:42} {r['median_ms']:8.1f} ms {r['p95_ms']:8.1f} ms {r['max_ms']:8.1f} ms  {r['rows']}")
        vendor = connection.vendor
        connection.close()
    finally:
        clean_up(args.database_url, database, tmp)

    append_result(RESULTS, {"database": vendor, "rows": args.rows, "repeat": args.repeat, **counts,
            "stitch_newest": newest, "stitch_batched": batched, "stitch_late": late, "cases": results})


if __name__ == "__main__":
    main()
