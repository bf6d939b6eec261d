"""Campaigns (threats/grouping.py): one user's activity across hosts and rules within
INGEST_CAMPAIGN_WINDOW_SECONDS, and Threat.campaign.

The threats' campaign index is partial (only threats in a campaign) and, on PostgreSQL, built
CONCURRENTLY, so an upgrade does not block writes to a large threats table; hence a non-atomic
migration, like 0007.
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


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threats", "0009_threat_rule_and_signal"),
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
    ]
