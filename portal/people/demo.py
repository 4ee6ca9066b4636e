"""The sandbox's demo people (``manage.py sandbox_up`` creates them; apps' demo data refers to them)."""

from __future__ import annotations

from django.conf import settings

DEMO_PASSWORD = "switchyard-demo"  # noqa: S105 - a documented, sandbox-only password
DEMO_USERS = {
    # username: (group, first name, IAM user in the main account)
    "manager": ("Manager", "Morgan", "morgan.manager"),
    "engineer": ("Engineer", "Eli", "eli.engineer"),
    "auditor": ("Auditor", "Ada", "ada.auditor"),
    "finance": ("Finance", "Fran", "fran.finance"),
}


def require_sandbox() -> None:
    if not settings.SANDBOX:
        raise RuntimeError("This only runs in the sandbox (SWITCHYARD_ENV=sandbox).")
