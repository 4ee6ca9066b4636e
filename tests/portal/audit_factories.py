"""Rows for the auditors' tests, made directly with the ORM and with explicit times, so a history
can be laid out in the past and the access matrix rebuilt at any moment of it."""

from __future__ import annotations

import itertools
from datetime import datetime

from django.utils import timezone

from onboarding.models import AwsAccount, Client
from portal.people.models import User
from switchroles.models import AccountRole, Grant, RoleTemplate, Team, TeamMembership

_numbers = itertools.count(1)


def make_client(name: str) -> Client:
    return Client.objects.create(name=name, slug=name.lower().replace(" ", "-")[:32])


def make_account(client: Client, name: str = "Production") -> AwsAccount:
    number = f"{300000000000 + next(_numbers) * 11:012d}"
    return AwsAccount.objects.create(
        client=client, name=name, account_id=number, root_email=f"awsaccounts+{number}@example.com",
        origin=AwsAccount.Origin.CREATED, state=AwsAccount.State.ACTIVE, reason="test",
    )


def make_role(account: AwsAccount, tier: str, *, activated_at: datetime | None = None,
              removed_at: datetime | None = None) -> AccountRole:
    template = RoleTemplate.objects.get(tier=tier)
    slug = account.client.slug
    state = AccountRole.State.REMOVED if removed_at else AccountRole.State.ACTIVE
    return AccountRole.objects.create(
        account=account, template=template, role_path=f"/switchyard/{slug}/", role_name=template.role_name,
        arn=f"arn:aws:iam::{account.account_id}:role/switchyard/{slug}/{template.role_name}",
        state=state, display_name=f"{account.client.name} {account.name} {template.name}"[:64],
        color=template.console_color, activated_at=activated_at or timezone.now(), removed_at=removed_at,
    )


def make_team(name: str) -> Team:
    return Team.objects.create(name=name, iam_group_name=name.replace(" ", "-"))


def add_member(team: Team, person: User, *, at: datetime, until: datetime | None = None) -> TeamMembership:
    return TeamMembership.objects.create(team=team, person=person, added_at=at, removed_at=until)


def make_grant(*, by: User, tiers: tuple[str, ...], team: Team | None = None, person: User | None = None,
               client: Client | None = None, account: AwsAccount | None = None, at: datetime | None = None,
               expires_at: datetime | None = None, revoked_at: datetime | None = None,
               reason: str = "on-call rotation") -> Grant:
    grant = Grant.objects.create(
        team=team, person=person, client=client, account=account, reason=reason, granted_by=by,
        granted_at=at or timezone.now(), expires_at=expires_at, revoked_at=revoked_at,
        revoked_by=by if revoked_at else None,
    )
    grant.templates.set(RoleTemplate.objects.filter(tier__in=tiers))
    return grant
