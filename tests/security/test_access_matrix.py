"""The access matrix: every URL name of the project, for each kind of visitor, answers what this
file says, and nothing else.

Columns (the order of every row): anonymous; signed in without MFA (a superuser holding every
capability, who has not enrolled an authenticator); engineer A (team A, granted the Engineer tier
of client Acme); engineer B (team B, granted Globex only); manager; auditor; admin (superuser +
staff). Signed-in visitors have re-authenticated within ACCOUNT_REAUTHENTICATION_TIMEOUT, so the
cells show what their capability allows; test_reauthentication.py shows the stale case.

Cells: 200; 403 (wrong capability); 404 (a row the visitor may not see); 405 (POST only, asked
with GET); "→<url name>" for a redirect to one of our pages (LOGIN: the sign-in page, MFA:
authenticator enrolment, ADMIN_LOGIN: the admin's login, which forwards to the sign-in); AWS for
the console's switch-role form.

Ids in paths point at real rows (tests/security/conftest.py builds them), so a 404 means "not
yours", never "not there". A URL added anywhere without a row here fails
test_every_url_name_has_a_row.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from django.conf import settings
from django.db import transaction
from django.middleware.csrf import _get_new_csrf_string  # type: ignore[attr-defined]
from django.test import Client as HttpClient
from django.urls import reverse

from tests.security.support import (
    ADMIN_HOME,
    ADMIN_LOGIN,
    AWS,
    HOME,
    LOGIN,
    MFA,
    OK,
    PERSONA_LABELS,
    PERSONAS,
    REAUTH,
    AwsUnreachable,
    Route,
    World,
    all_routes,
    changed_tables,
    classify,
    path_of,
    rolled_back_block,
    row_counts,
    signed_in_client,
)

pytestmark = pytest.mark.django_db

MFA_INDEX = "→mfa_index"
CHANGE_PASSWORD = "→account_change_password"
REAUTH_CODE = "→account_request_reauthentication_code"
CLIENT_PAGE = "→onboarding:client_detail"
ROOT_ACCESS_PAGE = "→onboarding:root_access"
# /healthz reports the database, broker and AWS to anyone (load balancers); 503 when one is down.
HEALTH = frozenset({200, 503})

#                    anonymous    no MFA  engineer  engineer B  manager  auditor  admin
MATRIX: dict[str, tuple[int | str | frozenset[int], ...]] = {
    # --- portal ---------------------------------------------------------------------------------
    "home":                                  (LOGIN, MFA, OK, OK, OK, OK, OK),
    "healthz":                               (HEALTH, HEALTH, HEALTH, HEALTH, HEALTH, HEALTH, HEALTH),
    # --- sign-in, MFA and the person's own account (django-allauth) ---------------------------------
    "account_login":                         (OK, MFA, HOME, HOME, HOME, HOME, HOME),
    "account_logout":                        (HOME, OK, OK, OK, OK, OK, OK),
    "account_signup":                        (OK, MFA, HOME, HOME, HOME, HOME, HOME),  # closed: says so
    "account_inactive":                      (OK, MFA, OK, OK, OK, OK, OK),
    "account_reauthenticate":                (LOGIN, OK, OK, OK, OK, OK, OK),
    "account_request_reauthentication_code": (LOGIN, MFA, REAUTH, REAUTH, REAUTH, REAUTH, REAUTH),
    "account_confirm_reauthentication_code": (LOGIN, MFA, REAUTH_CODE, REAUTH_CODE, REAUTH_CODE, REAUTH_CODE,
                                              REAUTH_CODE),
    "account_confirm_login_code":            (LOGIN, MFA, HOME, HOME, HOME, HOME, HOME),
    "account_change_password":               (LOGIN, MFA, OK, OK, OK, OK, OK),
    "account_set_password":                  (LOGIN, MFA, CHANGE_PASSWORD, CHANGE_PASSWORD, CHANGE_PASSWORD,
                                              CHANGE_PASSWORD, CHANGE_PASSWORD),
    "account_reset_password":                (OK, MFA, OK, OK, OK, OK, OK),
    "account_reset_password_done":           (OK, MFA, OK, OK, OK, OK, OK),
    "account_reset_password_from_key":       (OK, MFA, OK, OK, OK, OK, OK),  # a bad key: "invalid link"
    "account_reset_password_from_key_done":  (OK, MFA, OK, OK, OK, OK, OK),
    "account_email":                         (LOGIN, MFA, OK, OK, OK, OK, OK),
    "account_email_verification_sent":       (OK, MFA, OK, OK, OK, OK, OK),
    "account_confirm_email":                 (OK, MFA, OK, OK, OK, OK, OK),  # a bad key: "invalid link"
    "mfa_activate_totp":                     (LOGIN, OK, MFA_INDEX, MFA_INDEX, MFA_INDEX, MFA_INDEX, MFA_INDEX),
    "mfa_authenticate":                      (LOGIN, MFA, HOME, HOME, HOME, HOME, HOME),
    "mfa_index":                             (LOGIN, MFA, OK, OK, OK, OK, OK),
    "mfa_reauthenticate":                    (LOGIN, MFA, OK, OK, OK, OK, OK),
    "mfa_deactivate_totp":                   (LOGIN, MFA, OK, OK, OK, OK, OK),
    "mfa_view_recovery_codes":               (LOGIN, MFA, OK, OK, OK, OK, OK),
    "mfa_download_recovery_codes":           (LOGIN, MFA, OK, OK, OK, OK, OK),
    "mfa_generate_recovery_codes":           (LOGIN, MFA, OK, OK, OK, OK, OK),
    # --- onboarding: clients and accounts ------------------------------------------------------------
    "onboarding:client_list":                (LOGIN, MFA, 403, 403, OK, OK, OK),
    "onboarding:client_new":                 (LOGIN, MFA, 403, 403, OK, 403, OK),
    "onboarding:client_detail":              (LOGIN, MFA, 403, 403, OK, OK, OK),
    "onboarding:account_detail":             (LOGIN, MFA, 403, 403, OK, OK, OK),
    "onboarding:account_progress":           (LOGIN, MFA, 403, 403, OK, OK, OK),
    "onboarding:access_role_template":       (LOGIN, MFA, 403, 403, OK, 403, OK),
    "onboarding:step_retry":                 (405, MFA, 405, 405, 405, 405, 405),
    "onboarding:account_cancel":             (405, MFA, 405, 405, 405, 405, 405),
    "onboarding:access_verify":              (405, MFA, 405, 405, 405, 405, 405),
    "onboarding:account_handback":           (LOGIN, MFA, 403, 403, OK, 403, OK),
    "onboarding:client_handback":            (LOGIN, MFA, 403, 403, OK, 403, OK),
    "onboarding:adopt":                      (LOGIN, MFA, 403, 403, OK, 403, OK),
    "onboarding:bulk":                       (LOGIN, MFA, 403, 403, OK, 403, OK),
    "onboarding:batch_detail":               (LOGIN, MFA, 403, 403, OK, OK, OK),
    "onboarding:access_role_change":         (405, MFA, 405, 405, 405, 405, 405),
    # root credentials (centralized root access)
    "onboarding:root_access":                (LOGIN, MFA, 403, 403, OK, 403, OK),
    "onboarding:root_access_enable":         (LOGIN, MFA, 403, 403, ROOT_ACCESS_PAGE, 403, ROOT_ACCESS_PAGE),
    "onboarding:root_posture_list":          (LOGIN, MFA, 403, 403, OK, OK, OK),
    "onboarding:account_root_check":         (405, MFA, 405, 405, 405, 405, 405),
    "onboarding:account_root_remove":        (LOGIN, MFA, 403, 403, OK, 403, OK),
    # --- the directory and its links -------------------------------------------------------------------
    "switchroles:directory":                 (LOGIN, MFA, OK, OK, OK, OK, OK),
    "switchroles:export_extend_switch_roles": (LOGIN, MFA, OK, OK, OK, OK, OK),
    "switchroles:export_aws_config":         (LOGIN, MFA, OK, OK, OK, OK, OK),
    "switchroles:why":                       (LOGIN, MFA, OK, 404, 404, 404, 404),
    "switchroles:favourite":                 (LOGIN, MFA, 405, 405, 405, 405, 405),
    "switchroles:go":                        (LOGIN, MFA, AWS, 404, 404, 404, 404),
    # --- grants, teams, people (managers change; auditors read grants and teams) ----------------------
    "switchroles:grant_list":                (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:grant_new":                 (LOGIN, MFA, 403, 403, OK, 403, OK),
    "switchroles:grant_detail":              (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:grant_revoke":              (LOGIN, MFA, 403, 403, OK, 403, OK),
    "switchroles:team_list":                 (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:team_new":                  (LOGIN, MFA, 403, 403, OK, 403, OK),
    "switchroles:team_detail":               (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:team_member_add":           (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:team_member_remove":        (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:people_list":               (LOGIN, MFA, 403, 403, OK, 403, OK),
    "switchroles:person_new":                (LOGIN, MFA, 403, 403, OK, 403, OK),
    "switchroles:person_edit":               (LOGIN, MFA, 403, 403, OK, 403, OK),
    # leavers, separation of duties, team webhooks (issue 18)
    "switchroles:person_leave":              (LOGIN, MFA, 403, 403, OK, 403, OK),
    "switchroles:departure_detail":          (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:departure_retry":           (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:duty_conflicts":            (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:team_webhook":              (LOGIN, MFA, 403, 403, OK, 403, OK),
    # each person's notification choices and the notices sent to them (issue 18)
    "notification_preferences":              (LOGIN, MFA, OK, OK, OK, OK, OK),
    # --- enforcement and drift ---------------------------------------------------------------------------
    "switchroles:enforcement":               (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:enforcement_check":         (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:drift":                     (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:drift_check":               (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:drift_repair":              (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:drift_repair_main_account": (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:access_check":              (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:trust_rollout":             (405, MFA, 405, 405, 405, 405, 405),
    "switchroles:access_findings_csv":       (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:directory_aws_status":      (LOGIN, MFA, OK, OK, OK, OK, OK),
    # --- role templates and their roll-outs --------------------------------------------------------------
    "roletemplates:list":                    (LOGIN, MFA, 403, 403, OK, 403, OK),
    "roletemplates:new":                     (LOGIN, MFA, 403, 403, OK, 403, OK),
    "roletemplates:edit":                    (LOGIN, MFA, 403, 403, OK, 403, OK),
    "switchroles:template_rollout":          (LOGIN, MFA, 403, 403, OK, OK, OK),
    "switchroles:rollout_account_retry":     (405, MFA, 405, 405, 405, 405, 405),
    # --- the auditors' workspace (managers read it too; only managers open and decide reviews) ---------
    "audit:index":                           (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:access_csv":                      (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:link_history":                    (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:person_history":                  (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:events":                          (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:events_csv":                      (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:evidence_pack":                   (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:review_list":                     (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:review_new":                      (LOGIN, MFA, 403, 403, OK, 403, OK),
    "audit:review_detail":                   (LOGIN, MFA, 403, 403, OK, OK, OK),
    "audit:review_decide":                   (405, MFA, 405, 405, 405, 405, 405),
    "audit:review_csv":                      (LOGIN, MFA, 403, 403, OK, OK, OK),
    # --- billing (finance and managers read; finance sets markups; tests/billing/test_access.py: finance) ---
    "billing:index":                         (LOGIN, MFA, 403, 403, OK, 403, OK),
    "billing:month":                         (LOGIN, MFA, 403, 403, OK, 403, OK),
    "billing:clients_csv":                   (LOGIN, MFA, 403, 403, OK, 403, OK),
    "billing:accounts_csv":                  (LOGIN, MFA, 403, 403, OK, 403, OK),
    "billing:invoice":                       (LOGIN, MFA, 403, 403, OK, 403, OK),
    "billing:invoice_csv":                   (LOGIN, MFA, 403, 403, OK, 403, OK),
    "billing:markup":                        (LOGIN, MFA, 403, 403, 403, 403, OK),
    "billing:refetch":                       (405, MFA, 405, 405, 405, 405, 405),
    # --- client contacts' own pages (404 to everyone at the MSP) and elevations ------------------------
    "client:index":                          (LOGIN, MFA, 404, 404, 404, 404, 404),
    "client:evidence":                       (LOGIN, MFA, 404, 404, 404, 404, 404),
    "client:log":                            (LOGIN, MFA, 404, 404, 404, 404, 404),
    "client:log_csv":                        (LOGIN, MFA, 404, 404, 404, 404, 404),
    "elevations:list":                       (LOGIN, MFA, OK, OK, OK, OK, OK),
    "elevations:new":                        (LOGIN, MFA, OK, OK, OK, OK, OK),  # the service decides who may ask
    "elevations:detail":                     (LOGIN, MFA, OK, 404, OK, OK, OK),  # engineer A's request
    "elevations:decide":                     (405, MFA, 405, 405, 405, 405, 405),
    "elevations:end":                        (405, MFA, 405, 405, 405, 405, 405),
    "elevations:emergency":                  (405, MFA, 405, 405, 405, 405, 405),
    "elevations:client_contacts":            (LOGIN, MFA, 403, 403, OK, 403, OK),
    "elevations:contact_accept":             (404, MFA, 404, 404, 404, 404, 404),  # a bad token: "does not work", 404
    # --- the Django admin: the rule below, and these four ----------------------------------------------
    "admin:login":                           (LOGIN, MFA, 403, 403, 403, 403, ADMIN_HOME),
    "admin:logout":                          (ADMIN_HOME, MFA, ADMIN_HOME, ADMIN_HOME, ADMIN_HOME, ADMIN_HOME, 405),
    "admin:view_on_site":                    (ADMIN_LOGIN, MFA, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN,
                                              CLIENT_PAGE),
    "admin:autocomplete":                    (ADMIN_LOGIN, MFA, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN,
                                              403),  # asked without its field: refused
    # --- the person's own API tokens --------------------------------------------------------------------
    "api_tokens:list":                       (LOGIN, MFA, OK, OK, OK, OK, OK),
    "api_tokens:new":                        (LOGIN, MFA, OK, OK, OK, OK, OK),
    "api_tokens:revoke":                     (405, MFA, 405, 405, 405, 405, 405),
    # --- the JSON API: a session is no credential (401 to every visitor); API_MATRIX below has tokens ---
    "api:schema":                            (OK, OK, OK, OK, OK, OK, OK),
    "api:docs":                              (OK, OK, OK, OK, OK, OK, OK),
    "api:me":                                (401, 401, 401, 401, 401, 401, 401),
    "api:links":                             (401, 401, 401, 401, 401, 401, 401),
    "api:clients":                           (401, 401, 401, 401, 401, 401, 401),
    "api:client":                            (401, 401, 401, 401, 401, 401, 401),
    "api:account":                           (401, 401, 401, 401, 401, 401, 401),
    "api:onboardings":                       (401, 401, 401, 401, 401, 401, 401),
    "api:grants":                            (401, 401, 401, 401, 401, 401, 401),
    "api:grant_revoke":                      (401, 401, 401, 401, 401, 401, 401),
    "api:access":                            (401, 401, 401, 401, 401, 401, 401),
    "api:teams":                             (401, 401, 401, 401, 401, 401, 401),
    "api:people":                            (401, 401, 401, 401, 401, 401, 401),
    "api:person_deactivate":                 (401, 401, 401, 401, 401, 401, 401),
    "api:findings":                          (401, 401, 401, 401, 401, 401, 401),
    "api:elevations":                        (401, 401, 401, 401, 401, 401, 401),
    "api:elevation_approve":                 (401, 401, 401, 401, 401, 401, 401),
    "api:elevation_decline":                 (401, 401, 401, 401, 401, 401, 401),
    "api:checks":                            (401, 401, 401, 401, 401, 401, 401),
    "api:check":                             (401, 401, 401, 401, 401, 401, 401),
}  # fmt: skip

# Every other admin URL, by one rule: only a signed-in superuser (staff) with MFA gets in; everyone
# else is sent to the admin's login (which forwards to the sign-in and then refuses non-staff).
ADMIN_RULE = (ADMIN_LOGIN, MFA, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, ADMIN_LOGIN, OK)
# Switchyard's own rows are read-only in the admin (their changes go through services and the audit
# log): adding or deleting them answers 403 even to a superuser.
ADMIN_READ_ONLY_MODELS = frozenset({
    "onboarding_client", "onboarding_awsaccount", "portal_auditevent", "portal_auditchaincheck",
    "switchroles_team", "switchroles_teammembership", "switchroles_grant", "switchroles_linkuse",
    "switchroles_enforcedprincipal", "switchroles_driftcheck",
})

# GETs that write, and what they may write. Nothing else may change a row on GET.
GET_MAY_WRITE = {
    # The click-through is the record of who used which link when (DESIGN: "who clicked it when"):
    # one LinkUse and its audit event, written as the browser is sent to AWS.
    "switchroles:go": {"switchroles_linkuse", "portal_auditevent", "portal_auditchainhead"},
    # allauth copies the person's own address into its EmailAddress table the first time the page
    # is shown (allauth.account.utils.sync_user_email_addresses); nothing about access changes.
    "account_email": {"account_emailaddress"},
}


def expected(route: Route) -> tuple[int | str | frozenset[int], ...] | None:
    if route.name in MATRIX:
        return MATRIX[route.name]
    if route.is_admin:
        short = route.name.removeprefix("admin:")
        model, _, action = short.rpartition("_")
        if model in ADMIN_READ_ONLY_MODELS and action in {"add", "delete"}:
            return (*ADMIN_RULE[:-1], 403)
        return ADMIN_RULE
    return None


def _matches(got: int | str, cell: int | str | frozenset[int]) -> bool:
    return got in cell if isinstance(cell, frozenset) else got == cell


def test_every_url_name_has_a_row() -> None:
    # Given every URL name of the project, namespaces included
    routes = all_routes()

    # Then each has a row (a new URL must be added to MATRIX), and every row is a URL that exists
    missing = [route.name for route in routes if expected(route) is None]
    assert not missing, "URLs without a row in MATRIX (add one, one cell per visitor):\n" + "\n".join(missing)
    stale = sorted(set(MATRIX) - {route.name for route in routes})
    assert not stale, f"MATRIX rows for URLs that no longer exist: {stale}"
    assert all(len(row) == len(PERSONAS) for row in MATRIX.values())
    assert len(routes) > 150


def test_every_url_answers_each_visitor_as_the_matrix_says_and_get_changes_nothing(
    world: World, aws_unreachable: AwsUnreachable
) -> None:
    # Given the seven visitors, each with their own session
    browsers = {persona: world.client_for(persona) for persona in PERSONAS}
    for browser in browsers.values():
        browser.raise_request_exception = False  # a 500 is a cell like any other, reported below
    failures: list[str] = []
    checked = 0

    # When each of them GETs every URL of the project
    for route in all_routes():
        row = expected(route)
        assert row is not None, route.name
        path = path_of(route, world)
        before = row_counts()
        for persona, cell in zip(PERSONAS, row, strict=True):
            got = classify(browsers[persona].get(path))
            checked += 1

            # Then the answer is the one in the matrix
            if not _matches(got, cell):
                failures.append(f"{route.name} {path} as {PERSONA_LABELS[persona]}: expected {cell}, got {got}")
        # and no row changed, whoever asked
        changed = changed_tables(before, row_counts())
        if changed and not set(changed) <= GET_MAY_WRITE.get(route.name, set()):
            failures.append(f"{route.name} {path}: GET changed {changed}")

    assert checked > 150 * len(PERSONAS)
    assert not failures, f"{len(failures)} cells differ:\n" + "\n".join(failures)


# Rows that exist but are someone else's, asked for by a visitor whose capability lets them ask:
# 404 (the same answer as for an id that does not exist) and nothing changes.
NOT_YOURS = [
    # (method, URL name, path arguments: row names or @persona, visitor)
    ("GET", "switchroles:go", {"role_id": "globex_role"}, "eng"),            # team B's link
    ("GET", "switchroles:go", {"role_id": "acme_admin_role"}, "eng"),        # a tier A was not granted
    ("GET", "switchroles:why", {"role_id": "globex_role"}, "eng"),
    ("POST", "switchroles:favourite", {"role_id": "globex_role"}, "eng"),
    ("POST", "switchroles:favourite", {"role_id": "acme_role"}, "eng_b"),
    ("GET", "switchroles:person_edit", {"person_id": "@adm"}, "mgr"),        # superusers are the admin's
    ("POST", "switchroles:person_edit", {"person_id": "@adm"}, "mgr"),
    ("GET", "switchroles:person_leave", {"person_id": "@adm"}, "mgr"),       # superusers are the admin's
    ("POST", "switchroles:person_leave", {"person_id": "@adm"}, "mgr"),
    ("POST", "onboarding:step_retry", {"account_id": "acme_prod", "step_id": "step"}, "mgr"),  # another's step
    ("POST", "switchroles:rollout_account_retry", {"template_id": "admin_template", "part_id": "part"}, "mgr"),
    ("POST", "switchroles:team_member_remove", {"team_id": "team_b", "person_id": "@eng"}, "mgr"),  # not a member
    ("POST", "audit:review_decide", {"review_id": "review_b", "item_id": "item"}, "mgr"),  # another review's item
    ("GET", "elevations:detail", {"request_id": "elevation"}, "eng_b"),       # engineer A's elevation request
    ("POST", "elevations:decide", {"request_id": "elevation"}, "eng_b"),
    ("POST", "elevations:end", {"request_id": "elevation"}, "eng_b"),
]


@pytest.mark.parametrize(("method", "name", "arguments", "persona"), NOT_YOURS,
                         ids=[f"{m} {n} {p}" for m, n, _, p in NOT_YOURS])
def test_rows_that_are_not_yours_answer_404(
    world: World, aws_unreachable: AwsUnreachable, method: str, name: str, arguments: dict[str, str], persona: str
) -> None:
    # Given a visitor, and a real row they may not use
    kwargs = {arg: str(world.people[key[1:]].pk if key.startswith("@") else world.pk(key))
              for arg, key in arguments.items()}
    path = reverse(name, kwargs=kwargs)
    browser = world.client_for(persona)
    before = row_counts()

    # When they ask for it
    response = browser.get(path) if method == "GET" else browser.post(path, {"decision": "revoke", "note": "x"})

    # Then it does not exist for them, and nothing changed
    assert response.status_code == 404
    assert not changed_tables(before, row_counts())
    assert not aws_unreachable.calls


# --- CSRF: every URL that accepts a POST refuses one without the token, and changes nothing -------

# Every URL that accepts a POST, and a visitor who may send it. Admin URLs all accept POSTs (the
# admin rule below). Any other URL must answer 405 to a POST: test_only_these_urls_accept_a_post.
STATE_CHANGING: dict[str, str] = {
    # sign-in and the person's own account (django-allauth)
    "account_login": "anon",
    "account_signup": "anon",
    "account_reset_password": "anon",
    "account_reset_password_from_key": "anon",
    "account_confirm_email": "anon",
    "account_confirm_login_code": "anon",
    "mfa_authenticate": "anon",
    "mfa_activate_totp": "nomfa",
    "account_logout": "eng",
    "account_change_password": "eng",
    "account_set_password": "eng",
    "account_email": "eng",
    "account_reauthenticate": "eng",
    "account_request_reauthentication_code": "eng",
    "account_confirm_reauthentication_code": "eng",
    "mfa_reauthenticate": "eng",
    "mfa_deactivate_totp": "eng",
    "mfa_generate_recovery_codes": "eng",
    # onboarding
    "onboarding:client_new": "mgr",
    "onboarding:step_retry": "mgr",
    "onboarding:account_cancel": "mgr",
    "onboarding:access_verify": "mgr",
    "onboarding:account_handback": "mgr",
    "onboarding:client_handback": "mgr",
    "onboarding:adopt": "mgr",
    "onboarding:bulk": "mgr",
    "onboarding:access_role_change": "mgr",
    "onboarding:root_access_enable": "mgr",
    "onboarding:account_root_check": "mgr",
    "onboarding:account_root_remove": "mgr",
    # the directory, grants, teams, people, enforcement, drift, templates
    "switchroles:favourite": "eng",
    "switchroles:grant_new": "mgr",
    "switchroles:grant_revoke": "mgr",
    "switchroles:team_new": "mgr",
    "switchroles:team_member_add": "mgr",
    "switchroles:team_member_remove": "mgr",
    "switchroles:person_new": "mgr",
    "switchroles:person_edit": "mgr",
    "switchroles:person_leave": "mgr",
    "switchroles:departure_retry": "mgr",
    "switchroles:team_webhook": "mgr",
    "notification_preferences": "eng",
    "switchroles:enforcement_check": "mgr",
    "switchroles:drift_check": "mgr",
    "switchroles:drift_repair": "mgr",
    "switchroles:drift_repair_main_account": "mgr",
    "switchroles:access_check": "mgr",
    "switchroles:trust_rollout": "mgr",
    "switchroles:rollout_account_retry": "mgr",
    "roletemplates:new": "mgr",
    "roletemplates:edit": "mgr",
    # access reviews
    "audit:review_new": "mgr",
    "audit:review_decide": "mgr",
    # billing
    "billing:refetch": "mgr",
    # client contacts and elevations
    "elevations:new": "eng",
    "elevations:decide": "mgr",
    "elevations:end": "eng",
    "elevations:emergency": "mgr",
    "elevations:client_contacts": "mgr",
    "elevations:contact_accept": "anon",
    "billing:markup": "adm",
    # the person's own API tokens
    "api_tokens:new": "eng",
    "api_tokens:revoke": "eng",
}


def _with_csrf_cookie(world: World, persona: str) -> tuple[Any, str]:
    """A browser that enforces CSRF like a real one, holding a CSRF cookie; and that cookie's token."""
    browser = world.client_for(persona, enforce_csrf_checks=True)
    browser.raise_request_exception = False
    token = _get_new_csrf_string()
    browser.cookies[settings.CSRF_COOKIE_NAME] = token
    return browser, token


