"""Reads on roles and grants, always scoped to a person."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Count, DateTimeField, Exists, F, Max, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from portal.people.duties import auditor_rule_applies_to
from portal.people.models import User
from switchroles.accounts import client_model, ended_account_states
from switchroles.links import LinkChecker, LinkExport
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

# A grant on an account in one of these states (or on a client that left) gives nothing: it ended.
ENDED_ACCOUNT_STATES = ended_account_states()


def grants_in_force(*, at: datetime | None = None) -> QuerySet[Grant]:
    """Grants that give access at ``at`` (default: now): granted by then, not yet revoked, not
    expired, and not on an account handed back (or never made) or a client that left."""
    moment = at or timezone.now()
    return Grant.objects.filter(granted_at__lte=moment).filter(
        Q(revoked_at__isnull=True) | Q(revoked_at__gt=moment)
    ).filter(Q(expires_at__isnull=True) | Q(expires_at__gt=moment)).exclude(
        account__state__in=ENDED_ACCOUNT_STATES
    ).exclude(client__state=client_model().State.LEFT)


def grant_ended_with_account(grant: Grant) -> bool:
    """Whether the grant ended because its account was handed back (or its client left)."""
    if grant.account is not None:
        return grant.account.state in ENDED_ACCOUNT_STATES
    return grant.client is not None and grant.client.state == client_model().State.LEFT


def memberships_in_force(*, at: datetime | None = None) -> QuerySet[TeamMembership]:
    moment = at or timezone.now()
    return TeamMembership.objects.filter(added_at__lte=moment).filter(
        Q(removed_at__isnull=True) | Q(removed_at__gt=moment)
    )


def grants_of_person(*, person: User, at: datetime | None = None) -> QuerySet[Grant]:
    """Grants in force at ``at`` that reach ``person``: their own, and their teams' while they were members."""
    # "team IN (their teams)" rather than a correlated EXISTS: the database then reads the grants
    # through the person and team indexes instead of testing every grant (see make bench).
    their_teams = memberships_in_force(at=at).filter(person=person).values("team_id")
    return grants_in_force(at=at).filter(Q(person=person) | Q(team_id__in=their_teams))


def _reach_of_person(*, person: User, at: datetime | None = None) -> Q:
    """A filter on ``AccountRole``: the (account, template) pairs the person's grants reach at ``at``.

    Read in one small query over the person's own grants, so the role query that uses it is a
    plain indexed lookup, whatever the size of the estate."""
    # (lookup, account or client pk) -> the templates granted on it.
    granted: dict[tuple[str, int], set[int]] = {}
    # Separation of duties: an auditor's grants (an existing conflict) reach nothing, in the same query.
    pairs = (grants_of_person(person=person, at=at).exclude(auditor_rule_applies_to(person)).order_by()
             .values_list("account_id", "client_id", "templates"))
    for account_id, client_id, template_id in pairs:
        if template_id is None:
            continue
        scope = ("account_id__in", account_id) if account_id is not None else ("account__client_id__in", client_id)
        granted.setdefault(scope, set()).add(template_id)
    # Accounts (or clients) granted the same templates share one condition: two tiers on 500
    # clients are "tier in (both) and client in (500)", not the 500 clients once per tier. Half the
    # parameters for Django, the driver and the planner to go through at thousands of links.
    scopes: dict[tuple[str, tuple[int, ...]], list[int]] = {}
    for (lookup, pk), templates in granted.items():
        scopes.setdefault((lookup, tuple(sorted(templates))), []).append(pk)
    reached = Q(pk__in=[])  # no grant: nothing (the database is not even asked)
    for (lookup, template_ids), pks in sorted(scopes.items()):
        reached |= Q(template_id__in=template_ids, **{lookup: sorted(pks)})
    return reached


def links_for_person(*, person: User, at: datetime | None = None) -> QuerySet[AccountRole]:
    """The active account roles ``person`` may use now: exactly what their directory shows.

    Reads the person's grants at once (one query); the queryset returned is the roles they reach."""
    return (
        AccountRole.objects.filter(state=AccountRole.State.ACTIVE, account__account_id__isnull=False)
        .filter(_reach_of_person(person=person, at=at))
        .select_related("account", "account__client", "template")
        .order_by("account__client__name", "account__name", "template__pk")
    )


# --- the directory -------------------------------------------------------------------------------


@dataclass(slots=True)
class DirectoryLink:
    """One row of a person's directory: what it shows of the role, ``problem`` when its stored
    fields would not make a valid console link (then it has no link), its palette colour as hex."""

    role_id: int
    client_id: int
    client_name: str
    client_slug: str
    account_name: str
    account_id: str
    template_name: str
    tier: str
    role_path: str
    role_name: str
    display_name: str
    color: str
    is_favourite: bool = False
    last_used_at: datetime | None = None
    problem: str = ""
    region: str = ""
    max_session_seconds: int | None = None
    account_pk: int = 0
    template_id: int = 0
    # Why AWS will refuse the link although the directory shows it, with what to do (empty: nothing
    # known against it); set by ``switchroles.access_selectors.directory_refusals_mark``.
    refused: str = ""

    @property
    def filter_text(self) -> str:
        # What the display name is made of (it may be cut short), and the slug and account ID.
        return f"{self.client_name} {self.client_slug} {self.account_name} {self.account_id} {self.template_name}"

    def matches(self, words: list[str]) -> bool:
        """Every word (lowercase) is in the client, account name or ID, or tier, in any order."""
        text = self.filter_text.lower()
        return all(word in text for word in words)


