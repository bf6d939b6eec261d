"""Every role may view campaigns (read-only, built by ingestion), as it views threat groups."""

from django.db import migrations

ROLES = ("viewer", "analyst", "admin")


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    threats = apps.get_app_config("threats")
    previous = getattr(threats, "models_module", None)  # None in the migration state: create_permissions skips it
    threats.models_module = previous or True
    create_permissions(threats, apps=apps, verbosity=0)
    threats.models_module = previous
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="threats", codename="view_campaign")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.add(view)


class Migration(migrations.Migration):

    dependencies = [
        ("threats", "0012_campaign"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
