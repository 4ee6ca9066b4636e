"""What the security proofs share.

The world they walk: seven kinds of visitor, and one real row behind every id a URL can carry (a
client with an account and ACTIVE roles, grants to two teams, a review, a drift finding, a
roll-out, ...), so a URL that answers 404 does so because the visitor may not see the row, never
because the row does not exist.

Also: the URL walk (every name of the project, namespaces included), the response classifier
that turns an answer into a matrix cell, one-query row counts of every table, and AWS factories
that fail the test (or answer "unreachable") instead of reaching AWS.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from urllib.parse import urlsplit

import pytest
from botocore.exceptions import EndpointConnectionError
from django.apps import apps
from django.contrib.contenttypes.models import ContentType
from django.db import connection, transaction
from django.http import HttpResponse
from django.test import Client as HttpClient
from django.urls import NoReverseMatch, Resolver404, URLPattern, URLResolver, get_resolver, resolve, reverse
from django.utils import timezone
from django_celery_beat.models import ClockedSchedule, CrontabSchedule, IntervalSchedule, PeriodicTask, SolarSchedule

from onboarding.models import AwsAccount, Client, OnboardingStep
from portal.api.tokens import api_token_create
from portal.audit import audit_record
from portal.audit.models import AuditChainCheck
from portal.models import AccessReview
from portal.people.models import User
from switchroles.models import (
    Departure,
    EnforcedPrincipal,
    RoleDriftFinding,
    RolloutAccount,
)
from tests.conftest import MakePerson
from tests.factories import (
    AccessReviewFactory,
    AccessReviewItemFactory,
    AccountRoleFactory,
    ClientContactFactory,
    DepartureFactory,
    DriftCheckFactory,
    ElevationRequestFactory,
    EnforcedPrincipalFactory,
    FavouriteFactory,
    LinkUseFactory,
    OnboardingBatchFactory,
    OnboardingStepFactory,
    RoleDriftFindingFactory,
    RolloutAccountFactory,
    TemplateRolloutFactory,
    add_member,
    make_account,
    make_client,
    make_grant,
    make_team,
    seeded_template,
)

# --- the visitors -----------------------------------------------------------------------------------

PERSONAS = ("anon", "nomfa", "eng", "eng_b", "mgr", "aud", "adm")
PERSONA_LABELS = {
    "anon": "anonymous", "nomfa": "signed in without MFA", "eng": "engineer", "eng_b": "engineer of another team",
    "mgr": "manager", "aud": "auditor", "adm": "admin (superuser + staff)",
}


def mark_recently_authenticated(client: HttpClient, user: User, *, seconds_ago: float = 0) -> HttpClient:
    """What allauth records in the session when a person re-enters their password at
    /accounts/reauthenticate/ and a code at /accounts/2fa/reauthenticate/: every action (the
    dangerous ones need both, ``portal.web.reauth``) lets them through for
    ACCOUNT_REAUTHENTICATION_TIMEOUT seconds after it."""
    session = client.session
    session["account_authentication_methods_user"] = str(user.pk)
    session["account_authentication_methods"] = [
        {"method": "password", "at": time.time() - seconds_ago, "username": user.username, "reauthenticated": True},
        {"method": "mfa", "at": time.time() - seconds_ago, "type": "totp", "reauthenticated": True},
    ]
    session.save()
    return client


def signed_in_client(user: User, *, enforce_csrf_checks: bool = False, seconds_ago: float = 0) -> HttpClient:
    client = HttpClient(enforce_csrf_checks=enforce_csrf_checks)
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return mark_recently_authenticated(client, user, seconds_ago=seconds_ago)


@dataclass
class World:
    people: dict[str, User]
    rows: dict[str, Any]
    # A read-write API token of each signed-in persona, by persona: the bearer value.
    api_tokens: dict[str, str] = field(default_factory=dict)

    def client_for(self, persona: str, *, enforce_csrf_checks: bool = False) -> HttpClient:
        if persona == "anon":
            return HttpClient(enforce_csrf_checks=enforce_csrf_checks)
        return signed_in_client(self.people[persona], enforce_csrf_checks=enforce_csrf_checks)

    def pk(self, key: str) -> int:
        return int(self.rows[key].pk)


def build_world(make_person: MakePerson) -> World:
    """Seven visitors and a row behind every id a URL can carry."""
    people = {
        "nomfa": make_person("nomfa", "Manager", "Engineer", "Auditor", mfa=False, is_staff=True, is_superuser=True),
        "eng": make_person("eli", "Engineer"),
        "eng_b": make_person("bea", "Engineer"),
        "mgr": make_person("morgan", "Manager"),
        "aud": make_person("ada", "Auditor"),
        "adm": make_person("root", mfa=True, is_staff=True, is_superuser=True),
    }
    a_long_time_ago = timezone.now() - timedelta(days=30)
    acme, globex = make_client("Acme"), make_client("Globex")
    acme_prod = make_account(acme, "Production", "111111111111")
    acme_invited = make_account(acme, "Legacy", "111111111112", origin=AwsAccount.Origin.INVITED, root_email=None,
                                state=AwsAccount.State.AWAITING_ACCESS_ROLE)
    globex_prod = make_account(globex, "Production", "222222222222")
    acme_role, acme_admin_role, globex_role = (
        AccountRoleFactory(account=account, tier=tier, provisioned_revision=seeded_template(tier).revision)
        for account, tier in ((acme_prod, "engineer"), (acme_prod, "administrator"), (globex_prod, "engineer"))
    )
    team_a, team_b = make_team("Team A"), make_team("Team B")
    add_member(team_a, people["eng"], at=a_long_time_ago)
    add_member(team_b, people["eng_b"], at=a_long_time_ago)
    grant_a = make_grant(by=people["mgr"], team=team_a, client=acme, tiers=("engineer",), at=a_long_time_ago)
    grant_b = make_grant(by=people["mgr"], team=team_b, client=globex, tiers=("engineer",), at=a_long_time_ago)
    LinkUseFactory(person=people["eng"], account_role=acme_role, grant=grant_a, used_at=a_long_time_ago)
    FavouriteFactory(person=people["eng"], account_role=acme_role)
    step = OnboardingStepFactory(account=acme_invited, position=1, kind=OnboardingStep.Kind.AWAIT_ACCESS_ROLE,
                                 status=OnboardingStep.Status.FAILED, attempts=3,
                                 last_error_code="AccessDenied", last_error_message="Not there yet.")
    review = AccessReviewFactory(title="Q3 review", scope=AccessReview.Scope.EVERYTHING, opened_by=people["mgr"],
                                 reviewers=[people["mgr"]])
    item = AccessReviewItemFactory(review=review, grant=grant_a)
    review_b = AccessReviewFactory(title="Globex review", scope=AccessReview.Scope.CLIENT, client=globex,
                                   opened_by=people["mgr"], reviewers=[people["mgr"]])
    AccessReviewItemFactory(review=review_b, grant=grant_b)
    check = DriftCheckFactory(principals_checked=1, roles_checked=3, drifted=1)
    finding = RoleDriftFindingFactory(check_run=check, kind=RoleDriftFinding.Kind.DIFFERENT, account_role=acme_role)
    engineer_template = seeded_template("engineer")
    rollout = TemplateRolloutFactory(template=engineer_template, requested_by=people["mgr"])
    part = RolloutAccountFactory(rollout=rollout, account_role=acme_role, status=RolloutAccount.Status.FAILED,
                                 attempts=5, last_error_code="AccessDenied")
    audit_record(action="test.world_built", actor=people["mgr"], target=acme)
    AuditChainCheck.objects.create(intact=True, events_checked=1)
    EnforcedPrincipalFactory(principal_type=EnforcedPrincipal.Type.GROUP, team=team_a,
                             policy_name_prefix="switchyard-team-a")
    # The scheduler's rows, so the admin's pages for them point at real rows too.
    every_minute = IntervalSchedule.objects.create(every=1, period=IntervalSchedule.MINUTES)
    CrontabSchedule.objects.create(minute="0", hour="3")
    SolarSchedule.objects.create(event="sunrise", latitude=51.5, longitude=0)
    ClockedSchedule.objects.create(clocked_time=timezone.now() + timedelta(days=1))
    PeriodicTask.objects.create(name="nightly example", task="portal.tasks.example", interval=every_minute,
                                enabled=False)
    api_tokens = {persona: api_token_create(owner=people[persona], name=f"{persona} automation",
                                            scope="read-write", lifetime_days=30)
                  for persona in ("eng", "eng_b", "mgr", "aud", "adm")}
    rows: dict[str, Any] = {
        "token": api_tokens["eng"].token,
        "acme": acme, "globex": globex, "acme_prod": acme_prod, "acme_invited": acme_invited,
        "globex_prod": globex_prod, "acme_role": acme_role, "acme_admin_role": acme_admin_role,
        "globex_role": globex_role, "team_a": team_a, "team_b": team_b, "grant_a": grant_a, "grant_b": grant_b,
        "step": step, "review": review, "item": item, "review_b": review_b, "check": check, "finding": finding,
        "engineer_template": engineer_template, "admin_template": seeded_template("administrator"),
        "rollout": rollout, "part": part,
    }
    # Bringing accounts in: a batch of one adopted account.
    rows["batch"] = OnboardingBatchFactory(origin=AwsAccount.Origin.ADOPTED, requested_by=people["mgr"],
                                           reason="Adopted in the test world")
    # A leaver (issue 18): someone who is not one of the visitors, gone, their AWS removal read back.
    gone = make_person("gone", "Engineer", is_active=False)
    rows["departure"] = DepartureFactory(person=gone, left_by=people["mgr"], aws_state=Departure.AwsState.VERIFIED,
                                         aws_verified_at=timezone.now())
    rows["leaver"] = people["eng_b"]  # whom test_reauthentication makes leave
    # A "check now" request through the API (issue 15): its id is its audit event's.
    rows["check_request"] = audit_record(action="drift.check_requested", actor=people["mgr"],
                                         target_label="drift check")
    rows["manager"] = people["mgr"]  # whom the API's hostile sweep aims the leaver action at (always refused)
    # Client contacts and elevations: a contact of Acme (not one of PERSONAS' columns: it has its own,
    # CONTACT_MATRIX in test_access_matrix.py), and engineer A's pending request for Administrator on Acme.
    from django.contrib.auth.models import Group

    Group.objects.get_or_create(name="ClientContact")  # a transactional test's flush took it
    people["contact"] = ClientContactFactory(user__username="carla", client=acme, invited_by=people["mgr"],
                                             accepted_at=timezone.now()).user
    rows["elevation"] = ElevationRequestFactory(requester=people["eng"], account=acme_prod,
                                                template=rows["admin_template"], approvers="both_first")
    return World(people=people, rows=rows,
                 api_tokens={persona: created.secret for persona, created in api_tokens.items()})


# --- the URL walk -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Route:
    name: str  # namespaced: "switchroles:go", "admin:index", "account_login"
    kwargs: tuple[str, ...]  # the path arguments' names

    @property
    def is_admin(self) -> bool:
        return self.name.startswith("admin:")


def _walk(patterns: list[URLPattern | URLResolver], namespace: str) -> Iterator[Route]:
    for entry in patterns:
        if isinstance(entry, URLResolver):
            inner = f"{namespace}{entry.namespace}:" if entry.namespace else namespace
            outer = tuple(entry.pattern.regex.groupindex)
            for route in _walk(entry.url_patterns, inner):
                yield Route(route.name, outer + route.kwargs)
        elif entry.name:
            yield Route(namespace + entry.name, tuple(entry.pattern.regex.groupindex))


def all_routes() -> list[Route]:
    """Every named URL of the project, namespaced, once each (the first pattern of a name wins,
    as for ``reverse``)."""
    seen: dict[str, Route] = {}
    for route in _walk(get_resolver().url_patterns, ""):
        seen.setdefault(route.name, route)
    return sorted(seen.values(), key=lambda r: r.name)


# Which row a path argument points at, by its name; ROUTE_ARGUMENTS overrides per URL.
ARGUMENT_ROWS = {
    "client_id": "acme", "account_id": "acme_prod", "role_id": "acme_role", "grant_id": "grant_a",
    "team_id": "team_a", "step_id": "step", "finding_id": "finding", "template_id": "engineer_template",
    "part_id": "part", "review_id": "review", "item_id": "item", "departure_id": "departure",
    "batch_id": "batch", "token_id": "token", "request_id": "elevation",
    "elevation_id": "elevation", "check_id": "check_request",
}
ROUTE_ARGUMENTS = {
    # Only an invited account has an access-role template to download; its failed step is retried.
    "onboarding:access_role_template": {"account_id": "acme_invited"},
    "onboarding:step_retry": {"account_id": "acme_invited"},
    # A person is engineer A (a member of team A, someone a manager may edit).
    "switchroles:person_edit": {"person_id": "@eng"},
    "switchroles:team_member_remove": {"person_id": "@eng"},
    "switchroles:person_leave": {"person_id": "@eng"},
    "audit:person_history": {"person_id": "@eng"},
    "api:person_deactivate": {"person_id": "@eng"},
}
# allauth's token URLs: well-formed values that match no real token.
TOKEN_ARGUMENTS = {"uidb36": "1", "key": "x1y2z3"}
# Plain values: a billing month (YYYY-MM; a month with no costs fetched is still a page).
TOKEN_ARGUMENTS["month"] = "2026-01"


def _admin_kwargs(route: Route, world: World) -> dict[str, str]:
    """Admin URLs point at real rows too: the object of <app>_<model>_<action> is that model's first row."""
    kwargs: dict[str, str] = {}
    short = route.name.removeprefix("admin:")
    if "app_label" in route.kwargs:
        kwargs["app_label"] = "onboarding"
    if "content_type_id" in route.kwargs:
        content_type = ContentType.objects.get_for_model(Client)
        return {"content_type_id": str(content_type.pk), "object_id": str(world.pk("acme"))}
    if "object_id" in route.kwargs:
        model = None
        for candidate in apps.get_models():
            label = f"{candidate._meta.app_label}_{candidate._meta.model_name}_"
            if short.startswith(label) or (short == "auth_user_password_change" and candidate is User):
                model = candidate
        assert model is not None, f"no model for {route.name}"
        row = model._default_manager.order_by("pk").first()
        kwargs["object_id"] = str(row.pk) if row is not None else "1"
        if short == "auth_user_password_change":
            kwargs["id"] = kwargs.pop("object_id")
    if "id" in route.kwargs and "id" not in kwargs:
        kwargs["id"] = str(world.people["eng"].pk)
    return kwargs


