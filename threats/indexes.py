"""Migration 0007's expression indexes, kept after every `migrate` on SQLite.

They are raw SQL, not model state (threats migration 0007 says why). SQLite alters most columns
by rebuilding the table (create, copy, drop, rename), and Django re-creates only the indexes in
model state: migration 0009 (JSON and text columns with a default) dropped all five, and every
historical look-up walked the customer's whole window again. They are put back after every
`migrate`, with 0007's own statements (the totals' triggers, which the same rebuilds drop, are
installed by a migration and only checked after `migrate`: threats/stats.py); PostgreSQL alters
tables in place and keeps them.
"""

import importlib

from django.db import connections
from django.db.migrations.recorder import MigrationRecorder

MIGRATION = ("threats", "0007_observable_indexes")


def restore_after_migrate(sender, using="default", **kwargs):
    """post_migrate receiver: create 0007's indexes where a table rebuild dropped them."""
    connection = connections[using]
    if connection.vendor != "sqlite" or MIGRATION not in MigrationRecorder(connection).applied_migrations():
        return
    statements = importlib.import_module("threats.migrations.0007_observable_indexes")._statements(concurrently=False)
    with connection.cursor() as cursor:
        for statement in statements:
            cursor.execute(statement)  # CREATE INDEX IF NOT EXISTS: a no-op when it is there
