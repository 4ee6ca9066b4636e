"""Rolling the console roles' trust out to existing roles (the principal-tag condition turned on
or off): every active template gets a new revision and goes through the normal roll-out
(``switchroles.rollout``), which re-provisions each role from ``role_spec_for``, trust included."""

from __future__ import annotations

from django.db import transaction
from django.db.models import F
from django.http import HttpRequest

from portal.audit import audit_record
from portal.people.models import User
from switchroles.access_checks import tag_condition_enabled
from switchroles.models import RoleTemplate, TemplateRollout
from switchroles.rollout import rollout_start


@transaction.atomic(durable=True)
def trust_rollout_start(*, actor: User, request: HttpRequest | None = None) -> list[TemplateRollout]:
    """Start one roll-out per active template so every console role gets the trust the settings
    now say (with or without the ``switchyard-person`` tag condition). Audited
    ``role_template.trust_rollout_requested``; returns the roll-outs."""
    templates = list(RoleTemplate.objects.select_for_update().filter(is_active=True).order_by("pk"))
    audit_record(
        action="role_template.trust_rollout_requested", actor=actor, request=request,
        target_label="console roles' trust",
        details={"person_tag_condition": tag_condition_enabled(), "templates": [t.pk for t in templates]},
    )
    rollouts = []
    for template in templates:
        RoleTemplate.objects.filter(pk=template.pk).update(revision=F("revision") + 1)
        template.refresh_from_db(fields=["revision"])
        rollouts.append(rollout_start(template=template, actor=actor, request=request))
    return rollouts