@dataclass(slots=True)
class ClientLinks:
    client_id: int
    client_name: str
    client_slug: str
    links: list[DirectoryLink]


@dataclass(frozen=True)
class Directory:
    links: list[DirectoryLink]
    favourites: list[DirectoryLink]
    recent: list[DirectoryLink]
    clients: list[ClientLinks]


RECENT_LINKS_SHOWN = 8
# What the directory shows of each row. Read as plain values: building four model instances per
# row would cost more than the query itself at thousands of links (see make bench).
_DIRECTORY_FIELDS = (
    "id", "account__client_id", "account__client__name", "account__client__slug", "account__name",
    "account__account_id", "template__name", "template__tier", "role_path", "role_name", "display_name", "color",
    "template__region", "template__max_session_seconds", "account_id", "template_id",
)


def directory_of_person(*, person: User) -> Directory:
    """Everything the person's ``/links/`` page shows, in three queries whatever the number of
    links: their grants' reach, their usable links (grouped by client, in order), and their
    favourites with when they last used each link (one small indexed union on their own rows,
    cheaper than correlated subqueries per link)."""
    rows = links_for_person(person=person).values_list(*_DIRECTORY_FIELDS)
    # When they last used each link, and their favourites: one query (a union) on their own rows.
    uses = (LinkUse.objects.filter(person=person).values("account_role")
            .annotate(r_role=F("account_role_id"), r_last=Max("used_at"), r_favourite=Value(False))
            .order_by().values_list("r_role", "r_last", "r_favourite"))
    starred = (Favourite.objects.filter(person=person)
               .annotate(r_role=F("account_role_id"), r_last=Value(None, DateTimeField()), r_favourite=Value(True))
               .order_by().values_list("r_role", "r_last", "r_favourite"))
    favourite_ids: set[int] = set()
    last_used: dict[int, datetime] = {}
    for role_id, last, is_favourite in uses.union(starred, all=True):
        if is_favourite:
            favourite_ids.add(role_id)
        else:
            last_used[role_id] = last
    checker = LinkChecker()
    links: list[DirectoryLink] = []
    clients: list[ClientLinks] = []
    # One pass, no call per row beyond the checker's: this runs for each of thousands of links.
    for (role_id, client_id, client_name, client_slug, account_name, account_id, template_name, tier,
         role_path, role_name, display_name, color, region, max_session_seconds, account_pk, template_id) in rows:
        account_id = account_id or ""
        problem, color = checker.check(account_id, role_path, role_name, display_name, color)
        link = DirectoryLink(role_id, client_id, client_name, client_slug, account_name, account_id, template_name,
                             tier, role_path, role_name, display_name, color, role_id in favourite_ids,
                             last_used.get(role_id), problem, region or "", max_session_seconds, account_pk,
                             template_id)
        links.append(link)
        if not clients or clients[-1].client_id != client_id:  # rows come in client order
            clients.append(ClientLinks(client_id, client_name, client_slug, []))
        clients[-1].links.append(link)
    used = sorted((link for link in links if link.last_used_at is not None),
                  key=lambda link: link.last_used_at, reverse=True)  # type: ignore[arg-type,return-value]
    favourites = [link for link in links if link.is_favourite]
    return Directory(links=links, favourites=favourites, recent=used[:RECENT_LINKS_SHOWN], clients=clients)


def filter_words(query: str) -> list[str]:
    """The directory filter's words: lowercase, split on spaces (and "/" as in display names)."""
    return query.lower().replace("/", " ").split()


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


def link_exports_of_person(*, person: User, client_slug: str | None = None,
                           favourites_only: bool = False) -> list[LinkExport]:
    """The person's usable links in export form (invalid ones left out: they have no valid URL);
    only one client's (by slug) or only their favourites when asked."""
    exports = []
    for link in directory_of_person(person=person).links:
        if link.problem or (client_slug is not None and link.client_slug != client_slug) or \
                (favourites_only and not link.is_favourite):
            continue
        exports.append(
            LinkExport(
                profile_name=f"{link.client_slug}-{link.account_name}-{link.tier}",
                account_id=link.account_id,
                role_path=link.role_path,
                role_name=link.role_name,
                display_name=link.display_name,
                color=link.color,
                client_name=link.client_name,
                account_name=link.account_name,
                tier_label=link.template_name,
                region=link.region,
                max_session_seconds=link.max_session_seconds,
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
