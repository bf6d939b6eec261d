"""Customer scoping (UserAccess) and the three roles as groups, so a fresh install has them.

Permissions are created here (Django creates them only after every migration has run) so the groups
can hold them on the first `migrate`. Re-running is harmless: groups gain missing permissions.
"""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models


VIEWER = [
    "threats.view_threat", "threats.view_customer", "threats.view_threatevent", "threats.view_threatgroup",
    "threats.view_infraevent", "threats.view_contextitem", "threats.view_note", "agents.view_agentrun",
]
ANALYST = VIEWER + [
    "threats.add_threat", "threats.change_threat", "threats.add_note", "threats.add_infraevent",
    "threats.change_infraevent", "threats.add_contextitem", "threats.change_contextitem",
]
ADMIN = ANALYST + [
    f"threats.{action}_{model}" for action in ("view", "add", "change", "delete")
    for model in ("customer", "apikey", "useraccess", "infraevent", "contextitem")
] + [f"auth.{action}_{model}" for action in ("view", "add", "change") for model in ("user", "group")] + [
    "auth.view_permission", "admin.view_logentry",
]
ROLES = {"viewer": VIEWER, "analyst": ANALYST, "admin": ADMIN}


def create_roles(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for app_config in apps.get_app_configs():
        previous = getattr(app_config, "models_module", None)  # None in the migration state: skipped
        app_config.models_module = previous or True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = previous
    Group, Permission = apps.get_model("auth", "Group"), apps.get_model("auth", "Permission")
    for name, codes in ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        for code in codes:
            app_label, codename = code.split(".")
            group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


class Migration(migrations.Migration):

    dependencies = [
        ('threats', '0004_analysis_status_grouped'),
        ('agents', '0001_initial'),
        ('auth', '0012_alter_user_first_name_max_length'),
        ('admin', '0003_logentry_add_action_flag_choices'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.CreateModel(
            name='UserAccess',
            fields=[
                ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                ('customers', models.ManyToManyField(blank=True, related_name='scoped_users', to='threats.customer')),
                ('user', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='soc_access', to=settings.AUTH_USER_MODEL)),
            ],
            options={
                'verbose_name': 'customer scope',
            },
        ),
        migrations.RunPython(create_roles, migrations.RunPython.noop),
    ]
