"""The three standard permission tiers every client account gets offered."""

from django.db import migrations

TEMPLATES = [
    {
        "name": "Administrator",
        "tier": "administrator",
        "role_name": "SwitchyardAdministrator",
        "description": "Full control of the client's account, for escalations and account-level changes.",
        "managed_policy_arns": ["arn:aws:iam::aws:policy/AdministratorAccess"],
        "console_color": "f2b0a9",
        "max_session_seconds": 3600,
    },
    {
        "name": "Engineer",
        "tier": "engineer",
        "role_name": "SwitchyardEngineer",
        "description": "Day-to-day engineering: everything but IAM and Organizations.",
        "managed_policy_arns": ["arn:aws:iam::aws:policy/PowerUserAccess"],
        "console_color": "83d4e8",
        "max_session_seconds": 14400,
    },
    {
        "name": "On-call support",
        "tier": "oncall",
        "role_name": "SwitchyardOnCall",
        "description": "Read everything and open or answer AWS support cases, for the on-call rota.",
        "managed_policy_arns": [
            "arn:aws:iam::aws:policy/ReadOnlyAccess",
            "arn:aws:iam::aws:policy/AWSSupportAccess",
        ],
        "console_color": "b7ca9d",
        "max_session_seconds": 43200,
    },
]


def seed(apps, schema_editor):
    RoleTemplate = apps.get_model("switchroles", "RoleTemplate")
    for fields in TEMPLATES:
        RoleTemplate.objects.update_or_create(role_name=fields["role_name"], defaults=fields)


def unseed(apps, schema_editor):
    apps.get_model("switchroles", "RoleTemplate").objects.filter(
        role_name__in=[t["role_name"] for t in TEMPLATES]
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("switchroles", "0001_initial")]

    operations = [migrations.RunPython(seed, unseed)]