def path_of(route: Route, world: World) -> str:
    """The route's URL with real rows behind its arguments."""
    if route.is_admin:
        kwargs = _admin_kwargs(route, world)
    else:
        overrides = ROUTE_ARGUMENTS.get(route.name, {})
        kwargs = {}
        for argument in route.kwargs:
            key = overrides.get(argument) or ARGUMENT_ROWS.get(argument)
            if key is None:
                kwargs[argument] = TOKEN_ARGUMENTS.get(argument, "x1")
            elif key.startswith("@"):
                kwargs[argument] = str(world.people[key[1:]].pk)
            else:
                kwargs[argument] = str(world.pk(key))
    try:
        return reverse(route.name, kwargs=kwargs)
    except NoReverseMatch as exc:  # a new argument name: say which, so a row can be added
        raise AssertionError(f"{route.name}: cannot fill its arguments {route.kwargs} ({exc})") from exc


# --- what an answer looks like in the matrix ------------------------------------------------------

OK = 200
LOGIN = "→account_login"
MFA = "→mfa_activate_totp"
REAUTH = "→account_reauthenticate"
HOME = "→home"
ADMIN_LOGIN = "→admin:login"
ADMIN_HOME = "→admin:index"
AWS = "→https://signin.aws.amazon.com/switchrole"


