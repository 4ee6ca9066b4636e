"""The client contact's pages, the invitation, and the elevation pages."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from typing import Any

import pytest
from django.core import mail
from django.test import Client as HttpClient
from django.urls import reverse

from elevations import services
from elevations.models import ApprovalPolicy, ClientContact, ElevationRequest
from portal.people.models import User
from switchroles.models import LinkUse
from tests.elevations.conftest import Estate
from tests.security.support import signed_in_client

pytestmark = pytest.mark.django_db


def _ask(estate: Estate) -> ElevationRequest:
    return services.elevation_request(requester=estate.engineer, account=estate.prod, template=estate.administrator,
                                      duration=30, reason="=HYPERLINK(\"x\") INC-7")


def test_the_contact_sees_who_can_reach_their_accounts_and_why(estate: Estate) -> None:
    # Given a team grant on Acme and an approved elevation
    elevation = _ask(estate)
    services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")

    # When Acme's contact opens their page
    page = estate.browser(estate.contact).get(reverse("client:index"))

    # Then it shows the account, the engineer through team A and personally (the elevation), and by whom
    text = page.content.decode()
    assert page.status_code == 200
    assert estate.prod.account_id in text
    assert "team Team A" in text and "personal grant" in text
    assert "morgan" in text
    assert "Globex" not in text


def test_the_client_log_csv_has_elevations_and_uses_with_the_formula_guard(estate: Estate) -> None:
    elevation = _ask(estate)
    services.elevation_decide(request=elevation, decider=estate.manager, approve=True, reason="")
    from django.utils import timezone

    LinkUse.objects.create(person=estate.engineer, account_role=estate.admin_role, grant=elevation.grant,
                           used_at=timezone.now())
    response = estate.browser(estate.contact).get(reverse("client:log_csv"))
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[attr-defined]
    assert rows[0][:3] == ["when", "what", "person"]
    whats = [row[1] for row in rows[1:]]
    assert {"elevation requested", "approved", "switched in"} <= set(whats)
    requested = next(row for row in rows if row[1] == "elevation requested")
    assert requested[6].startswith("#") and "'=HYPERLINK" not in requested[6]  # the cell starts with '#'
    assert all(not cell.startswith("=") for row in rows for cell in row)


def test_the_contact_downloads_their_clients_evidence_pack_only(estate: Estate) -> None:
    response = estate.browser(estate.contact).get(reverse("client:evidence"))
    assert response.status_code == 200
    archive = zipfile.ZipFile(io.BytesIO(b"".join(response.streaming_content)))  # type: ignore[attr-defined]
    manifest = archive.read("manifest.json").decode()
    assert '"name": "Acme"' in manifest and "Globex" not in archive.read("access-matrix.csv").decode()


def test_a_contact_of_a_gets_404_for_everything_of_b(estate: Estate) -> None:
    # Given a request on Globex's account (another client)
    globex_request = services.elevation_request(requester=estate.manager, account=estate.globex_prod,
                                                template=estate.globex_role.template, duration=5, reason="x")
    acme_browser = estate.browser(estate.contact)

    # When Acme's contact asks for it, decides it, ends it, or opens Globex's MSP pages
    paths = [reverse("elevations:detail", args=[globex_request.pk]),
             reverse("onboarding:client_detail", args=[estate.globex.pk]),
             reverse("audit:evidence_pack", args=[estate.globex.pk]),
             reverse("onboarding:account_detail", args=[estate.globex_prod.pk])]
    answers = [acme_browser.get(path).status_code for path in paths]
    posts = [acme_browser.post(reverse(name, args=[globex_request.pk]), {"decision": "approve", "reason": "x"})
             for name in ("elevations:decide", "elevations:end", "elevations:emergency")]

    # Then none of it exists for them, and the request is untouched
    assert answers == [404, 404, 404, 404]
    assert [post.status_code for post in posts] == [404, 404, 404]
    globex_request.refresh_from_db()
    assert globex_request.state == ElevationRequest.State.PENDING
    # (guessed ids too)
    assert acme_browser.get(reverse("elevations:detail", args=[globex_request.pk + 999])).status_code == 404


@pytest.mark.parametrize("name", ["switchroles:people_list", "billing:index", "onboarding:client_list",
                                  "audit:index", "switchroles:directory", "switchroles:grant_list", "home"])
def test_a_contact_cannot_see_msp_pages(estate: Estate, name: str) -> None:
    response = estate.browser(estate.contact).get(reverse(name))
    if name == "home":
        assert response.status_code == 302 and response["Location"] == reverse("client:index")
    else:
        assert response.status_code == 404


def test_msp_people_get_404_on_the_client_pages(estate: Estate) -> None:
    for user in (estate.manager, estate.engineer):
        assert estate.browser(user).get(reverse("client:index")).status_code == 404


def test_the_contact_approves_on_the_page_after_reauthenticating(estate: Estate) -> None:
    services.approval_policy_set(client=estate.acme, approvers=ApprovalPolicy.Approvers.CONTACT,
                                 updated_by=estate.manager)
    elevation = _ask(estate)
    browser = estate.browser(estate.contact)
    detail = browser.get(reverse("elevations:detail", args=[elevation.pk]))
    assert b"Approve" in detail.content
    response = browser.post(reverse("elevations:decide", args=[elevation.pk]), {"decision": "approve"})
    assert response.status_code == 302
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.ACTIVE


def test_deciding_without_a_recent_sign_in_asks_to_reauthenticate(estate: Estate) -> None:
    elevation = _ask(estate)
    browser = signed_in_client(estate.manager, seconds_ago=3600)
    response = browser.post(reverse("elevations:decide", args=[elevation.pk]), {"decision": "approve"})
    assert response.status_code == 302 and reverse("account_reauthenticate") in response["Location"]
    elevation.refresh_from_db()
    assert elevation.state == ElevationRequest.State.PENDING


def test_the_engineer_asks_on_the_page_and_bad_input_is_shown_by_the_field(estate: Estate) -> None:
    browser = estate.browser(estate.engineer)
    form = browser.get(reverse("elevations:new"))
    assert estate.administrator.name in form.content.decode()
    bad = browser.post(reverse("elevations:new"), {"role": estate.admin_role.pk, "duration": 999, "reason": ""})
    assert bad.status_code == 200 and not ElevationRequest.objects.exists()
    assert b"errorlist" in bad.content
    good = browser.post(reverse("elevations:new"), {"role": estate.admin_role.pk, "duration": 20, "reason": "INC-9"})
    assert good.status_code == 302
    assert ElevationRequest.objects.get().requester == estate.engineer


def test_a_manager_invites_a_contact_who_sets_a_password_once_then_enrols_totp(
    estate: Estate, django_capture_on_commit_callbacks: Any
) -> None:
    # Given a manager inviting a contact for Acme (the mail goes once the invitation is committed)
    browser = estate.browser(estate.manager)
    with django_capture_on_commit_callbacks(execute=True):
        response = browser.post(reverse("elevations:client_contacts", args=[estate.acme.pk]),
                                {"form": "invite", "email": "Dana@Acme.example", "first_name": "Dana",
                                 "last_name": "K"})
    assert response.status_code == 302

    # Then a person without a usable password exists, and the e-mail carries a one-time link
    person = User.objects.get(email="dana@acme.example")
    assert not person.has_usable_password()
    assert ClientContact.objects.get(user=person).client == estate.acme
    assert len(mail.outbox) == 1
    link = re.search(r"/invitation/[^\s]+/", mail.outbox[0].body)
    assert link is not None

    # When they follow it and choose a password
    visitor = HttpClient()
    phrase = "a long pass phrase 42"
    done = visitor.post(link.group(0), {"new_password1": phrase, "new_password2": phrase})

    # Then they are signed in and sent to enrol an authenticator; the link does not work again
    assert done.status_code == 302 and done["Location"] == reverse("mfa_activate_totp")
    assert visitor.get(reverse("client:index"))["Location"] == reverse("mfa_activate_totp")
    again = HttpClient().get(link.group(0))
    assert b"does not work" in again.content


def test_inviting_a_taken_email_is_refused_next_to_the_field(estate: Estate) -> None:
    response = estate.browser(estate.manager).post(
        reverse("elevations:client_contacts", args=[estate.acme.pk]),
        {"form": "invite", "email": estate.engineer.email})
    assert response.status_code == 200 and b"already has this e-mail" in response.content
    assert not mail.outbox


def test_the_request_list_reads_a_fixed_number_of_queries(estate: Estate, make_person: Any) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    def queries_of_the_list(requests: int) -> int:
        for number in range(requests):
            person = make_person(f"eng{requests}-{number}", "Engineer")
            services.elevation_request(requester=person, account=estate.prod, template=estate.administrator,
                                       duration=5, reason="x")
        browser = estate.browser(estate.manager)
        with CaptureQueriesContext(connection) as captured:
            page = browser.get(reverse("elevations:list"))
        assert page.status_code == 200
        return len(captured)

    # Given a manager and 2 requests, then 10 more from other engineers
    with_two = queries_of_the_list(2)
    with_twelve = queries_of_the_list(10)

    # Then the list reads as many queries for 12 rows as for 2, and shows all 12
    assert with_twelve == with_two
    assert estate.browser(estate.manager).get(reverse("elevations:list")).content.decode().count("awaits you") == 12


def test_the_contact_sees_their_accounts_root_posture_and_the_findings_about_them_only(estate: Estate) -> None:
    # Given a root password found on Acme production, and effective-access findings on Acme and on Globex
    from django.utils import timezone

    from onboarding.models import RootPosture
    from switchroles.models import AccessFinding

    now = timezone.now()
    RootPosture.objects.create(account=estate.prod, password=True, checked_at=now)
    for account, who in ((estate.prod, "ops-admin"), (estate.globex_prod, "globex-stranger")):
        AccessFinding.objects.create(
            kind=AccessFinding.Kind.UNGRANTED, principal_type="user", principal_name=who,
            principal_arn=f"arn:aws:iam::123456789012:user/{who}", account=account,
            role_arn=f"arn:aws:iam::{account.account_id}:role/OrganizationAccountAccessRole",
            detail="reachable without a grant", opened_at=now, last_seen_at=now)

    # When Acme's contact opens their page
    text = estate.browser(estate.contact).get(reverse("client:index")).content.decode()

    # Then Acme's root password and Acme's finding show, Globex's finding does not
    assert "a password" in text
    assert "ops-admin" in text and "Reachable without a grant" in text
    assert "globex-stranger" not in text
