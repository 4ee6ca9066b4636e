"""Grants the access-review permissions to the capability groups (see portal.people.permissions)."""

from django.db import migrations

PERMISSIONS = {
    "Manager": (
        "view_accessreview", "add_accessreview", "change_accessreview",
        "view_accessreviewitem", "change_accessreviewitem",
    ),
    "Auditor": ("view_accessreview", "view_accessreviewitem"),
}


def grant(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    portal = apps.get_app_config("portal")
    portal.models_module = True
    create_permissions(portal, verbosity=0)
    portal.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in PERMISSIONS.items():
        group, _ = Group.objects.get_or_create(name=group_name)
        group.permissions.add(*Permission.objects.filter(content_type__app_label="portal", codename__in=codenames))


def ungrant(apps, schema_editor):
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    for group_name, codenames in PERMISSIONS.items():
        for group in Group.objects.filter(name=group_name):
            group.permissions.remove(
                *Permission.objects.filter(content_type__app_label="portal", codename__in=codenames)
            )


class Migration(migrations.Migration):
    dependencies = [("portal", "0003_access_reviews")]

    operations = [migrations.RunPython(grant, ungrant)]