def _post_and_roll_back(browser: Any, path: str, **extra: str) -> tuple[Any, dict[str, tuple[int, int]]]:
    """POST, note which tables changed, then undo it, so one POST (a sign-out, an authenticator
    removed) cannot change what the next one sees."""
    with rolled_back_block():
        before = row_counts()
        response = browser.post(path, {}, **extra)
        changed = changed_tables(before, row_counts())
        transaction.set_rollback(True)
    return response, changed


def test_every_state_change_refuses_a_post_without_the_csrf_token(
    world: World, aws_unreachable: AwsUnreachable
) -> None:
    failures: list[str] = []
    routes = [route for route in all_routes() if route.name in STATE_CHANGING or route.is_admin]
    assert {route.name for route in routes} >= set(STATE_CHANGING), "STATE_CHANGING names a URL that is gone"
    for route in routes:
        persona = STATE_CHANGING.get(route.name, "adm")
        path = path_of(route, world)
        browser, token = _with_csrf_cookie(world, persona)

        # When the visitor who may send it POSTs without the token (as a forged cross-site form would)
        forged, changed = _post_and_roll_back(browser, path)

        # Then CSRF protection refuses it, and nothing changed
        if forged.status_code != 403 or b"CSRF verification failed" not in forged.content:
            failures.append(f"{route.name} {path}: without a token answered {classify(forged)}")
        if changed:
            failures.append(f"{route.name} {path}: without a token changed {changed}")
        if route.is_admin:
            continue
        # ...while the same POST with the token gets past CSRF (so the refusal above was CSRF's)
        genuine, _ = _post_and_roll_back(browser, path, HTTP_X_CSRFTOKEN=token)
        if genuine.status_code == 403 and b"CSRF" in genuine.content:
            failures.append(f"{route.name} {path}: with the token still refused by CSRF")
    assert len(routes) > 100
    assert not failures, "\n".join(failures)


