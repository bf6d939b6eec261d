"""Indexes for the threat list's text search (`GET /api/threats?q=`, the threats page's search box).

The search is `title ICONTAINS q OR executive_summary ICONTAINS q OR source_ref = q`, newest first.
Without an index for every branch PostgreSQL walks the newest-first index and tests every row: a
term that matches nothing read all 1,000,000 threats (4-10 s measured). With trigram GIN indexes
on the expression Django's `icontains` compares on PostgreSQL, `UPPER(column::text)`, and a B-tree
on `source_ref`, a rare term is a bitmap OR of three index reads; a common term still walks the
newest-first index and stops after a page (the planner picks by the estimated matches).

PostgreSQL only: `pg_trgm` ships with PostgreSQL and is a trusted extension (13+), so the database
owner may create it. If it cannot be created, the search keeps working without these indexes (a
warning says so). SQLite has no trigram index and keeps the scan. Built CONCURRENTLY (no write
lock on a large threats table during an upgrade), hence a non-atomic migration. Not model state:
expression and operator-class indexes on one vendor only, like migration 0007.
"""

import logging

from django.db import migrations

log = logging.getLogger(__name__)

TRIGRAM = {"threat_title_trgm": "title", "threat_summary_trgm": "executive_summary"}
SOURCE_REF = "threat_source_ref"


def create(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    with schema_editor.connection.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_extension WHERE extname = 'pg_trgm'")
        if cursor.fetchone() is None:
            try:
                cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
            except Exception as exc:  # noqa: BLE001 - no privilege: the search still works, unindexed
                log.warning("pg_trgm not available (%s): text search on threats stays unindexed", exc)
                trigram = False
            else:
                trigram = True
        else:
            trigram = True
    statements = [f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {SOURCE_REF} ON threats_threat (source_ref) "
                  "WHERE source_ref <> ''"]
    if trigram:
        statements += [f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON threats_threat "
                       f"USING gin ((UPPER(({column})::text)) gin_trgm_ops)" for name, column in TRIGRAM.items()]
    for sql in statements:
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name in [SOURCE_REF, *TRIGRAM]:
        schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threats", "0007_observable_indexes"),
    ]

    operations = [
        migrations.RunPython(create, drop, atomic=False, elidable=False),
    ]