def classify(response: HttpResponse) -> int | str:
    """A status code, or for a redirect "→" and where it goes: the URL name for our own pages,
    scheme://host/path for anywhere else."""
    if not 300 <= response.status_code < 400:
        return response.status_code
    location = response["Location"]
    parts = urlsplit(location)
    if parts.netloc not in ("", "testserver"):
        return f"→{parts.scheme}://{parts.netloc}{parts.path}"
    try:
        match = resolve(parts.path)
    except Resolver404:
        return f"→{parts.path}"
    return f"→{match.view_name}"


# --- rows of every table, in one query --------------------------------------------------------------


def _tables() -> list[str]:
    names = {m._meta.db_table for m in apps.get_models(include_auto_created=True) if m._meta.managed}
    return sorted(names)


def rolled_back_block() -> transaction.Atomic:
    """A block the test rolls back (``transaction.set_rollback(True)``) so one request cannot change
    what the next one sees. It is marked as Django's TestCase marks the block it opens around every
    test: the top-level actions' ``atomic(durable=True)`` inside it then run as they do in any test,
    instead of refusing to be nested."""
    block = transaction.atomic()
    block._from_testcase = True
    return block


def row_counts() -> dict[str, int]:
    """How many rows every table of every model has (many-to-many tables included), in one query."""
    tables = _tables()
    quote = connection.ops.quote_name
    sql = "SELECT " + ", ".join(f"(SELECT COUNT(*) FROM {quote(t)})" for t in tables)  # noqa: S608 (our own names)
    with connection.cursor() as cursor:
        cursor.execute(sql)
        counts = cursor.fetchone()
    return dict(zip(tables, counts, strict=True))