def test_only_these_urls_accept_a_post(world: World, aws_unreachable: AwsUnreachable) -> None:
    # Given every URL that is not in STATE_CHANGING (nor the admin's)
    failures: list[str] = []
    for route in all_routes():
        if route.name in STATE_CHANGING or route.is_admin:
            continue
        if route.name in API_TOKEN_ONLY:
            continue  # a session cannot POST to the API at all: test_the_api_takes_no_session_post
        path = path_of(route, world)
        for persona in ("eng", "mgr", "adm"):
            browser, token = _with_csrf_cookie(world, persona)

            # When a signed-in visitor POSTs to it, with a valid CSRF token
            response, changed = _post_and_roll_back(browser, path, HTTP_X_CSRFTOKEN=token)

            # Then it does not take POSTs at all
            if response.status_code != 405 or changed:
                failures.append(f"{route.name} {path} as {PERSONA_LABELS[persona]}: {classify(response)} {changed}")
    assert not failures, "URLs that accept a POST but are not in STATE_CHANGING:\n" + "\n".join(failures)


# --- the JSON API, by token ----------------------------------------------------------------------------
#
# Columns: no token; then the read-write token of engineer A, engineer B, the manager, the auditor
# and the admin (World.api_tokens). GETs of a route that only takes POST answer 405 to a token holder.

