"""Indexes for the pivots (threats/pivots.py): every threat with this rule, hash or domain.

Addresses, users and hosts already have the entity indexes of 0007. The rule pivot gets a partial
B-tree on (rule, received_at) (model state; the per-customer one of 0009 does not serve a look-up
across the customers a user sees). Hashes and domains are JSON lists in the observables: on
PostgreSQL each gets a GIN index (jsonb_path_ops) on its list (domains lower-cased), which `@>`
containment uses; SQLite has no such index and reads the rows. All built CONCURRENTLY on PostgreSQL (no write lock on a large
threats table during an upgrade), hence a non-atomic migration, like 0007 and 0012.
"""

from django.db import migrations, models

RULE_INDEX = models.Index(fields=["rule", "-received_at"], condition=~models.Q(rule=""), name="threat_rule_newest")
# The expressions threats/pivots.py compares (a database uses an expression index only for the same
# expression); domains lower-cased, as the pivot compares them. Written out here, not imported: a
# migration must not change when the code does.
LIST_INDEXES = {"threat_hashes_gin": "(observables -> 'hashes')",
                "threat_domains_gin": "(lower((observables -> 'domains')::text)::jsonb)"}


def add_rule_index(apps, schema_editor):
    threat = apps.get_model("threats", "Threat")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(threat, RULE_INDEX, concurrently=True)
    else:
        schema_editor.add_index(threat, RULE_INDEX)


def drop_rule_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("threats", "Threat"), RULE_INDEX)


def add_list_indexes(apps, schema_editor):
    if schema_editor.connection.vendor != "postgresql":
        return
    for name, expression in LIST_INDEXES.items():
        schema_editor.execute(f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON threats_threat "
                              f"USING gin ({expression} jsonb_path_ops)")
    # Statistics on the new expressions now, not at autovacuum's next pass: without them the planner
    # guesses thousands of matches per pivot and answers a search by reading the table newest first.
    schema_editor.execute("ANALYZE threats_threat")  # takes no lock that blocks reads or writes


def drop_list_indexes(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        for name in LIST_INDEXES:
            schema_editor.execute(f"DROP INDEX CONCURRENTLY IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threats", "0015_threat_version"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="threat", index=RULE_INDEX)],
            database_operations=[migrations.RunPython(add_rule_index, drop_rule_index, atomic=False, elidable=False)],
        ),
        migrations.RunPython(add_list_indexes, drop_list_indexes, atomic=False, elidable=False),
    ]
