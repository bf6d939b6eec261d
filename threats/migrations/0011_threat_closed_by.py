"""Threat.closed_by, and the indexes of the historical agent's new reads.

- `closed_by`: the analyst who closed a threat (set by threats/services.py), so the historical
  agent can cap what one analyst's closures teach. Null for older closures and automation.
- `threat_customer_rule_newest` (customer, rule, received_at): the look-up's same-rule branch,
  one index range like its other branches (migration 0007).
- `threat_confirmed_newest` (closed_at, only analysts' true-positive closures): other customers'
  confirmed indicators, read only with AGENTS_SHARED_REPUTATION on.
- `threat_closed_by`: deleting a user sets its closures' `closed_by` to null without a table scan.

The indexes are model state (Meta.indexes) but are built here by hand, CONCURRENTLY on PostgreSQL
(no write lock on a large threats table during an upgrade, as in 0007 and 0008), hence a
non-atomic migration. The column is nullable without a default: an in-place ALTER on both
databases (SQLite does not rebuild the table for it, so 0007's indexes are kept).
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

INDEXES = [
    models.Index(fields=["customer", "rule", "-received_at"], name="threat_customer_rule_newest"),
    models.Index(fields=["-closed_at"], condition=models.Q(disposition="true_positive", closed_by_kind="human"),
                 name="threat_confirmed_newest"),
    models.Index(fields=["closed_by"], name="threat_closed_by"),
]


def create(apps, schema_editor):
    model = apps.get_model("threats", "Threat")
    postgres = schema_editor.connection.vendor == "postgresql"
    for index in INDEXES:
        if postgres:
            schema_editor.add_index(model, index, concurrently=True)
        else:
            schema_editor.add_index(model, index)


def drop(apps, schema_editor):
    model = apps.get_model("threats", "Threat")
    for index in INDEXES:
        schema_editor.remove_index(model, index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threats", "0010_threat_source_ref_unique_per_customer"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddField(
            model_name="threat",
            name="closed_by",
            field=models.ForeignKey(
                blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL,
                related_name="+", to=settings.AUTH_USER_MODEL,
                help_text="The analyst who closed it (human closures): the historical agent weighs closures per analyst.",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="threat", index=index) for index in INDEXES],
            database_operations=[migrations.RunPython(create, drop, atomic=False, elidable=False)],
        ),
    ]