API_PERSONAS = ("none", "eng", "eng_b", "mgr", "aud", "adm")
API_PUBLIC = frozenset({"api:schema", "api:docs"})  # the schema and its docs page hold no data
POST_ONLY = (401, 405, 405, 405, 405, 405)
READERS_ONLY = (401, 403, 403, OK, OK, OK)

#                     no token  eng  eng B  manager  auditor  admin
API_MATRIX: dict[str, tuple[int, ...]] = {
    "api:schema":       (OK, OK, OK, OK, OK, OK),
    "api:docs":         (OK, OK, OK, OK, OK, OK),
    "api:me":           (401, OK, OK, OK, OK, OK),
    "api:links":        (401, OK, OK, OK, OK, OK),
    "api:clients":      READERS_ONLY,
    "api:client":       READERS_ONLY,
    "api:account":      READERS_ONLY,
    "api:access":       READERS_ONLY,
    "api:teams":        READERS_ONLY,
    "api:onboardings":  POST_ONLY,
    "api:grants":       POST_ONLY,
    "api:grant_revoke": POST_ONLY,
    "api:people":       POST_ONLY,
    "api:person_deactivate": POST_ONLY,
    "api:findings":     READERS_ONLY,
    "api:elevations":   (401, OK, OK, OK, OK, OK),  # each token sees what elevations_visible_to shows
    "api:elevation_approve": POST_ONLY,
    "api:elevation_decline": POST_ONLY,
    "api:checks":       POST_ONLY,
    "api:check":        READERS_ONLY,
}  # fmt: skip
API_TOKEN_ONLY = frozenset(API_MATRIX) - API_PUBLIC

