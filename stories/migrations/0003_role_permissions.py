"""Every role may view stories in the admin (read-only there: stitching builds them, docs/stories.md),
as it views campaigns."""

from django.db import migrations

ROLES = ("viewer", "analyst", "admin")


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    config = apps.get_app_config("stories")
    previous = getattr(config, "models_module", None)  # None in the migration state: create_permissions skips it
    config.models_module = previous or True
    create_permissions(config, apps=apps, verbosity=0)
    config.models_module = previous
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    view = Permission.objects.get(content_type__app_label="stories", codename="view_story")
    for group in Group.objects.filter(name__in=ROLES):
        group.permissions.add(view)


class Migration(migrations.Migration):

    dependencies = [
        ("stories", "0002_entity_index"),
        ("threats", "0005_user_access_and_roles"),
    ]

    operations = [migrations.RunPython(grant, migrations.RunPython.noop)]
