"""Creates the Finance capability group with the billing permissions (see portal.people.permissions).

Databases migrated before billing existed have no Finance group (portal/0002 made the groups of its
day); this adds it. Idempotent, as portal/0002 may already have made it on a fresh database.
"""

from django.db import migrations

FINANCE = "Finance"
PERMISSIONS = (
    ("onboarding", "view_client"),
    ("billing", "view_costfetch"), ("billing", "add_costfetch"), ("billing", "view_costline"),
    ("billing", "view_clientbillingterms"), ("billing", "add_clientbillingterms"),
    ("billing", "change_clientbillingterms"),
)


def create_finance(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    for label in ("billing", "onboarding"):
        app_config = apps.get_app_config(label)
        app_config.models_module = True
        create_permissions(app_config, verbosity=0)
        app_config.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name=FINANCE)
    for app_label, codename in PERMISSIONS:
        group.permissions.add(Permission.objects.get(content_type__app_label=app_label, codename=codename))


def remove_finance(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name=FINANCE).delete()


class Migration(migrations.Migration):
    dependencies = [
        ("billing", "0001_cost_lines_and_terms"),
        ("portal", "0002_capability_groups"),
    ]

    operations = [migrations.RunPython(create_finance, remove_finance)]
