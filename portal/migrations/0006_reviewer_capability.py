"""Creates the Reviewer capability (separation of duties: auditors who decide access reviews)."""

from django.db import migrations

CODENAMES = ("view_accessreview", "view_accessreviewitem", "change_accessreviewitem")


def create_reviewer(apps, schema_editor):
    from django.contrib.auth.management import create_permissions

    portal = apps.get_app_config("portal")
    portal.models_module = True
    create_permissions(portal, verbosity=0)
    portal.models_module = None

    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Reviewer")
    group.permissions.add(*Permission.objects.filter(content_type__app_label="portal", codename__in=CODENAMES))


def remove_reviewer(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Reviewer").delete()


class Migration(migrations.Migration):
    dependencies = [("portal", "0005_iam_names_ascii_only")]

    operations = [migrations.RunPython(create_reviewer, remove_reviewer)]
