"""The sandbox's client contact: acme-contact, TOTP enrolled, approving Acme's elevations, with one
request waiting."""

from __future__ import annotations

from typing import Any

import pytest
from allauth.mfa.models import Authenticator
from django.contrib.auth.models import Group

from elevations import services
from elevations.models import ClientContact, ElevationRequest
from elevations.sandbox import sandbox_client_contact_ensure
from onboarding.models import Client
from portal.people.demo import DEMO_PASSWORD
from portal.people.models import User
from tests.conftest import MakePerson
from tests.factories import make_account, make_role

pytestmark = pytest.mark.django_db


def test_acme_contact_approves_the_waiting_request_and_it_is_seeded_once(
    make_person: MakePerson, settings: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the sandbox with Acme Retail, its account and the demo manager and engineer
    from switchroles import services as switchroles_services

    monkeypatch.setattr(switchroles_services, "enforcement_sync_schedule", lambda *, reason: None)
    settings.SANDBOX = True
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
    Group.objects.get_or_create(name="ClientContact")
    make_person("manager", "Manager")
    make_person("engineer", "Engineer")
    acme = Client.objects.create(name="Acme Retail", slug="acme")
    make_role(make_account(acme), "administrator")

    # When the sandbox is brought up twice
    first = sandbox_client_contact_ensure()
    second = sandbox_client_contact_ensure()

    # Then acme-contact exists once, with the demo password and an authenticator, for Acme Retail
    contact = User.objects.get(username="acme-contact")
    assert contact.check_password(DEMO_PASSWORD)
    assert Authenticator.objects.filter(user=contact, type=Authenticator.Type.TOTP).exists()
    assert ClientContact.objects.get(user=contact).client == acme
    # and one request waits, which they may approve
    assert first is not None and second == first
    assert ElevationRequest.objects.filter(state=ElevationRequest.State.PENDING).count() == 1
    services.elevation_decide(request=first, decider=contact, approve=True, reason="")
    first.refresh_from_db()
    assert first.state == ElevationRequest.State.ACTIVE
