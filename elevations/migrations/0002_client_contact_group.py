"""The ClientContact capability group: no model permissions (their pages check their
``ClientContact`` row, and every MSP page refuses them)."""

from django.db import migrations


def create_group(apps, schema_editor):  # type: ignore[no-untyped-def]
    Group = apps.get_model("auth", "Group")
    Group.objects.get_or_create(name="ClientContact")


def remove_group(apps, schema_editor):  # type: ignore[no-untyped-def]
    apps.get_model("auth", "Group").objects.filter(name="ClientContact").delete()


class Migration(migrations.Migration):
    dependencies = [("elevations", "0001_client_contacts_and_elevations"), ("auth", "0012_alter_user_first_name_max_length")]

    operations = [migrations.RunPython(create_group, remove_group)]