# Every write of the API, the body a manager would send, and its answer. (Onboarding asks AWS once
# its input is valid: its audited write is shown against moto in tests/api/test_onboarding_moto.py.)
API_WRITES: dict[str, tuple[dict[str, str], Callable[[World], dict[str, Any]], int]] = {
    "api:grants": ({}, lambda w: {"team": w.pk("team_b"), "client": w.pk("acme"), "tiers": ["engineer"],
                                  "reason": "Team B covers Acme"}, 201),
    "api:grant_revoke": ({"grant_id": "grant_a"}, lambda w: {"reason": "Left the project"}, 200),
    "api:people": ({}, lambda w: {"username": "newbie", "email": "newbie@example.com",
                                  "capabilities": ["Engineer"], "teams": [w.pk("team_a")]}, 201),
    "api:onboardings": ({}, lambda w: {"client": w.pk("acme"), "account_name": "staging", "origin": "create",
                                       "root_email": "awsaccounts+acme-staging@example.com",
                                       "tiers": ["engineer"], "reason": "Acme wants staging"}, 202),
    "api:person_deactivate": ({"person_id": "leaver"}, lambda w: {"reason": "Last day 30 November"}, 200),
    "api:elevation_approve": ({"elevation_id": "elevation"}, lambda w: {}, 200),
    "api:elevation_decline": ({"elevation_id": "elevation"}, lambda w: {"reason": "Not during the freeze"}, 200),
    "api:checks": ({}, lambda w: {}, 202),
}


