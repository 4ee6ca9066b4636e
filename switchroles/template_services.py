"""Writes for role templates (managers). Each change is audited; editing bumps ``revision`` so the
roll-out to accounts that already have the role can tell old from new."""

from __future__ import annotations

from typing import Any

from django.db import transaction
from django.http import HttpRequest

from portal.audit import audit_record
from portal.people.models import User
from switchroles.models import RoleTemplate
from switchroles.rollout import rollout_start

TEMPLATE_FIELDS = (
    "name", "tier", "role_name", "description", "managed_policy_arns", "custom_policy", "require_mfa",
    "max_session_seconds", "console_color", "is_active", "region",
)


def role_template_create(*, actor: User, request: HttpRequest | None = None, **fields: Any) -> RoleTemplate:
    """Create a template from validated ``fields`` (see TEMPLATE_FIELDS); raises ValidationError."""
    with transaction.atomic(durable=True):
        template = RoleTemplate(created_by=actor, **{k: v for k, v in fields.items() if k in TEMPLATE_FIELDS})
        template.full_clean()
        template.save()
        audit_record(action="role_template.created", actor=actor, target=template, request=request,
                     details={name: getattr(template, name) for name in TEMPLATE_FIELDS})
    return template


def role_template_update(
    *, template: RoleTemplate, actor: User, request: HttpRequest | None = None, **fields: Any
) -> RoleTemplate:
    """Change a template; returns it unchanged (no audit, same revision) when nothing differs.
    Otherwise the revision goes up and a roll-out to every account with the role starts
    (``switchroles.rollout.rollout_start``) once this commits."""
    with transaction.atomic(durable=True):
        locked = RoleTemplate.objects.select_for_update().get(pk=template.pk)
        changes = {
            name: {"from": getattr(locked, name), "to": value}
            for name, value in fields.items()
            if name in TEMPLATE_FIELDS and getattr(locked, name) != value
        }
        if not changes:
            return locked
        for name, change in changes.items():
            setattr(locked, name, change["to"])
        locked.revision += 1
        locked.full_clean()
        locked.save(update_fields=[*changes, "revision", "updated_at"])
        audit_record(action="role_template.updated", actor=actor, target=locked, request=request,
                     details={"revision": locked.revision, "changes": changes})
        # Every account that has the role gets the new revision, through the workers.
        rollout_start(template=locked, actor=actor, request=request)
    return locked
