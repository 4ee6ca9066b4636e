"""Seed a managed-services provider's worth of data, fast (``bulk_create`` throughout).

The plan is drawn first in plain Python (deterministic: a fixed random seed), then written in bulk.
The same plan answers "which links may this person use now?" without the ORM (:func:`expected_links`),
so the benchmark can check that the directory, the selector and the SQL baseline agree with it.

Two people are arranged on purpose:

- ``bench-ten`` may use exactly 10 links, through a team grant on one account, a team grant on a
  client, a personal grant on an account and a personal client grant that overlaps the first one;
  a revoked and an expired grant, and an ended team membership, add nothing.
- ``bench-many`` may use exactly ``scale.many_links`` (3,000) links: their team holds client-wide
  Engineer and On-call grants on 500 clients; overlapping personal grants, revoked and expired ones
  add nothing.

Everyone else gets a random mix of team and personal grants (client-wide and single-account, some
revoked, some expired, some expiring later). The audit log gets one event per thing seeded plus
link uses and sign-ins, chained exactly as ``portal.audit.audit_record`` would chain them.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import pyotp
from allauth.mfa.totp.internal.auth import TOTP
from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.utils import timezone

from onboarding.models import AwsAccount, Client
from portal.audit import GENESIS_DIGEST, compute_digest
from portal.audit.models import AuditChainHead, AuditEvent
from portal.people.models import User
from portal.people.permissions import AUDITOR, ENGINEER, MANAGER
from switchroles.links import display_name_for
from switchroles.models import AccountRole, Grant, LinkUse, RoleTemplate, Team, TeamMembership

BATCH = 2000
TEN_LINKS = 10
TEMPLATES_PER_ACCOUNT = 3
# Fixed clients the 10-link person's grants use.
TEN_CLIENTS = 5

_COMPANY_WORDS = (
    "Acme", "Northwind", "Globex", "Initech", "Umbrella", "Stark", "Wayne", "Tyrell", "Cyberdyne", "Hooli",
    "Vandelay", "Soylent", "Wonka", "Oscorp", "Aperture", "Gringotts", "Monarch", "Pied Piper", "Dunder",
    "Massive Dynamic", "Blue Sun", "Nakatomi", "Virtucon", "Krusty", "Sirius", "Contoso", "Fabrikam",
)
_COMPANY_KINDS = ("Logistics", "Retail", "Health", "Media", "Energy", "Finance", "Labs", "Foods", "Travel", "Games")
_ACCOUNT_KINDS = ("production", "staging", "development", "sandbox", "data", "security")
_FIRST = ("Ada", "Ben", "Chloe", "Dev", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo", "Kemal", "Lina", "Mo", "Nia")
_LAST = ("Okafor", "Patel", "Quinn", "Rossi", "Silva", "Tanaka", "Ueda", "Vargas", "Weber", "Xu", "Yilmaz", "Zhou")


@dataclass(frozen=True)
class Scale:
    clients: int = 1000
    accounts_per_client: int = 3
    people: int = 500
    teams: int = 50
    grants: int = 10_000
    audit_events: int = 200_000
    link_uses: int = 50_000
    many_links: int = 3000

    def __post_init__(self) -> None:
        per_client = 2 * self.accounts_per_client  # the many-link team's grants carry two tiers
        if self.accounts_per_client < 1 or self.many_links % per_client:
            raise ValueError(f"many_links must be a multiple of {per_client}")
        if self.many_links // per_client > self.clients or self.clients < TEN_CLIENTS:
            raise ValueError("not enough clients for the arranged people")
        if self.people < 4 or self.teams < 3:
            raise ValueError("at least 4 people and 3 teams")

    @property
    def many_clients(self) -> int:
        return self.many_links // (2 * self.accounts_per_client)


FULL = Scale()
# For the tests of the benchmark itself: seconds, not minutes.
TINY = Scale(clients=24, accounts_per_client=3, people=24, teams=4, grants=160, audit_events=1500,
             link_uses=120, many_links=60)


# --------------------------------------------------------------------------------------------------
# The plan: plain Python, indices instead of rows
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PlannedGrant:
    team: int | None
    person: int | None
    client: int | None
    account: int | None
    templates: tuple[int, ...]  # template positions 0..2
    granted_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    reason: str = ""

    def in_force(self, at: datetime) -> bool:
        return (
            self.granted_at <= at
            and (self.revoked_at is None or self.revoked_at > at)
            and (self.expires_at is None or self.expires_at > at)
        )


@dataclass(frozen=True)
class PlannedMembership:
    team: int
    person: int
    added_at: datetime
    removed_at: datetime | None = None

    def in_force(self, at: datetime) -> bool:
        return self.added_at <= at and (self.removed_at is None or self.removed_at > at)


@dataclass
class Plan:
    scale: Scale
    now: datetime
    memberships: list[PlannedMembership] = field(default_factory=list)
    grants: list[PlannedGrant] = field(default_factory=list)

    def client_of(self, account: int) -> int:
        return account // self.scale.accounts_per_client

    def accounts_of(self, client: int) -> range:
        per = self.scale.accounts_per_client
        return range(client * per, (client + 1) * per)

    @property
    def account_count(self) -> int:
        return self.scale.clients * self.scale.accounts_per_client


TEN, MANY = 0, 1  # people indices of the arranged people; their teams have the same index


def plan(scale: Scale, *, now: datetime, seed: int = 8) -> Plan:
    rng = random.Random(seed)  # noqa: S311 - test data, not security
    result = Plan(scale=scale, now=now)
    day = timedelta(days=1)
    teams, people = scale.teams, scale.people

    # Memberships: everyone in one team (ten in team 0, many in team 1, the rest round-robin), some
    # in a second one, some with an ended membership. Ten once was in team 2 (which has grants).
    joined = now - 400 * day
    result.memberships.append(PlannedMembership(team=TEN, person=TEN, added_at=joined))
    result.memberships.append(PlannedMembership(team=MANY, person=MANY, added_at=joined))
    result.memberships.append(PlannedMembership(team=2, person=TEN, added_at=joined, removed_at=now - 30 * day))
    for person in range(2, people):
        home = person % teams
        result.memberships.append(PlannedMembership(team=home, person=person, added_at=joined))
        if person % 5 == 0:
            second = (person * 7) % teams
            if second != home:
                result.memberships.append(
                    PlannedMembership(team=second, person=person, added_at=now - rng.randint(30, 300) * day)
                )
        if person % 11 == 0:
            former = (person * 3 + 1) % teams
            if former != home:
                result.memberships.append(
                    PlannedMembership(team=former, person=person, added_at=now - 300 * day,
                                      removed_at=now - rng.randint(2, 100) * day)
                )

    grants = result.grants
    old = now - 200 * day

    # The 10-link person: 3 + 3 + 2 + (3, one shared with the first) = 10.
    first_account = result.accounts_of(0)[0]
    grants += [
        PlannedGrant(team=TEN, person=None, client=None, account=first_account, templates=(0, 1, 2), granted_at=old),
        PlannedGrant(team=TEN, person=None, client=1, account=None, templates=(1,), granted_at=old),
        PlannedGrant(team=None, person=TEN, client=None, account=result.accounts_of(2)[0], templates=(0, 2),
                     granted_at=old),
        PlannedGrant(team=None, person=TEN, client=0, account=None, templates=(0,), granted_at=old,
                     expires_at=now + 60 * day),
        PlannedGrant(team=TEN, person=None, client=3, account=None, templates=(0, 1, 2), granted_at=old,
                     revoked_at=now - 10 * day),
        PlannedGrant(team=None, person=TEN, client=4, account=None, templates=(1,), granted_at=old,
                     expires_at=now - 5 * day),
    ]

    # The many-link person: Engineer + On-call on every account of `many_clients` clients.
    many_clients = scale.many_clients
    for client in range(many_clients):
        grants.append(PlannedGrant(team=MANY, person=None, client=client, account=None, templates=(1, 2),
                                   granted_at=old - client * timedelta(minutes=7)))
    for client in range(0, many_clients, 5):  # overlapping personal grants: nothing new
        grants.append(PlannedGrant(team=None, person=MANY, client=None, account=result.accounts_of(client)[0],
                                   templates=(1,), granted_at=old))
    beyond = range(many_clients, scale.clients)
    for client in list(beyond)[: max(1, many_clients // 5)]:
        grants.append(PlannedGrant(team=MANY, person=None, client=client, account=None, templates=(0,),
                                   granted_at=old, revoked_at=now - rng.randint(1, 90) * day))
    for client in list(beyond)[: max(1, many_clients // 10)]:
        grants.append(PlannedGrant(team=None, person=MANY, client=client, account=None, templates=(2,),
                                   granted_at=old, expires_at=now - rng.randint(1, 30) * day))

    # Everyone else: random grants until the total is reached.
    accounts = result.account_count
    while len(grants) < scale.grants:
        to_team = rng.random() < 0.35
        holder_team = rng.randrange(2, teams) if to_team else None
        holder_person = None if to_team else rng.randrange(2, people)
        on_client: int | None = None
        on_account: int | None = None
        if rng.random() < 0.5:
            on_client = rng.randrange(scale.clients)
        else:
            on_account = rng.randrange(accounts)
        size = rng.choices((1, 2, 3), weights=(5, 3, 2))[0]
        templates = tuple(sorted(rng.sample(range(TEMPLATES_PER_ACCOUNT), size)))
        granted_at = now - timedelta(days=rng.randint(2, 700), minutes=rng.randint(0, 1439))
        expires_at = revoked_at = None
        fate = rng.random()
        if fate < 0.10:
            revoked_at = granted_at + (now - granted_at) * rng.uniform(0.1, 0.9)
        elif fate < 0.15:
            expires_at = granted_at + (now - granted_at) * rng.uniform(0.1, 0.9)
        elif fate < 0.30:
            expires_at = now + timedelta(days=rng.randint(7, 365))
        grants.append(PlannedGrant(team=holder_team, person=holder_person, client=on_client, account=on_account,
                                   templates=templates, granted_at=granted_at, expires_at=expires_at,
                                   revoked_at=revoked_at))
    return result


def expected_links(the_plan: Plan, *, at: datetime | None = None) -> dict[int, set[tuple[int, int]]]:
    """person index → the (account index, template position) links they may use at ``at``,
    computed from the plan alone (every seeded role is active)."""
    moment = at or the_plan.now
    teams_of: dict[int, set[int]] = defaultdict(set)
    for membership in the_plan.memberships:
        if membership.in_force(moment):
            teams_of[membership.team].add(membership.person)
    links: dict[int, set[tuple[int, int]]] = defaultdict(set)
    for grant in the_plan.grants:
        if not grant.in_force(moment):
            continue
        who = {grant.person} if grant.person is not None else teams_of[grant.team]  # type: ignore[index]
        where = [grant.account] if grant.account is not None else the_plan.accounts_of(grant.client)  # type: ignore[arg-type]
        reach = {(account, template) for account in where for template in grant.templates}
        for person in who:
            links[person] |= reach
    return links


class GrantIndex:
    """Grants in force by the account or client they are on, to find one that covers a link."""

    def __init__(self, the_plan: Plan) -> None:
        self.plan = the_plan
        self.on_account: dict[int, list[int]] = defaultdict(list)
        self.on_client: dict[int, list[int]] = defaultdict(list)
        for index, grant in enumerate(the_plan.grants):
            if not grant.in_force(the_plan.now):
                continue
            if grant.account is not None:
                self.on_account[grant.account].append(index)
            else:
                self.on_client[grant.client].append(index)  # type: ignore[index]

    def covering(self, person: int, link: tuple[int, int], teams: set[int]) -> int | None:
        """Index of a grant in force that gives ``person`` the link, or None."""
        account, template = link
        for index in self.on_account[account] + self.on_client[self.plan.client_of(account)]:
            grant = self.plan.grants[index]
            if template in grant.templates and (
                grant.person == person or (grant.team is not None and grant.team in teams)
            ):
                return index
        return None


# --------------------------------------------------------------------------------------------------
# Writing it
# --------------------------------------------------------------------------------------------------


@dataclass
class Seeded:
    """What the benchmark needs from the seeded database."""

    plan: Plan
    ten: User
    many: User
    manager: User
    auditor: User
    person_ids: list[int]
    role_ids: dict[tuple[int, int], int]  # (account index, template position) → AccountRole pk
    counts: dict[str, int]

    def role_ids_for(self, person_index: int) -> set[int]:
        return {self.role_ids[link] for link in expected_links(self.plan)[person_index]}


def _bulk(model: Any, objects: Iterable[Any]) -> list[Any]:
    return model.objects.bulk_create(list(objects), batch_size=BATCH)


def _enrol_totp(user: User) -> None:
    TOTP.activate(user, pyotp.random_base32())


def _client_name(index: int) -> str:
    word = _COMPANY_WORDS[index % len(_COMPANY_WORDS)]
    kind = _COMPANY_KINDS[(index // len(_COMPANY_WORDS)) % len(_COMPANY_KINDS)]
    return f"{word} {kind} {index:04d}"


def seed(scale: Scale = FULL, *, now: datetime | None = None,
         progress: Callable[[str], None] = lambda _: None) -> Seeded:
    """Write the plan for ``scale`` into the (empty, migrated) default database."""
    moment = now or timezone.now()
    the_plan = plan(scale, now=moment)
    with transaction.atomic():
        seeded = _write(the_plan, progress)
    return seeded


def _write(the_plan: Plan, progress: Callable[[str], None]) -> Seeded:  # noqa: C901 - one straight line
    scale, now = the_plan.scale, the_plan.now
    rng = random.Random(88)  # noqa: S311 - test data
    unusable = make_password(None)
    groups = {g.name: g for g in Group.objects.filter(name__in=[MANAGER, ENGINEER, AUDITOR])}

    # People.
    manager, auditor = _bulk(User, [
        User(username="bench-manager", email="bench-manager@example.com", iam_username="bench-manager",
             first_name="Morgan", last_name="Manager", password=unusable),
        User(username="bench-auditor", email="bench-auditor@example.com", iam_username="bench-auditor",
             first_name="Audrey", last_name="Auditor", password=unusable),
    ])
    names = ["bench-ten", "bench-many"] + [f"bench-person-{i:03d}" for i in range(2, scale.people)]
    people = _bulk(User, [
        User(username=name, email=f"{name}@example.com", iam_username=name, password=unusable,
             first_name=_FIRST[i % len(_FIRST)], last_name=_LAST[(i // len(_FIRST)) % len(_LAST)])
        for i, name in enumerate(names)
    ])
    user_groups = User.groups.through
    _bulk(user_groups, [user_groups(user_id=p.pk, group_id=groups[ENGINEER].pk) for p in people]
          + [user_groups(user_id=manager.pk, group_id=groups[MANAGER].pk),
             user_groups(user_id=auditor.pk, group_id=groups[AUDITOR].pk)])
    for user in (people[TEN], people[MANY], auditor, manager):
        _enrol_totp(user)
    progress(f"{len(people)} people")

    # Clients, accounts, roles.
    templates = list(RoleTemplate.objects.order_by("pk")[:TEMPLATES_PER_ACCOUNT])
    if len(templates) < TEMPLATES_PER_ACCOUNT:
        raise RuntimeError("the seeded role templates are missing (switchroles migration 0002)")
    clients = _bulk(Client, [
        Client(name=_client_name(i), slug=f"client-{i:04d}", created_by=manager) for i in range(scale.clients)
    ])
    accounts = _bulk(AwsAccount, [
        AwsAccount(
            client=clients[the_plan.client_of(a)],
            name=f"{clients[the_plan.client_of(a)].slug}-{_ACCOUNT_KINDS[a % scale.accounts_per_client]}",
            account_id=f"{200000000000 + a:012d}",
            root_email=f"awsaccounts+{clients[the_plan.client_of(a)].slug}-{a % scale.accounts_per_client}"
                       "@example.com",
            origin=AwsAccount.Origin.CREATED,
            state=AwsAccount.State.ACTIVE,
            requested_by=manager,
            reason="Seeded by make bench.",
        )
        for a in range(the_plan.account_count)
    ])
    activated = now - timedelta(days=420)
    roles = _bulk(AccountRole, [
        AccountRole(
            account=account,
            template=template,
            role_path=f"/switchyard/{account.client.slug}/",
            role_name=template.role_name,
            arn=f"arn:aws:iam::{account.account_id}:role/switchyard/{account.client.slug}/{template.role_name}",
            state=AccountRole.State.ACTIVE,
            display_name=display_name_for(account.client.name, account.name, template.name),
            color=template.console_color,
            provisioned_revision=template.revision,
            activated_at=activated,
        )
        for account in accounts
        for template in templates
    ])
    role_ids = {(a, t): roles[a * TEMPLATES_PER_ACCOUNT + t].pk
                for a in range(len(accounts)) for t in range(TEMPLATES_PER_ACCOUNT)}
    progress(f"{len(clients)} clients, {len(accounts)} accounts, {len(roles)} account roles")

    # Teams, memberships, grants.
    teams = _bulk(Team, [
        Team(name=f"Team {j:02d}", iam_group_name=f"bench-team-{j:02d}") for j in range(scale.teams)
    ])
    memberships = _bulk(TeamMembership, [
        TeamMembership(team=teams[m.team], person=people[m.person], added_at=m.added_at, added_by=manager,
                       removed_at=m.removed_at, removed_by=manager if m.removed_at else None)
        for m in the_plan.memberships
    ])
    grants = _bulk(Grant, [
        Grant(
            team=teams[g.team] if g.team is not None else None,
            person=people[g.person] if g.person is not None else None,
            client=clients[g.client] if g.client is not None else None,
            account=accounts[g.account] if g.account is not None else None,
            reason=g.reason or "Seeded by make bench.",
            granted_by=manager,
            granted_at=g.granted_at,
            expires_at=g.expires_at,
            revoked_at=g.revoked_at,
            revoked_by=manager if g.revoked_at else None,
            revoke_reason="No longer needed." if g.revoked_at else "",
        )
        for g in the_plan.grants
    ])
    through = Grant.templates.through
    _bulk(through, [
        through(grant_id=grant.pk, roletemplate_id=templates[t].pk)
        for grant, planned in zip(grants, the_plan.grants, strict=True)
        for t in planned.templates
    ])
    progress(f"{len(teams)} teams, {len(memberships)} memberships, {len(grants)} grants")

    # Link uses, by people who may use the link, through a grant that covers it.
    links = expected_links(the_plan)
    teams_now: dict[int, set[int]] = defaultdict(set)
    for m in the_plan.memberships:
        if m.in_force(now):
            teams_now[m.person].add(m.team)
    users_with_links = sorted(p for p, reach in links.items() if reach)
    sorted_links = {p: sorted(links[p]) for p in users_with_links}
    # The grant a use went through: one that covers the link, looked up once per (person, link).
    grant_cache: dict[tuple[int, tuple[int, int]], int | None] = {}
    index = GrantIndex(the_plan)
    uses: list[LinkUse] = []
    candidates = [(p, link) for p in users_with_links for link in rng.sample(sorted_links[p], min(8, len(links[p])))]
    for i in range(scale.link_uses if candidates else 0):
        person, link = candidates[i % len(candidates)]
        key = (person, link)
        if key not in grant_cache:
            grant_cache[key] = index.covering(person, link, teams_now[person])
        used_at = now - timedelta(seconds=rng.randint(3600, 90 * 86400))
        role_pk = role_ids[link]
        grant_index = grant_cache[key]
        uses.append(LinkUse(person=people[person], account_role_id=role_pk,
                            grant=grants[grant_index] if grant_index is not None else None,
                            used_at=used_at, client_ip=f"10.{person % 250}.{link[0] % 250}.{link[1] + 1}"))
    _bulk(LinkUse, uses)
    progress(f"{len(uses)} link uses")

    # The audit log: what was seeded, the link uses, then sign-ins up to the total.
    events: list[dict[str, Any]] = []

    def event(at: datetime, action: str, actor: User | None, target_type: str, target_id: Any, label: str,
              details: dict[str, Any] | None = None, ip: str | None = None) -> None:
        events.append({"occurred_at": at, "action": action, "actor": actor, "target_type": target_type,
                       "target_id": str(target_id), "target_label": label[:255], "details": details or {},
                       "client_ip": ip})

    for c in clients:
        event(now - timedelta(days=430), "client.created", manager, "onboarding.client", c.pk, c.name)
    for a in accounts:
        event(now - timedelta(days=425), "account.active", None, "onboarding.awsaccount", a.pk, a.name,
              {"account_id": a.account_id})
    for r in roles:
        event(activated, "role.published", None, "switchroles.accountrole", r.pk, r.display_name,
              {"arn": r.arn})
    for m in memberships:
        event(m.added_at, "team.member_added", manager, "switchroles.team", m.team_id, m.team.name,
              {"person": m.person.username})
        if m.removed_at:
            event(m.removed_at, "team.member_removed", manager, "switchroles.team", m.team_id, m.team.name,
                  {"person": m.person.username})
    for g in grants:
        event(g.granted_at, "grant.created", manager, "switchroles.grant", g.pk, str(g.pk),
              {"reason": g.reason})
        if g.revoked_at:
            event(g.revoked_at, "grant.revoked", manager, "switchroles.grant", g.pk, str(g.pk),
                  {"reason": g.revoke_reason})
    for use in uses:
        event(use.used_at, "link.used", use.person, "switchroles.accountrole", use.account_role_id,
              str(use.account_role_id), {"grant": use.grant_id}, use.client_ip)
    remaining = max(0, scale.audit_events - len(events))
    for i in range(remaining):
        person = people[i % len(people)]
        event(now - timedelta(seconds=rng.randint(60, 365 * 86400)), "auth.signed_in", person, "portal.user",
              person.pk, person.username, {}, f"192.168.{i % 250}.{(i // 250) % 250 + 1}")
    events.sort(key=lambda e: e["occurred_at"])
    head = _write_audit_chain(events)
    progress(f"{head.last_sequence} audit events, chained")

    counts = {
        "clients": Client.objects.count(),
        "accounts": AwsAccount.objects.count(),
        "account_roles": AccountRole.objects.count(),
        "people": len(people),
        "teams": Team.objects.count(),
        "team_memberships": TeamMembership.objects.count(),
        "grants": Grant.objects.count(),
        "link_uses": LinkUse.objects.count(),
        "audit_events": AuditEvent.objects.count(),
    }
    return Seeded(plan=the_plan, ten=people[TEN], many=people[MANY], manager=manager, auditor=auditor,
                  person_ids=[p.pk for p in people], role_ids=role_ids, counts=counts)


def analyze() -> None:
    """PostgreSQL: gather the planner's statistics now, as autovacuum would within a minute of a
    bulk load in a real deployment; without them it plans for empty tables. (SQLite keeps none
    unless asked, in the sandbox too, so it is measured as it runs there.)"""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute("ANALYZE")


def _write_audit_chain(events: list[dict[str, Any]]) -> AuditChainHead:
    """Append ``events`` (in order) to the chain exactly as ``audit_record`` would, in bulk."""
    head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
    previous = head.last_digest or GENESIS_DIGEST
    sequence = head.last_sequence
    rows: list[AuditEvent] = []
    for e in events:
        sequence += 1
        actor: User | None = e["actor"]
        actor_label = actor.get_username() if actor else "system"
        digest = compute_digest(
            previous_digest=previous, sequence=sequence, occurred_at=e["occurred_at"],
            actor_id=actor.pk if actor else None, actor_label=actor_label, action=e["action"],
            target_type=e["target_type"], target_id=e["target_id"], target_label=e["target_label"],
            details=e["details"], client_ip=e["client_ip"],
        )
        rows.append(AuditEvent(
            sequence=sequence, occurred_at=e["occurred_at"], actor=actor, actor_label=actor_label,
            action=e["action"], target_type=e["target_type"], target_id=e["target_id"],
            target_label=e["target_label"], details=e["details"], client_ip=e["client_ip"],
            previous_digest=previous, digest=digest,
        ))
        previous = digest
        if len(rows) >= 20_000:
            AuditEvent.objects.bulk_create(rows, batch_size=BATCH)
            rows = []
    AuditEvent.objects.bulk_create(rows, batch_size=BATCH)
    head.last_sequence = sequence
    head.last_digest = previous
    head.save(update_fields=["last_sequence", "last_digest"])
    return head
