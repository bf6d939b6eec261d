"""Every role may view suppressions in the admin (read-only there: they are saved through the
preview, docs/suppressions.md), as it views threat groups."""

from django.db import migrations

ROLES = ("viewer", "analyst", "admin")


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    config = apps.get_app_config("suppressions")
    previous = getattr(config, "models_module", None)  # None in the migration state: create_permissions skips it
    config.models_module = previous or True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = previous
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="suppressions", codename="view_suppression")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.add(view)


class Migration(migrations.Migration):

    dependencies = [
        ("suppressions", "0001_initial"),
        ("threats", "0005_user_access_and_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
