"""Campaigns (threats/grouping.py): one user's activity across hosts and rules within
INGEST_CAMPAIGN_WINDOW_SECONDS, and Threat.campaign.

The threats' campaign index is partial (only threats in a campaign) and, on PostgreSQL, built
CONCURRENTLY, so an upgrade does not block writes to a large threats table; hence a non-atomic
migration, like 0007. Also on PostgreSQL: a partial index of the threats that name ancestors (alerts
built on other alerts), by customer and arrival, for a building block's look-up of a parent that
came first (grouping.Grouper._load_lineage); without it that look-up reads every threat of the
customer in the window. Not model state: Django cannot spell its JSON predicate for both databases.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

CAMPAIGN_INDEX = models.Index(fields=["campaign", "received_at"], condition=models.Q(campaign__isnull=False),
                              name="threat_campaign")


def add_index(apps, schema_editor):
    threat = apps.get_model("threats", "Threat")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(threat, CAMPAIGN_INDEX, concurrently=True)
    else:
        schema_editor.add_index(threat, CAMPAIGN_INDEX)


def drop_index(apps, schema_editor):
    schema_editor.remove_index(apps.get_model("threats", "Threat"), CAMPAIGN_INDEX)


def add_parents_index(apps, schema_editor):
    """The index, and statistics on the JSON expression (PostgreSQL 14+): without them the planner
    guesses that nearly every threat names ancestors and scans the table instead (measured: 50,000
    threats of a customer, 117 ms -> 0.05 ms)."""
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    schema_editor.execute("CREATE INDEX CONCURRENTLY IF NOT EXISTS threat_with_ancestors ON threats_threat "
                          "(customer_id, received_at) WHERE (signal -> 'ancestors') <> '[]'::jsonb")
    if connection.pg_version >= 140000:
        schema_editor.execute("CREATE STATISTICS IF NOT EXISTS threat_ancestors_stats ON ((signal -> 'ancestors')) "
                              "FROM threats_threat")
        schema_editor.execute("ANALYZE threats_threat")  # takes no lock that blocks reads or writes


def drop_parents_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP STATISTICS IF EXISTS threat_ancestors_stats")
        schema_editor.execute("DROP INDEX IF EXISTS threat_with_ancestors")


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threats", "0011_threat_closed_by"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name="Campaign",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(help_text="What links the threats, e.g. user:alice.", max_length=255)),
                ("title", models.CharField(max_length=200)),
                ("first_seen", models.DateTimeField()),
                ("last_seen", models.DateTimeField()),
                ("threat_count", models.PositiveIntegerField(default=0)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("customer", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="campaigns",
                                               to="threats.customer")),
            ],
            options={
                "ordering": ["-last_seen"],
                "indexes": [models.Index(fields=["customer", "key", "first_seen"], name="campaign_lookup")],
            },
        ),
        migrations.AddField(
            model_name="threat",
            name="campaign",
            field=models.ForeignKey(
                blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL,
                related_name="threats", to="threats.campaign",
                help_text="The user's campaign this threat belongs to (a group member shares its head's).",
            ),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="threat", index=CAMPAIGN_INDEX)],
            database_operations=[migrations.RunPython(add_index, drop_index, atomic=False, elidable=False)],
        ),
        migrations.RunPython(add_parents_index, drop_parents_index, atomic=False, elidable=False),
    ]
