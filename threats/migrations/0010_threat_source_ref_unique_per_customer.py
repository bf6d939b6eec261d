"""Idempotent ingest per customer (issue 18): (customer, source, source_ref) is unique instead of
(source, source_ref), so one customer's alert id never answers, or suppresses, another's.

The new constraint is added before the old one goes, so no moment is without one (PostgreSQL runs
both in one transaction; SQLite rebuilds the table). Rolling back fails while two customers hold
the same (source, source_ref): that is the state this migration allows."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ("threats", "0009_threat_rule_and_signal"),
    ]

    operations = [
        migrations.AddConstraint(
            model_name="threat",
            constraint=models.UniqueConstraint(
                condition=models.Q(("source_ref", ""), _negated=True),
                fields=("customer", "source", "source_ref"),
                name="threat_unique_customer_source_ref",
            ),
        ),
        migrations.RemoveConstraint(
            model_name="threat",
            name="threat_unique_source_ref",
        ),
    ]
