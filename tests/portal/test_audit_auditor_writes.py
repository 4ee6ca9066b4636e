"""Auditors change nothing: every URL of the project, POSTed to by an auditor, refuses and leaves
every table as it was.

Generic on purpose: it walks the whole URL configuration (``get_resolver``), so a URL added
anywhere later is covered without touching this file. Path arguments are filled with the ids of
real rows (``<client_id>`` gets a real client, ``<role_id>`` a real account role, …), so a view
cannot pass by answering 404 for a row that does not exist.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from django.apps import apps
from django.db import models
from django.test import Client as HttpClient
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from portal.models import AccessReview, AccessReviewItem
from portal.people.models import User
from switchroles.models import LinkUse
from tests.conftest import MakePerson
from tests.factories import add_member, make_account, make_client, make_grant, make_role, make_team

pytestmark = pytest.mark.django_db

# The person's own sign-in (django-allauth: sign out, password, authenticator, recovery codes)
# is theirs to manage whatever their capability, and changes no portal data.
OWN_SIGN_IN_PREFIX = "/accounts/"
# Likewise which notices they receive (issue 18): their own choice, audited, no access data.
OWN_CHOICES = ("/notifications/",)
# Where a refusal may send an auditor: the sign-in or re-authentication pages, or the admin's
# own login and index (the admin refuses anyone who is not staff that way).
REFUSAL_REDIRECTS = ("/accounts/login/", "/accounts/reauthenticate/", "/accounts/2fa/", "/admin/login/")
# 401: the JSON API, where a session is no credential (its tokens: tests/security/test_access_matrix.py).
REFUSAL_STATUSES = {400, 401, 403, 404, 405}
# Path argument names that do not say their model outright.
ALIASES = {"person": "user", "user": "user", "object": "", "pk": "", "id": ""}


def walk(patterns: list[URLPattern | URLResolver] | None = None, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(name, route) of every URL pattern, admin regexes included."""
    for entry in patterns if patterns is not None else get_resolver().url_patterns:
        route = str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from walk(entry.url_patterns, prefix + route)
        else:
            yield entry.name or "", prefix + route


def _model_for(argument: str) -> type[models.Model] | None:
    base = ALIASES.get(argument.removesuffix("_id"), argument.removesuffix("_id"))
    if not base:
        return None
    candidates = [m for m in apps.get_models() if m._meta.model_name == base] or [
        m for m in apps.get_models() if m._meta.model_name.endswith(base)  # type: ignore[union-attr]
    ]
    return next((m for m in candidates if m._default_manager.exists()), None)


def _value(argument: str, converter: str) -> str:
    model = _model_for(argument)
    if model is not None:
        row = model._default_manager.order_by("pk").first()
        if row is not None:
            return str(row.pk)
    return "1" if converter in {"int", "path_int"} else "x1"


def concrete_path(route: str) -> str:
    if route.startswith("^") or "(?P<" in route:  # the admin's regexes
        route = route.replace("^", "").replace("$", "").replace("\\", "")
        route = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: _value(m.group(1), "int"), route)
    route = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: _value(m.group(2), m.group(1) or "str"), route)
    return "/" + route


def row_counts() -> dict[str, int]:
    return {m._meta.label: m._default_manager.count() for m in apps.get_models()}


@pytest.fixture
def world(make_person: MakePerson) -> User:
    """One of everything a URL can point at, and an auditor."""
    boss = make_person("boss", "Manager")
    eli = make_person("eli", "Engineer")
    acme = make_client("Acme")
    account = make_account(acme)
    role = make_role(account, "engineer")
    team = make_team("Ops")
    add_member(team, eli, at=timezone.now() - timedelta(days=1))
    grant = make_grant(by=boss, team=team, client=acme, tiers=("engineer",))
    make_grant(by=boss, person=eli, account=account, tiers=("engineer",))
    LinkUse.objects.create(person=eli, account_role=role, grant=grant, used_at=timezone.now())
    review = AccessReview.objects.create(title="Q3", scope="everything", deadline=timezone.now() + timedelta(days=7),
                                         opened_by=boss, opened_at=timezone.now())
    review.reviewers.add(boss)
    AccessReviewItem.objects.create(review=review, grant=grant)
    from onboarding.models import OnboardingStep

    OnboardingStep.objects.create(account=account, position=1, kind=OnboardingStep.Kind.CREATE_ACCOUNT)
    return make_person("audrey", "Auditor")


def test_every_url_refuses_a_post_from_an_auditor_and_changes_no_row(world: User) -> None:
    auditor = world
    checked, failures = 0, []
    for name, route in sorted(set(walk())):
        path = concrete_path(route)
        if path.startswith(OWN_SIGN_IN_PREFIX) or path in OWN_CHOICES:
            continue
        client = HttpClient()  # no CSRF enforcement: the refusal must come from the permission check
        client.force_login(auditor, backend="django.contrib.auth.backends.ModelBackend")
        before = row_counts()

        response = client.post(path, data={})

        checked += 1
        location = response.get("Location", "")
        refused = response.status_code in REFUSAL_STATUSES or (
            300 <= response.status_code < 400
            and (location.startswith(REFUSAL_REDIRECTS) or (path.startswith("/admin/") and location == "/admin/"))
        )
        after = row_counts()
        changed = {label: (n, after[label]) for label, n in before.items() if after[label] != n}
        if not refused or changed:
            failures.append(f"{name or '?'} {path}: {response.status_code} {location} changed={changed}")
    assert checked > 20, "the walk found too few URLs"
    assert not failures, "an auditor changed something:\n" + "\n".join(failures)


def test_the_walk_covers_the_audit_writes_with_real_ids(world: User) -> None:
    routes = {name: concrete_path(route) for name, route in walk()}
    review = AccessReview.objects.get()

    assert routes["review_decide"] == (
        f"/audit/reviews/{review.pk}/items/{review.items.get().pk}/decide/"
    )
    assert routes["review_new"] == "/audit/reviews/new/"