def _elevation_body(world: World) -> dict[str, Any]:
    """Engineer A asks for Administrator on Acme again: the world's own request for it is ended first."""
    from elevations.models import ElevationRequest

    ElevationRequest.objects.filter(pk=world.pk("elevation")).update(state=ElevationRequest.State.ENDED)
    return {"account": world.pk("acme_prod"), "tier": "administrator", "duration_minutes": 30, "reason": "INC-2"}


# Writes that engineers may make too (POST, but GET answers more than 405): who sends them, and how.
API_ENGINEER_WRITES: dict[str, tuple[dict[str, str], Callable[[World], dict[str, Any]], int]] = {
    "api:elevations": ({}, _elevation_body, 201),
}


def _api_client(world: World, persona: str, *, token: str | None = None) -> HttpClient:
    secret = token if token is not None else world.api_tokens.get(persona)
    client = HttpClient(headers={"Authorization": f"Bearer {secret}"} if secret else {})
    client.raise_request_exception = False
    return client


def _api_routes() -> list[Route]:
    return [route for route in all_routes() if route.name.startswith("api:")]


def _read_token(world: World, persona: str) -> str:
    from portal.api.tokens import api_token_create

    return api_token_create(owner=world.people[persona], name="read only", scope="read", lifetime_days=1).secret


