"""Separation of duties: the rules, as settings with safe defaults (both on).

* ``SWITCHYARD_SOD_AUDITORS_HOLD_NO_LINKS``: a person holding the Auditor capability holds no
  switch-role link. Adding them to a team, granting them personally, or giving the Auditor
  capability to someone in a team or with personal grants is refused (``ValidationError`` on the
  field); the directory and the main-account enforcement give them nothing even if such a
  conflict already exists (made before the rule, or with it off): those are listed on the
  conflicts page (``switchroles.duties``), never hidden.
* ``SWITCHYARD_SOD_NO_SELF_REVIEW``: whoever made a grant cannot confirm it in an access review
  (revoking it stays possible: it only takes access away).

Pure rules: this module reads only people and settings, so every app may import it.
"""

from __future__ import annotations

from django.conf import settings
from django.db.models import BooleanField, Exists, OuterRef, Value

from portal.people.models import User
from portal.people.permissions import AUDITOR

AUDITOR_IN_TEAM = (
    "An auditor cannot be in a team: auditors hold no switch-role links (separation of duties). "
    "Remove the Auditor capability first, or leave the teams empty."
)
AUDITOR_GRANTED = (
    "An auditor cannot be granted access: auditors hold no switch-role links (separation of duties)."
)
AUDITOR_WITH_LINKS = (
    "This person is in a team or holds personal grants, and auditors hold no switch-role links "
    "(separation of duties). Take them out of their teams and revoke their grants first."
)
SELF_REVIEW = "You made this grant, so another reviewer must confirm it (separation of duties). You may revoke it."


def auditors_hold_no_links() -> bool:
    return bool(getattr(settings, "SWITCHYARD_SOD_AUDITORS_HOLD_NO_LINKS", True))


def no_self_review() -> bool:
    return bool(getattr(settings, "SWITCHYARD_SOD_NO_SELF_REVIEW", True))


def holds_auditor_capability(person: User) -> bool:
    """The Auditor group itself (a superuser without it is not an auditor for this rule)."""
    return person.pk is not None and person.groups.filter(name=AUDITOR).exists()


def may_hold_links(person: User) -> bool:
    """Whether ``person`` may hold switch-role links under the rules in force."""
    return not (auditors_hold_no_links() and holds_auditor_capability(person))


def is_auditor_q(person_field: str = "pk") -> Exists | Value:
    """A boolean expression on a queryset whose ``person_field`` is a user's id: that user holds the
    Auditor capability. Always false while the rule is off, so callers can exclude on it unconditionally."""
    if not auditors_hold_no_links():
        return Value(False, output_field=BooleanField())
    return Exists(User.groups.through.objects.filter(user_id=OuterRef(person_field), group__name=AUDITOR))


def auditor_rule_applies_to(person: User) -> Exists:
    """An uncorrelated EXISTS, true when the rule is on and ``person`` holds the Auditor
    capability: excluded on inside a query, it costs no query of its own."""
    user_ids = [person.pk] if auditors_hold_no_links() and person.pk is not None else []
    return Exists(User.groups.through.objects.filter(user_id__in=user_ids, group__name=AUDITOR))


def may_confirm(*, reviewer: User, granted_by_id: int | None) -> bool:
    return not (no_self_review() and granted_by_id is not None and granted_by_id == reviewer.pk)
