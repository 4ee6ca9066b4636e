"""Each endpoint answers what its page shows, from the same selectors; a 400 carries the same
messages as the page's form, field by field; ids the caller may not see (or guessed) are 404."""

from __future__ import annotations

import html
import re
from datetime import timedelta
from typing import Any

import pytest
from django.urls import reverse
from django.utils import timezone

from onboarding.models import AwsAccount
from portal.audit.models import AuditEvent
from portal.people.models import User
from switchroles.models import Grant
from tests.api.conftest import as_persona
from tests.security.support import World, changed_tables, row_counts, signed_in_client

pytestmark = pytest.mark.django_db

FIELD_ERRORS = re.compile(r'<ul class="errorlist" id="id_(\w+)_errors">(.*?)</ul>', re.S)
FORM_ERRORS = re.compile(r'<ul class="errorlist"(?: role="alert")?>(.*?)</ul>', re.S)
ITEM = re.compile(r"<li>(.*?)</li>", re.S)


def page_errors(response: Any, renamed: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The messages a page shows under each field (and at the top: ``__all__``), unescaped."""
    renamed = renamed or {}
    text = response.content.decode()
    errors = {renamed.get(field, field): [html.unescape(m) for m in ITEM.findall(items)]
              for field, items in FIELD_ERRORS.findall(text)}
    top = [html.unescape(m) for items in FORM_ERRORS.findall(text) for m in ITEM.findall(items)]
    if top:
        errors["__all__"] = top
    return errors


# --- reads -------------------------------------------------------------------------------------------


def test_me_is_the_caller_with_their_capabilities(world: World) -> None:
    eli = world.people["eng"]

    assert as_persona(world, "eng").get("/api/v1/me").json() == {
        "id": eli.pk, "username": "eli", "iam_username": "eli", "capabilities": ["Engineer"]}
    assert as_persona(world, "adm").get("/api/v1/me").json()["capabilities"] == [
        "Manager", "Engineer", "Auditor", "Finance", "Reviewer"]


def test_links_are_the_callers_directory(world: World) -> None:
    # Given engineer A, granted the Engineer tier of Acme through team A
    role = world.rows["acme_role"]

    # When they read their links
    links = as_persona(world, "eng").get("/api/v1/links").json()

    # Then it is exactly their directory: Acme's engineer role, with its console and click-through URLs
    assert links == [{
        "id": role.pk, "client": {"id": world.pk("acme"), "name": "Acme", "slug": "acme"},
        "account_name": "Production", "aws_account_id": "111111111111", "tier": "engineer",
        "role_name": role.role_name, "role_arn": role.arn, "switch_role_url": role.switch_role_url,
        "go_url": f"http://testserver/go/{role.pk}/",
    }]
    page = signed_in_client(world.people["eng"]).get(reverse("switchroles:directory")).content.decode()
    # (the page's row template for the filter's results carries the placeholder id 0)
    assert set(re.findall(r'href="/go/(\d+)/"', page)) - {"0"} == {str(link["id"]) for link in links}
    # and engineer B sees only Globex's
    assert [link["client"]["slug"] for link in as_persona(world, "eng_b").get("/api/v1/links").json()] == ["globex"]


def test_clients_client_and_account(world: World) -> None:
    auditor = as_persona(world, "aud")

    assert auditor.get("/api/v1/clients").json() == [
        {"id": world.pk("acme"), "name": "Acme", "slug": "acme"},
        {"id": world.pk("globex"), "name": "Globex", "slug": "globex"},
    ]
    acme = auditor.get(f"/api/v1/clients/{world.pk('acme')}").json()
    assert [(a["name"], a["aws_account_id"], a["origin"], a["state"]) for a in acme["accounts"]] == [
        ("Legacy", "111111111112", "invited", "awaiting_access_role"),
        ("Production", "111111111111", "created", "active"),
    ]
    invited = auditor.get(f"/api/v1/accounts/{world.pk('acme_invited')}").json()
    assert invited["client"] == {"id": world.pk("acme"), "name": "Acme", "slug": "acme"}
    assert invited["steps"] == [{"kind": "await_access_role", "status": "failed", "attempts": 3,
                                 "last_error": {"code": "AccessDenied", "message": "Not there yet."}}]
    production = auditor.get(f"/api/v1/accounts/{world.pk('acme_prod')}").json()
    assert sorted((r["tier"], r["state"]) for r in production["roles"]) == [
        ("administrator", "active"), ("engineer", "active")]
    assert world.rows["acme_role"].arn in {r["role_arn"] for r in production["roles"]}


@pytest.mark.parametrize("path", ["/api/v1/clients/987654321", "/api/v1/accounts/987654321",
                                  "/api/v1/clients/99999999999999999999999", "/api/v1/accounts/0",
                                  "/api/v1/grants/987654321/revoke", "/api/v1/clients/-1", "/api/v1/nothing-here"])
def test_guessed_ids_and_unknown_paths_are_404_in_json(world: World, path: str) -> None:
    manager = as_persona(world, "mgr")
    before = row_counts()

    response = manager.post(path, {"reason": "x"}) if path.endswith("revoke") else manager.get(path)

    assert response.status_code == 404
    assert response.json() == {"detail": "Not found."} or "detail" in response.json()
    assert not changed_tables(before, row_counts())


def test_teams_with_their_members_now(world: World) -> None:
    teams = as_persona(world, "aud").get("/api/v1/teams").json()

    assert teams == [
        {"id": world.pk("team_a"), "name": "Team A", "iam_group": world.rows["team_a"].iam_group_name,
         "members": ["eli"]},
        {"id": world.pk("team_b"), "name": "Team B", "iam_group": world.rows["team_b"].iam_group_name,
         "members": ["bea"]},
    ]


def test_access_is_the_matrix_with_the_pages_filters(world: World) -> None:
    auditor = as_persona(world, "aud")

    everyone = auditor.get("/api/v1/access").json()
    team_a = auditor.get("/api/v1/access", {"team": world.pk("team_a")}).json()

    assert everyone["count"] == 2 and everyone["pages"] == 1 and everyone["next"] is None
    assert {(r["person"], r["client"], r["tier"], r["via"]) for r in everyone["results"]} == {
        ("eli", "Acme", "engineer", "team Team A"), ("bea", "Globex", "engineer", "team Team B")}
    row = team_a["results"][0]
    assert team_a["count"] == 1 and row["grant_id"] == world.pk("grant_a")
    assert row["aws_account_id"] == "111111111111" and row["link_id"] == world.pk("acme_role")
    # The same rows as the auditors' page for the same filter
    page = signed_in_client(world.people["aud"]).get(reverse("audit:index"), {"team": world.pk("team_a")})
    assert page.context["page"].paginator.count == 1


def test_access_in_the_past_and_its_pages(world: World, settings: Any) -> None:
    from portal.api import views

    auditor = as_persona(world, "aud")
    before_any_grant = (timezone.now() - timedelta(days=60)).strftime("%Y-%m-%dT%H:%M")

    assert auditor.get("/api/v1/access", {"as_of": before_any_grant}).json()["count"] == 0
    views.ACCESS_PAGE_SIZE, size = 1, views.ACCESS_PAGE_SIZE
    try:
        first = auditor.get("/api/v1/access").json()
        second = auditor.get("/api/v1/access", {"page": 2}).json()
        beyond = auditor.get("/api/v1/access", {"page": 3})
    finally:
        views.ACCESS_PAGE_SIZE = size
    assert first["pages"] == 2 and first["next"] == "http://testserver/api/v1/access?page=2"
    assert second["previous"] == "http://testserver/api/v1/access?page=1" and second["next"] is None
    assert {first["results"][0]["person"], second["results"][0]["person"]} == {"eli", "bea"}
    assert beyond.status_code == 404


def test_a_bad_access_filter_is_a_400_with_the_forms_message(world: World) -> None:
    tomorrow = (timezone.now() + timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")

    response = as_persona(world, "aud").get("/api/v1/access", {"as_of": tomorrow, "team": "x", "page": "0"})

    assert response.status_code == 400
    assert response.json() == {"errors": {"as_of": ["Pick a moment in the past (or leave empty for now)."],
                                          "team": ["Enter a whole number."]}}


# --- writes: the form's messages, nothing written -------------------------------------------------------


def _both(world: World, page: str, api_path: str, form: dict[str, Any], body: dict[str, Any],
          renamed: dict[str, str] | None = None) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    browser = signed_in_client(world.people["mgr"], seconds_ago=5)
    before = row_counts()
    on_page = browser.post(reverse(page), form)
    by_api = as_persona(world, "mgr").post(api_path, body)
    assert on_page.status_code in {200, 400} and by_api.status_code == 400, by_api.content
    assert not changed_tables(before, row_counts())
    return page_errors(on_page, renamed), by_api.json()["errors"]


@pytest.mark.parametrize("case", ["empty", "past expiry", "team and person", "unknown ids"])
def test_a_refused_grant_says_what_the_page_says(world: World, case: str) -> None:
    engineer_tier = world.pk("engineer_template")
    past = (timezone.now() - timedelta(days=1)).strftime("%Y-%m-%dT%H:%M")
    form, body = {
        "empty": ({"reason": ""}, {"reason": ""}),  # (an empty POST shows the page's blank form)
        "past expiry": ({"team": world.pk("team_b"), "client": world.pk("acme"), "templates": [engineer_tier],
                         "reason": "cover", "expires_at": past},
                        {"team": world.pk("team_b"), "client": world.pk("acme"), "tiers": ["engineer"],
                         "reason": "cover", "expires_at": past}),
        "team and person": ({"team": world.pk("team_b"), "person": world.people["eng"].pk,
                             "account": world.pk("acme_prod"), "client": world.pk("acme"),
                             "templates": [engineer_tier], "reason": "x"},
                            {"team": world.pk("team_b"), "person": world.people["eng"].pk,
                             "account": world.pk("acme_prod"), "client": world.pk("acme"), "tiers": ["engineer"],
                             "reason": "x"}),
        "unknown ids": ({"team": 987654, "client": 987654, "templates": [engineer_tier], "reason": "x"},
                        {"team": 987654, "client": 987654, "tiers": ["engineer"], "reason": "x"}),
    }[case]

    on_page, by_api = _both(world, "switchroles:grant_new", "/api/v1/grants", form, body, {"templates": "tiers"})

    assert by_api == on_page
    assert by_api


def test_an_unknown_tier_is_named_with_the_forms_message(world: World) -> None:
    response = as_persona(world, "mgr").post("/api/v1/grants", {
        "team": world.pk("team_b"), "client": world.pk("acme"), "tiers": ["engineer", "wizard"], "reason": "x"})

    assert response.json() == {"errors": {
        "tiers": ["Select a valid choice. wizard is not one of the available choices."]}}


def test_a_tier_is_named_by_its_role_name_when_several_templates_share_it(world: World) -> None:
    from switchroles.models import RoleTemplate

    RoleTemplate.objects.create(name="Billing", tier=RoleTemplate.Tier.CUSTOM, role_name="SwitchyardBilling",
                                managed_policy_arns=["arn:aws:iam::aws:policy/job-function/Billing"],
                                console_color="efda95")
    RoleTemplate.objects.create(name="Costs", tier=RoleTemplate.Tier.CUSTOM, role_name="SwitchyardCosts",
                                managed_policy_arns=["arn:aws:iam::aws:policy/job-function/Billing"],
                                console_color="efda95")

    ambiguous = as_persona(world, "mgr").post("/api/v1/grants", {
        "team": world.pk("team_b"), "client": world.pk("acme"), "tiers": ["custom"], "reason": "x"})
    by_name = as_persona(world, "mgr").post("/api/v1/grants", {
        "team": world.pk("team_b"), "client": world.pk("acme"), "tiers": ["SwitchyardBilling"], "reason": "x"})

    assert ambiguous.status_code == 400 and "tiers" in ambiguous.json()["errors"]
    assert by_name.status_code == 201 and by_name.json()["tiers"] == ["SwitchyardBilling"]


def test_a_grant_and_its_revocation(world: World) -> None:
    manager = as_persona(world, "mgr")
    expires = (timezone.now() + timedelta(days=7)).replace(microsecond=0)

    created = manager.post("/api/v1/grants", {"person": world.people["eng_b"].pk, "account": world.pk("acme_prod"),
                                              "tiers": ["engineer", "administrator"], "reason": "Incident 42",
                                              "expires_at": expires.isoformat()})

    assert created.status_code == 201, created.content
    grant = Grant.objects.get(pk=created.json()["id"])
    assert created.json() | {"granted_at": None} == {
        "id": grant.pk, "team": None, "person": world.people["eng_b"].pk, "client": None,
        "account": world.pk("acme_prod"), "tiers": ["SwitchyardAdministrator", "SwitchyardEngineer"],
        "reason": "Incident 42", "granted_by": "morgan", "granted_at": None,
        "expires_at": expires.isoformat().replace("+00:00", "Z"), "revoked_at": None, "revoke_reason": "",
    }
    refused = manager.post(f"/api/v1/grants/{grant.pk}/revoke", {"reason": "  "})
    revoked = manager.post(f"/api/v1/grants/{grant.pk}/revoke", {"reason": "Incident over"})
    again = manager.post(f"/api/v1/grants/{grant.pk}/revoke", {"reason": "twice"})
    assert refused.status_code == 400 and refused.json() == {"errors": {"reason": ["This field is required."]}}
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] and revoked.json()["revoke_reason"] == \
        "Incident over"
    assert again.status_code == 200 and again.json()["revoke_reason"] == "Incident over"  # idempotent
    assert AuditEvent.objects.filter(action="grant.revoked", target_id=str(grant.pk)).count() == 1


@pytest.mark.parametrize("case", ["empty", "taken", "bad names", "unknown team"])
def test_a_refused_person_says_what_the_page_says(world: World, case: str) -> None:
    body = {
        "empty": {"username": ""},
        "taken": {"username": "ELI", "email": "eli@example.com", "iam_username": "bea"},
        "bad names": {"username": "new", "email": "not-an-address", "iam_username": "bad name!",
                      "capabilities": ["Wizard"]},
        "unknown team": {"username": "new", "email": "new@example.com", "teams": [987654]},
    }[case]

    on_page, by_api = _both(world, "switchroles:person_new", "/api/v1/people", body, body)

    assert by_api == on_page
    assert by_api
    assert not User.objects.filter(username="new").exists()


def test_a_person_is_added_with_a_temporary_password_shown_once(world: World) -> None:
    response = as_persona(world, "mgr").post("/api/v1/people", {
        "username": "newbie", "email": "newbie@example.com", "first_name": "New", "last_name": "Person",
        "iam_username": "newbie", "teams": [world.pk("team_a")], "capabilities": ["Engineer"]})

    assert response.status_code == 201
    body = response.json()
    person = User.objects.get(username="newbie")
    assert body == {"id": person.pk, "username": "newbie", "email": "newbie@example.com", "first_name": "New",
                    "last_name": "Person", "iam_username": "newbie", "capabilities": ["Engineer"],
                    "teams": [world.pk("team_a")], "temporary_password": body["temporary_password"]}
    assert person.check_password(body["temporary_password"])
    assert "no-store" in response["Cache-Control"]
    assert body["temporary_password"] not in str(list(AuditEvent.objects.values("details")))


@pytest.mark.parametrize("case", ["empty", "create without address", "bad slug", "invite bad id", "adopt bad id",
                                  "unknown origin"])
def test_a_refused_onboarding_says_what_the_page_says_and_asks_no_aws(world: World, aws_forbidden: Any,
                                                                      case: str) -> None:
    tier = world.pk("engineer_template")
    common_page = {"client_name": "Initech", "client_slug": "initech", "account_name": "production",
                   "templates": [tier], "reason": "New client"}
    common_api = {"client_name": "Initech", "client_slug": "initech", "account_name": "production",
                  "tiers": ["engineer"], "reason": "New client"}
    form, body = {
        "empty": ({}, {}),
        "create without address": ({**common_page, "origin": "created"}, {**common_api, "origin": "create"}),
        "bad slug": ({**common_page, "client_slug": "Not A Slug", "origin": "created",
                      "root_email": "awsaccounts+initech@example.com"},
                     {**common_api, "client_slug": "Not A Slug", "origin": "create",
                      "root_email": "awsaccounts+initech@example.com"}),
        "invite bad id": ({**common_page, "origin": "invited", "account_id": "12345"},
                          {**common_api, "origin": "invite", "aws_account_id": "12345"}),
        # an adoption's id is checked as an invitation's, before AWS is asked
        "adopt bad id": ({**common_page, "origin": "invited", "account_id": "12345"},
                         {**common_api, "origin": "adopt", "aws_account_id": "12345"}),
        "unknown origin": ({**common_page, "origin": "bogus"}, {**common_api, "origin": "bogus"}),
    }[case]

    on_page, by_api = _both(world, "onboarding:client_new", "/api/v1/onboardings", form, body,
                            {"templates": "tiers", "account_id": "aws_account_id"})

    assert by_api == on_page
    assert by_api
    assert not aws_forbidden.calls
    assert not AwsAccount.objects.filter(client__slug="initech").exists()


# --- cost ---------------------------------------------------------------------------------------------


def test_links_and_teams_cost_the_same_queries_for_three_links_or_thirty(
    world: World, django_assert_max_num_queries: Any
) -> None:
    from tests.factories import add_member, make_account, make_grant, make_role

    # Given engineer A, whose team reaches one link; then ten more accounts of Acme with three roles each
    # (the token, its owner's capabilities and the rate limit's counter are about ten queries a call with
    # the database cache of tests; Redis takes the counter in production)
    engineer = as_persona(world, "eng")
    with django_assert_max_num_queries(20) as few:
        assert len(engineer.get("/api/v1/links").json()) == 1
        engineer.get("/api/v1/me")
    for _ in range(10):
        account = make_account(world.rows["acme"])
        for tier in ("engineer", "oncall", "administrator"):
            make_role(account, tier)
    make_grant(by=world.people["mgr"], person=world.people["eng"], client=world.rows["acme"],
               tiers=("oncall", "administrator"))
    add_member(world.rows["team_b"], world.people["eng"], at=timezone.now())

    # When they read their 33 links (30 new, Acme production's two, Globex's through team B), and an
    # auditor the teams
    with django_assert_max_num_queries(len(few.captured_queries)):
        assert len(engineer.get("/api/v1/links").json()) == 33
        engineer.get("/api/v1/me")
    with django_assert_max_num_queries(13):
        assert len(as_persona(world, "aud").get("/api/v1/teams").json()) == 2


def test_an_accounts_root_credentials_are_null_until_checked_then_what_the_workers_found(world: World) -> None:
    # given an account whose root user was never looked at
    from datetime import UTC, datetime

    from onboarding.models import RootPosture

    auditor = as_persona(world, "aud")
    path = f"/api/v1/accounts/{world.pk('acme_prod')}"
    assert auditor.get(path).json()["root_credentials"] is None

    # when the workers found a root password and an access key
    checked = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    RootPosture.objects.create(account=world.rows["acme_prod"], password=True, access_keys=1, checked_at=checked)

    # then the account's JSON says so
    assert auditor.get(path).json()["root_credentials"] == {
        "password": True, "mfa_devices": 0, "access_keys": 1, "signing_certificates": 0,
        "checked_at": checked.isoformat(),
    }