def test_every_api_route_has_a_row_in_the_api_matrix() -> None:
    names = {route.name for route in _api_routes()}
    assert names, "no API routes"
    assert names == set(API_MATRIX), (f"missing: {sorted(names - set(API_MATRIX))}, "
                                      f"stale: {sorted(set(API_MATRIX) - names)}")
    assert set(API_WRITES) == {name for name, row in API_MATRIX.items() if row == POST_ONLY}


def test_every_api_route_answers_each_token_as_the_api_matrix_says_and_get_changes_nothing(
    world: World, aws_unreachable: AwsUnreachable
) -> None:
    # Given each persona's token (and a caller with none)
    clients = {persona: _api_client(world, persona) for persona in API_PERSONAS}
    failures: list[str] = []
    for route in _api_routes():
        path = path_of(route, world)
        before = row_counts()
        for persona, cell in zip(API_PERSONAS, API_MATRIX[route.name], strict=True):
            # When they GET the route
            response = clients[persona].get(path)

            # Then the answer is the matrix's, in JSON unless it is the docs page
            if response.status_code != cell:
                failures.append(f"{route.name} {path} as {persona}: expected {cell}, got {response.status_code}")
            if route.name != "api:docs" and "json" not in response["Content-Type"]:
                failures.append(f"{route.name} as {persona}: {response['Content-Type']}")
            if "Set-Cookie" in response or response.cookies:
                failures.append(f"{route.name} as {persona}: set a cookie")
        if changed_tables(before, row_counts()):
            failures.append(f"{route.name}: GET changed {changed_tables(before, row_counts())}")
    assert not failures, "\n".join(failures)
    assert not aws_unreachable.calls


@pytest.mark.parametrize("name", [*API_WRITES, *API_ENGINEER_WRITES])
def test_every_api_write_is_refused_without_a_token_and_with_a_read_token(
    world: World, aws_unreachable: AwsUnreachable, name: str
) -> None:
    arguments, body, _ = {**API_WRITES, **API_ENGINEER_WRITES}[name]
    path = reverse(name, kwargs={argument: world.pk(row) for argument, row in arguments.items()})
    before = row_counts()

    # When the manager's valid write is sent with no token, a malformed one, and a read-only token
    refusals = {
        "none": _api_client(world, "none").post(path, body(world), content_type="application/json"),
        "bad": _api_client(world, "mgr", token="sy_notatoken").post(path, body(world), content_type="application/json"),
        "read": _api_client(world, "mgr", token=_read_token(world, "mgr")).post(
            path, body(world), content_type="application/json"),
        # ...and by an auditor and an engineer with their read-write tokens
        "auditor": _api_client(world, "aud").post(path, body(world), content_type="application/json"),
        "engineer": _api_client(world, "eng" if name not in API_ENGINEER_WRITES else "aud").post(
            path, body(world), content_type="application/json"),
    }

    # Then it is refused (401 without a valid token, 403 otherwise) in JSON, nothing changed but the read
    # token's own creation, and AWS was never asked
    assert {key: r.status_code for key, r in refusals.items()} == {
        "none": 401, "bad": 401, "read": 403, "auditor": 403, "engineer": 403}
    assert all("detail" in r.json() for r in refusals.values())
    assert set(changed_tables(before, row_counts())) <= {"portal_apitoken", "portal_auditevent"}
    assert not aws_unreachable.calls


