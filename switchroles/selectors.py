"""Reads on roles and grants, always scoped to a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, Exists, Max, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.models import User
from switchroles.links import LinkExport, console_color
from switchroles.models import (
    AccountRole,
    DriftCheck,
    DriftFinding,
    EnforcedPrincipal,
    Favourite,
    Grant,
    LinkUse,
    Team,
    TeamMembership,
)


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
    # Two EXISTS rather than one with "account = … OR client = …": the OR keeps the database from
    # using the grant's account and client indexes, and at 9,000 roles × 10,000 grants it then
    # scans the grants once per role (over a minute on SQLite; see make bench).
    grants = grants_of_person(person=person, at=at)
    on_the_account = grants.filter(account=OuterRef("account"), templates=OuterRef("template"))
    on_its_client = grants.filter(client=OuterRef("account__client"), templates=OuterRef("template"))
    return (
        AccountRole.objects.filter(state=AccountRole.State.ACTIVE, account__account_id__isnull=False)
        .filter(Exists(on_the_account) | Exists(on_its_client))
        .select_related("account", "account__client", "template")
        .order_by("account__client__name", "account__name", "template__pk")
    )


# --- the directory -------------------------------------------------------------------------------


@dataclass(frozen=True)
class DirectoryLink:
    """One row of a person's directory: the role, its console URL (empty when the stored fields
    are invalid, with ``problem`` saying why), the CSS class of its palette colour, and the text
    the filter matches."""

    role: AccountRole
    url: str
    color_class: str
    filter_text: str
    is_favourite: bool = False
    last_used_at: datetime | None = None
    problem: str = ""


@dataclass(frozen=True)
class Directory:
    links: list[DirectoryLink]
    favourites: list[DirectoryLink]
    recent: list[DirectoryLink]


RECENT_LINKS_SHOWN = 8
# What the directory shows of each row; loading whole rows of four tables costs more than the query.
_DIRECTORY_FIELDS = (
    "id", "role_path", "role_name", "display_name", "color", "account__id", "account__name",
    "account__account_id", "account__client__id", "account__client__name", "account__client__slug",
    "template__id", "template__name", "template__tier",
)


def _directory_link(role: Any, *, is_favourite: bool = False, last_used_at: datetime | None = None) -> DirectoryLink:
    account = role.account
    text = " ".join((account.client.name, account.client.slug, account.name, account.account_id or "",
                     role.template.name, role.display_name))
    try:
        url, color_class, problem = role.switch_role_url, f"chip-{console_color(role.color)}", ""
    except ValueError as exc:
        url, color_class, problem = "", "chip-none", str(exc)
    return DirectoryLink(role=role, url=url, color_class=color_class, filter_text=text, is_favourite=is_favourite,
                         last_used_at=last_used_at, problem=problem)


def directory_of_person(*, person: User) -> Directory:
    """Everything the person's ``/links/`` page shows, in three queries whatever the number of
    links: their usable links (grouped by client in order), their favourites and when they last
    used each link (two small indexed queries on their own rows, cheaper than correlated
    subqueries per link)."""
    roles = links_for_person(person=person).only(*_DIRECTORY_FIELDS)
    favourite_ids = set(Favourite.objects.filter(person=person).values_list("account_role_id", flat=True))
    last_used = dict(
        LinkUse.objects.filter(person=person).values("account_role").annotate(last=Max("used_at"))
        .values_list("account_role", "last")
    )
    links = [
        _directory_link(role, is_favourite=role.pk in favourite_ids, last_used_at=last_used.get(role.pk))
        for role in roles
    ]
    used = sorted((link for link in links if link.last_used_at is not None),
                  key=lambda link: link.last_used_at, reverse=True)  # type: ignore[arg-type,return-value]
    favourites = [link for link in links if link.is_favourite]
    return Directory(links=links, favourites=favourites, recent=used[:RECENT_LINKS_SHOWN])


def link_of_person(*, person: User, role_id: int, at: datetime | None = None) -> AccountRole | None:
    """The account role ``role_id`` if ``person`` may use it now, else None (the caller answers 404)."""
    return links_for_person(person=person, at=at).filter(pk=role_id).first()


def grants_covering(*, person: User, account_role: AccountRole, at: datetime | None = None) -> QuerySet[Grant]:
    """The grants in force that let ``person`` use ``account_role``: why they can see the link.
    Oldest first."""
    return (
        grants_of_person(person=person, at=at)
        .filter(Q(account_id=account_role.account_id) | Q(client_id=account_role.account.client_id),
                templates=account_role.template_id)
        .select_related("team", "person", "client", "account", "granted_by")
        .prefetch_related("templates")
        .distinct()
        .order_by("granted_at", "pk")
    )


def link_exports_of_person(*, person: User) -> list[LinkExport]:
    """The person's usable links in export form (invalid ones left out: they have no valid URL)."""
    exports = []
    for link in directory_of_person(person=person).links:
        if link.problem:
            continue
        role = link.role
        account = role.account
        exports.append(
            LinkExport(
                profile_name=f"{account.client.slug}-{account.name}-{role.template.tier}",
                account_id=account.account_id or "",
                role_path=role.role_path,
                role_name=role.role_name,
                display_name=role.display_name,
                color=role.color,
            )
        )
    return exports


