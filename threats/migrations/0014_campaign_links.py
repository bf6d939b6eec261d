"""Campaign links (threats/grouping.py): every key a campaign's threats named finds it, not only the
key that started it. Existing campaigns keep being found by their own key."""

import django.db.models.deletion
from django.db import migrations, models


def link_existing(apps, schema_editor):
    campaign, link = apps.get_model("threats", "Campaign"), apps.get_model("threats", "CampaignLink")
    rows = campaign.objects.values_list("pk", "customer_id", "key").iterator(chunk_size=2000)
    batch = []
    for pk, customer_id, key in rows:
        batch.append(link(campaign_id=pk, customer_id=customer_id, key=key))
        if len(batch) >= 2000:
            link.objects.bulk_create(batch, ignore_conflicts=True)
            batch = []
    link.objects.bulk_create(batch, ignore_conflicts=True)


class Migration(migrations.Migration):
    dependencies = [
        ("threats", "0013_campaign_view_permission"),
    ]

    operations = [
        migrations.CreateModel(
            name="CampaignLink",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("key", models.CharField(max_length=255)),
                ("campaign", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="links",
                                               to="threats.campaign")),
                ("customer", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+",
                                               to="threats.customer")),
            ],
            options={
                "indexes": [models.Index(fields=["customer", "key"], name="campaign_link_lookup")],
                "constraints": [models.UniqueConstraint(fields=("campaign", "key"), name="campaign_link_unique")],
            },
        ),
        migrations.RunPython(link_existing, migrations.RunPython.noop),
    ]