@pytest.mark.parametrize("name", [*(name for name in API_WRITES if name != "api:onboardings"), *API_ENGINEER_WRITES])
def test_every_api_write_with_a_read_write_token_is_audited_naming_the_token(
    world: World, aws_unreachable: AwsUnreachable, name: str
) -> None:
    from portal.api.models import ApiToken
    from portal.audit.models import AuditEvent

    arguments, body, status = {**API_WRITES, **API_ENGINEER_WRITES}[name]
    writer = "eng" if name in API_ENGINEER_WRITES else "mgr"
    path = reverse(name, kwargs={argument: world.pk(row) for argument, row in arguments.items()})
    last = AuditEvent.objects.order_by("-sequence").first()
    token = ApiToken.objects.get(owner=world.people[writer])

    # When the manager (or, for an engineer's write, engineer A) sends it with their read-write token
    response = _api_client(world, writer).post(path, body(world), content_type="application/json")

    # Then it is done, and every event it wrote names the manager and the token (not its secret)
    assert response.status_code == status, response.content
    events = list(AuditEvent.objects.filter(sequence__gt=last.sequence if last else 0)
                  .exclude(action="elevation.approvers_notified", actor__isnull=True))  # the system's notice
    assert events
    for event in events:
        assert event.actor == world.people[writer]
        assert event.details["api_token"] == {"id": token.pk, "name": token.name, "prefix": token.prefix,
                                              "scope": "read-write"}
        assert world.api_tokens[writer] not in json.dumps(event.details)


def test_the_api_takes_no_session_post(world: World, aws_unreachable: AwsUnreachable) -> None:
    # Given signed-in browsers holding a valid CSRF token
    failures: list[str] = []
    for route in _api_routes():
        if route.name not in API_TOKEN_ONLY:
            continue
        path = path_of(route, world)
        for persona in ("eng", "mgr", "adm"):
            browser, token = _with_csrf_cookie(world, persona)

            # When they POST to an API route with their session
            response, changed = _post_and_roll_back(browser, path, HTTP_X_CSRFTOKEN=token)

            # Then the session is no credential: 401, nothing changed
            if response.status_code != 401 or changed:
                failures.append(f"{route.name} as {PERSONA_LABELS[persona]}: {response.status_code} {changed}")
    assert not failures, "\n".join(failures)
# --- the client-contact persona ------------------------------------------------------------------

# A client contact (of Acme) is a column of its own so the matrix above keeps seven cells a row: every
# URL answers them 404 (elevations.middleware confines them to their corner), except these.
CONTACT_MATRIX: dict[str, int | str | frozenset[int]] = {
    "healthz": HEALTH,
    "home": "→client:index",
    "account_login": HOME,
    "account_logout": OK,
    "account_change_password": OK,
    "account_reauthenticate": OK,
    "account_reset_password": OK,
    "account_reset_password_done": OK,
    "account_reset_password_from_key": OK,
    "account_reset_password_from_key_done": OK,
    "mfa_activate_totp": "→mfa_deactivate_totp",  # already enrolled: allauth offers to replace it
    "mfa_deactivate_totp": OK,
    "mfa_authenticate": HOME,
    "mfa_index": OK,
    "mfa_reauthenticate": OK,
    "mfa_view_recovery_codes": OK,
    "mfa_download_recovery_codes": OK,
    "mfa_generate_recovery_codes": OK,
    "client:index": OK,
    "client:evidence": OK,
    "client:log": OK,
    "client:log_csv": OK,
    "elevations:list": OK,
    "elevations:new": OK,  # with nothing to choose from
    "elevations:detail": OK,  # a request on Acme's account: theirs to see
    "elevations:decide": 405,
    "elevations:end": 405,
    "elevations:emergency": 405,
    "elevations:client_contacts": 403,
    "elevations:contact_accept": 404,  # a bad token: the link does not work
}
CONTACT_DEFAULT = 404


def test_every_url_answers_a_client_contact_as_the_contact_column_says(
    world: World, aws_unreachable: AwsUnreachable
) -> None:
    # Given a client contact of Acme, signed in
    browser = signed_in_client(world.people["contact"])
    browser.raise_request_exception = False
    stale = sorted(set(CONTACT_MATRIX) - {route.name for route in all_routes()})
    assert not stale, f"CONTACT_MATRIX rows for URLs that no longer exist: {stale}"
    failures: list[str] = []

    # When they GET every URL of the project (MSP pages, the admin, other clients' rows included)
    for route in all_routes():
        path = path_of(route, world)
        cell = CONTACT_MATRIX.get(route.name, CONTACT_DEFAULT)
        got = classify(browser.get(path))

        # Then only their own corner answers; everything else does not exist for them
        if not _matches(got, cell):
            failures.append(f"{route.name} {path} as a client contact: expected {cell}, got {got}")
    assert not failures, f"{len(failures)} cells differ:\n" + "\n".join(failures)