# --- managers and auditors -----------------------------------------------------------------------


def grants_listed(*, status: str = "in_force", team: Team | None = None, person: User | None = None,
                  at: datetime | None = None) -> QuerySet[Grant]:
    """Grants for the managers' and auditors' list. ``status``: "in_force", "revoked",
    "expired" or "all"."""
    moment = at or timezone.now()
    grants = Grant.objects.select_related(
        "team", "person", "client", "account", "account__client", "granted_by", "revoked_by"
    ).prefetch_related("templates").annotate(in_force=Exists(grants_in_force(at=moment).filter(pk=OuterRef("pk"))))
    if status == "in_force":
        grants = grants.filter(pk__in=grants_in_force(at=moment).values("pk"))
    elif status == "revoked":
        grants = grants.filter(revoked_at__isnull=False, revoked_at__lte=moment)
    elif status == "expired":
        grants = grants.filter(revoked_at__isnull=True, expires_at__lte=moment)
    if team is not None:
        grants = grants.filter(team=team)
    if person is not None:
        grants = grants.filter(person=person)
    return grants.order_by("-granted_at", "-pk")


def teams_listed() -> QuerySet[Team]:
    in_force = grants_in_force().filter(team=OuterRef("pk"))
    members = memberships_in_force().filter(team=OuterRef("pk"))
    return Team.objects.annotate(
        member_count=Coalesce(
            Subquery(members.values("team").annotate(n=Count("pk")).values("n")[:1]), 0
        ),
        grant_count=Coalesce(Subquery(in_force.values("team").annotate(n=Count("pk")).values("n")[:1]), 0),
    ).select_related("enforced_principal").order_by("name")


def team_members_now(*, team: Team) -> QuerySet[TeamMembership]:
    return memberships_in_force().filter(team=team).select_related("person", "added_by").order_by(
        "person__username"
    )


def team_membership_history(*, team: Team) -> QuerySet[TeamMembership]:
    return team.memberships.select_related("person", "added_by", "removed_by").order_by("-added_at", "-pk")


def enforcement_overview() -> dict[str, Any]:
    """Where enforcement stands: every principal with what was last applied, and the latest drift
    check with its findings."""
    last_check = DriftCheck.objects.first()
    return {
        "principals": EnforcedPrincipal.objects.select_related("team", "person").order_by(
            "principal_type", "principal_name"
        ),
        "last_check": last_check,
        "findings": (
            last_check.findings.select_related("team", "person").order_by("principal_type", "principal_name")
            if last_check else DriftFinding.objects.none()
        ),
        "recent_checks": DriftCheck.objects.all()[:10],
    }