def changed_tables(before: dict[str, int], after: dict[str, int]) -> dict[str, tuple[int, int]]:
    return {table: (n, after[table]) for table, n in before.items() if after[table] != n}


# --- AWS that must not be reached -----------------------------------------------------------------

# Every module that took ``default_client_factory`` by name (``from portal.aws import ...``).
FACTORY_HOLDERS = ("portal.aws", "onboarding.advance", "onboarding.handback", "onboarding.services",
                   "switchroles.rollout", "switchroles.drift", "switchroles.sandbox", "switchroles.tasks",
                   "billing.services")


PRODUCT_PACKAGES = ("portal", "onboarding", "switchroles", "billing", "elevations")


def _import_product_modules() -> None:
    """Import every product module now: one imported for the first time while the factory is
    replaced would keep the replacement (``from portal.aws import default_client_factory``) after
    the test, and every later test in the process would reach "AWS" through it."""
    import importlib
    import pkgutil

    for package_name in PRODUCT_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package_name}."):
            if ".migrations" not in info.name and ".management" not in info.name:
                importlib.import_module(info.name)


def replace_client_factory(monkeypatch: pytest.MonkeyPatch, factory: Callable[[], Any]) -> None:
    import importlib

    _import_product_modules()
    for module_name in FACTORY_HOLDERS:
        module = importlib.import_module(module_name)
        monkeypatch.setattr(module, "default_client_factory", factory)
    for module_name, module in list(__import__("sys").modules.items()):
        if module_name.startswith(PRODUCT_PACKAGES) and module_name not in FACTORY_HOLDERS \
                and getattr(module, "default_client_factory", None) is not None:
            monkeypatch.setattr(module, "default_client_factory", factory)


class AwsForbidden:
    """A client factory that fails the test the moment anything asks it for an AWS client."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self) -> AwsForbidden:
        return self

    def client(self, service: str, credentials: object = None, **_: object) -> Any:
        self.calls.append(service)
        pytest.fail(f"AWS ({service}) was called for input that should have been refused before AWS")


class AwsUnreachable:
    """A client factory whose clients cannot connect (what a page does when AWS is down); records
    the services asked for."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __call__(self) -> AwsUnreachable:
        return self

    def client(self, service: str, credentials: object = None, **_: object) -> Any:
        self.calls.append(service)
        raise EndpointConnectionError(endpoint_url=f"https://{service}.offline.invalid")
