"""A client (Acme) with one production account holding an Engineer and an Administrator role,
an engineer who can reach it as Engineer through team A, a manager, and a contact of Acme; and
another client (Globex) with its own contact, account and role."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.utils import timezone

from onboarding.models import AwsAccount, Client
from portal.people.models import User
from switchroles import services as switchroles_services
from switchroles.models import AccountRole, RoleTemplate
from tests.conftest import MakePerson
from tests.factories import (
    ClientContactFactory,
    add_member,
    make_account,
    make_client,
    make_grant,
    make_role,
    make_team,
)
from tests.security.support import signed_in_client


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings: Any) -> None:
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def syncs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The enforcement syncs scheduled (recorded instead of sent to the workers and AWS)."""
    scheduled: list[str] = []
    monkeypatch.setattr(switchroles_services, "enforcement_sync_schedule",
                        lambda *, reason: scheduled.append(reason))
    return scheduled


@dataclass
class Estate:
    acme: Client
    globex: Client
    prod: AwsAccount
    globex_prod: AwsAccount
    engineer_role: AccountRole
    admin_role: AccountRole
    globex_role: AccountRole
    engineer: User
    manager: User
    other_manager: User
    contact: User
    globex_contact: User

    @property
    def administrator(self) -> RoleTemplate:
        return self.admin_role.template

    def browser(self, user: User) -> HttpClient:
        return signed_in_client(user)


@pytest.fixture
def estate(make_person: MakePerson, syncs: list[str]) -> Estate:
    from django.contrib.auth.models import Group

    Group.objects.get_or_create(name="ClientContact")
    manager = make_person("morgan", "Manager")
    other_manager = make_person("max", "Manager")
    engineer = make_person("eli", "Engineer")
    acme, globex = make_client("Acme"), make_client("Globex")
    prod, globex_prod = make_account(acme), make_account(globex)
    engineer_role, admin_role = make_role(prod, "engineer"), make_role(prod, "administrator")
    globex_role = make_role(globex_prod, "administrator")
    team = make_team("Team A")
    add_member(team, engineer, at=timezone.now() - timedelta(days=3))
    make_grant(by=manager, team=team, client=acme, tiers=("engineer",), at=timezone.now() - timedelta(days=2))
    contact = ClientContactFactory(user__username="carla", client=acme, invited_by=manager).user
    globex_contact = ClientContactFactory(user__username="gus", client=globex, invited_by=manager).user
    return Estate(acme, globex, prod, globex_prod, engineer_role, admin_role, globex_role, engineer, manager,
                  other_manager, contact, globex_contact)
