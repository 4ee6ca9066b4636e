"""Separation-of-duties conflicts that already exist (made before the rules, or while one was off):
listed for managers and auditors, never hidden. The rules themselves are in ``portal.people.duties``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import F, QuerySet

from portal.people.permissions import AUDITOR
from switchroles.models import Grant, TeamMembership
from switchroles.selectors import grants_in_force, memberships_in_force


@dataclass(frozen=True)
class DutyConflicts:
    auditors_in_teams: QuerySet[TeamMembership]
    auditors_with_grants: QuerySet[Grant]
    self_confirmed: QuerySet[Any]  # access review items

    @property
    def count(self) -> int:
        return self.auditors_in_teams.count() + self.auditors_with_grants.count() + self.self_confirmed.count()


def _review_items() -> Any:
    # Access reviews sit above switchroles (they review its grants), so their items are reached
    # through the grants' reverse relation, not imported.
    return Grant._meta.get_field("review_items").related_model


def duty_conflicts() -> DutyConflicts:
    """Auditors in a team now, auditors holding personal grants in force, and review items
    confirmed by the person who made the grant. Whatever the settings say: a conflict is shown
    even while its rule is off (the page says which rules are on)."""
    return DutyConflicts(
        auditors_in_teams=memberships_in_force().filter(person__groups__name=AUDITOR)
        .select_related("person", "team", "added_by").order_by("person__username", "team__name"),
        auditors_with_grants=grants_in_force().filter(person__groups__name=AUDITOR)
        .select_related("person", "client", "account", "account__client", "granted_by")
        .prefetch_related("templates").order_by("person__username", "pk"),
        self_confirmed=_review_items().objects.filter(decision=_review_items().Decision.CONFIRM,
                                                      decided_by=F("grant__granted_by"))
        .select_related("review", "grant", "decided_by").order_by("-decided_at", "-pk"),
    )
