"""Indexes for the historical agent's look-up of past threats (agents/historical/agent.py).

The agent finds past threats of the same customer and type, or sharing an entity (src/dst IP,
user, host). Without these indexes the database reads every row of the look-back window and
evaluates JSON on each; with them each branch of the look-up is an index range.

The entity indexes are on the expression `substr((observables ->> 'NAME'), 1, 200)` — the same
text on PostgreSQL (jsonb) and SQLite (3.38+, JSON text) — which the agent's query repeats
exactly (`threats.pivots.entity_key`): a database uses an expression index only for the same
expression. The first 200 characters keep every key under PostgreSQL's B-tree entry limit
whatever an alert puts in a field; the query also compares the whole value.

Not model state (Django's autodetector does not model expression SQL shared by two vendors), so
they are RunPython operations; on PostgreSQL they are built CONCURRENTLY (no write lock on a
large threats table during an upgrade), hence a non-atomic migration.
"""

from django.db import migrations

ENTITY_FIELDS = ("src_ip", "dst_ip", "user", "host")
KEY_CHARS = 200


def _statements(concurrently):
    how = "CONCURRENTLY " if concurrently else ""
    found = [
        f"CREATE INDEX {how}IF NOT EXISTS threat_entity_{name} ON threats_threat "
        f"((substr((observables ->> '{name}'), 1, {KEY_CHARS})), received_at)"
        for name in ENTITY_FIELDS
    ]
    found.append(f"CREATE INDEX {how}IF NOT EXISTS threat_customer_type_newest ON threats_threat "
                 "(customer_id, threat_type, received_at)")
    return found


def create(apps, schema_editor):
    postgres = schema_editor.connection.vendor == "postgresql"
    for sql in _statements(concurrently=postgres):
        schema_editor.execute(sql)


def drop(apps, schema_editor):
    for name in [*(f"threat_entity_{n}" for n in ENTITY_FIELDS), "threat_customer_type_newest"]:
        schema_editor.execute(f"DROP INDEX IF EXISTS {name}")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threats", "0006_threat_counts"),
    ]

    operations = [
        migrations.RunPython(create, drop, atomic=False, elidable=False),
    ]
