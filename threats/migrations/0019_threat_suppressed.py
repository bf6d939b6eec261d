"""Suppressed threats (suppressions/, docs/suppressions.md): a flag, the suppression that matched,
the `suppressed` analysis status, and a partial index for GET /api/threats?suppressed=true built
CONCURRENTLY on PostgreSQL (no write lock on a large threats table during an upgrade), hence a
non-atomic migration, like 0018. Adding a column with a constant default rewrites nothing on
PostgreSQL 11+.
"""

import django.db.models.deletion
from django.db import migrations, models
from django.db.models import Q

INDEX = models.Index(fields=["-received_at", "-id"], condition=Q(suppressed=True), name="threat_suppressed_newest")


def add_index(apps, schema_editor):
    threat = apps.get_model("threats", "Threat")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(threat, INDEX, concurrently=True)
    else:
        schema_editor.add_index(threat, INDEX)


def drop_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("threats", "Threat"), INDEX)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("suppressions", "0001_initial"),
        ("threats", "0018_queue_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="threat",
            name="suppressed",
            field=models.BooleanField(default=False, help_text="Matched an active suppression at ingest: stored, closed by rule, never analysed."),
        ),
        migrations.AddField(
            model_name="threat",
            name="suppression",
            field=models.ForeignKey(blank=True, db_index=False, help_text="The suppression that matched it (docs/suppressions.md).", null=True, on_delete=django.db.models.deletion.SET_NULL, related_name="threats", to="suppressions.suppression"),
        ),
        migrations.AlterField(
            model_name="threat",
            name="analysis_status",
            field=models.CharField(choices=[("queued", "Queued"), ("running", "Running"), ("completed", "Completed"), ("failed", "Failed"), ("grouped", "Grouped (analysed with its group head)"), ("suppressed", "Suppressed (not analysed)")], default="queued", max_length=12),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="threat", index=INDEX)],
            database_operations=[migrations.RunPython(add_index, drop_index, atomic=False, elidable=False)],
        ),
    ]
