"""Indexes for My queue (threats/queue.py, docs/queue.md): each customer's open threats with a risk in
risk order — one partial index for those whose SLA clock ran unacknowledged (urgency 4 once it
breached), one for the acknowledged (urgency 1) — and a small one for the open threats without a
risk. A page of the queue then reads at most `limit` rows per part instead of ranking every open
threat. Built CONCURRENTLY on PostgreSQL (no write lock on a large threats table during an upgrade),
hence a non-atomic migration, like 0016.
"""

from django.db import migrations, models
from django.db.models import Q

# Written out here, not imported: a migration must not change when the code does.
SEVERITIES = ["CRITICAL", "HIGH", "MEDIUM", "LOW"]
OPEN = ~Q(status__in=["resolved", "closed"])
FIELDS = ["customer", "-risk_score", "received_at", "id"]
INDEXES = [
    models.Index(fields=FIELDS, condition=Q(risk_score__isnull=False, acknowledged_at__isnull=True,
                                            severity__in=SEVERITIES) & OPEN, name="threat_queue_unacknowledged"),
    models.Index(fields=FIELDS, condition=Q(risk_score__isnull=False, acknowledged_at__isnull=False) & OPEN,
                 name="threat_queue_acknowledged"),
    models.Index(fields=["received_at"], condition=(Q(risk_score__isnull=True)
                                                    | Q(acknowledged_at__isnull=True) & ~Q(severity__in=SEVERITIES)) & OPEN,
                 name="threat_queue_unrated"),
]


def add_indexes(apps, schema_editor):
    threat = apps.get_model("threats", "Threat")
    concurrently = schema_editor.connection.vendor == "postgresql"
    for index in INDEXES:
        if concurrently:
            schema_editor.add_index(threat, index, concurrently=True)
        else:
            schema_editor.add_index(threat, index)


def drop_indexes(apps, schema_editor):
    threat = apps.get_model("threats", "Threat")
    for index in INDEXES:
        schema_editor.remove_index(threat, index)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("threats", "0017_threat_sla_warned_at"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[migrations.AddIndex(model_name="threat", index=index) for index in INDEXES],
            database_operations=[migrations.RunPython(add_indexes, drop_indexes, atomic=False, elidable=False)],
        ),
    ]
