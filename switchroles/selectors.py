"""Reads on roles and grants, always scoped to a person."""

from __future__ import annotations

from datetime import datetime

from django.db.models import Exists, OuterRef, Q, QuerySet
from django.utils import timezone

from portal.models import User
from switchroles.models import AccountRole, Grant, TeamMembership


def grants_in_force(*, at: datetime | None = None) -> QuerySet[Grant]:
    """Grants that give access at ``at`` (default: now): granted by then, not yet revoked, not expired."""
    moment = at or timezone.now()
    return Grant.objects.filter(granted_at__lte=moment).filter(
        Q(revoked_at__isnull=True) | Q(revoked_at__gt=moment)
    ).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=moment))


def memberships_in_force(*, at: datetime | None = None) -> QuerySet[TeamMembership]:
    moment = at or timezone.now()
    return TeamMembership.objects.filter(added_at__lte=moment).filter(
        Q(removed_at__isnull=True) | Q(removed_at__gt=moment)
    )


def grants_of_person(*, person: User, at: datetime | None = None) -> QuerySet[Grant]:
    """Grants in force at ``at`` that reach ``person``: their own, and their teams' while they were members."""
    in_team = memberships_in_force(at=at).filter(person=person, team=OuterRef("team"))
    return grants_in_force(at=at).filter(Q(person=person) | (Q(team__isnull=False) & Exists(in_team)))


def links_for_person(*, person: User, at: datetime | None = None) -> QuerySet[AccountRole]:
    """The active account roles ``person`` may use now: exactly what their directory shows."""
    covering = grants_of_person(person=person, at=at).filter(
        Q(account=OuterRef("account")) | Q(client=OuterRef("account__client")),
        templates=OuterRef("template"),
    )
    return (
        AccountRole.objects.filter(state=AccountRole.State.ACTIVE, account__account_id__isnull=False)
        .filter(Exists(covering))
        .select_related("account", "account__client", "template")
        .order_by("account__client__name", "account__name", "template__pk")
    )
