"""Access reviews: opening over a scope, deciding items (revocation through the grant service),
progress and overdue, suggestions from unused links, the export, and who may do what."""

from __future__ import annotations

import csv
import io
import time
from datetime import timedelta

import pytest
from django.core.exceptions import PermissionDenied, ValidationError
from django.test import Client as HttpClient
from django.utils import timezone

from portal.audit.models import AuditEvent
from portal.evidence.matrix import AccessMatrix, MatrixFilters
from portal.models import AccessReview, AccessReviewItem
from portal.people.models import User
from portal.reviews import access_review_decide, access_review_open, review_items, review_progress
from switchroles.models import Grant, LinkUse
from tests.conftest import MakePerson
from tests.factories import add_member, make_account, make_client, make_grant, make_role, make_team

pytestmark = pytest.mark.django_db


def reauthenticated(client: HttpClient, user: User) -> HttpClient:
    """Record a fresh re-authentication (password and authenticator code) in the session, as
    allauth's re-authentication pages do; revoking is a dangerous action (``portal.web.reauth``)."""
    session = client.session
    session["account_authentication_methods"] = [
        {"method": "password", "at": time.time(), "username": user.username, "reauthenticated": True},
        {"method": "mfa", "at": time.time(), "type": "totp", "reauthenticated": True},
    ]
    session["account_authentication_methods_user"] = str(user.pk)
    session.save()
    return client


@pytest.fixture
def estate(make_person: MakePerson) -> dict:
    """Acme (two roles) and Beta (one); Ops granted engineer on Acme long ago and used recently;
    eli granted administrator on Acme long ago and never used; Beta granted on-call to Ops; one
    revoked grant that no review may list."""
    boss, reviewer = make_person("boss", "Manager"), make_person("rita", "Manager")
    eli = make_person("eli", "Engineer")
    long_ago = timezone.now() - timedelta(days=200)
    acme, beta = make_client("Acme"), make_client("Beta")
    acme_account = make_account(acme)
    engineer_role = make_role(acme_account, "engineer", activated_at=long_ago)
    make_role(acme_account, "administrator", activated_at=long_ago)
    make_role(make_account(beta), "oncall", activated_at=long_ago)
    ops = make_team("Ops")
    add_member(ops, eli, at=long_ago)
    team_grant = make_grant(by=boss, team=ops, client=acme, tiers=("engineer",), at=long_ago)
    personal = make_grant(by=boss, person=eli, client=acme, tiers=("administrator",), at=long_ago)
    beta_grant = make_grant(by=boss, team=ops, client=beta, tiers=("oncall",), at=long_ago)
    make_grant(by=boss, person=eli, client=acme, tiers=("engineer",), at=long_ago,
               revoked_at=long_ago + timedelta(days=1))
    LinkUse.objects.create(person=eli, account_role=engineer_role, grant=team_grant,
                           used_at=timezone.now() - timedelta(days=3))
    return {"boss": boss, "reviewer": reviewer, "eli": eli, "acme": acme, "team_grant": team_grant,
            "personal": personal, "beta_grant": beta_grant}


def open_review(estate: dict, **scope: object) -> AccessReview:
    return access_review_open(
        opened_by=estate["boss"], title="Q3 review", reviewers=[estate["reviewer"]],
        deadline=timezone.now() + timedelta(days=14), **scope,  # type: ignore[arg-type]
    )


def item_of(review: AccessReview, grant: Grant) -> AccessReviewItem:
    return review.items.get(grant=grant)


@pytest.mark.parametrize(
    ("scope", "expected"),
    [
        ({"scope": "client", "client": "acme"}, {"team_grant", "personal"}),
        ({"scope": "tier", "tier": "oncall"}, {"beta_grant"}),
        ({"scope": "everything"}, {"team_grant", "personal", "beta_grant"}),
    ],
)
def test_a_review_lists_the_grants_in_force_in_its_scope(estate: dict, scope: dict, expected: set[str]) -> None:
    resolved = {k: estate[v] if k == "client" else v for k, v in scope.items()}

    review = open_review(estate, **resolved)

    assert set(review.items.values_list("grant_id", flat=True)) == {estate[name].pk for name in expected}
    assert AuditEvent.objects.filter(action="access_review.opened", target_id=str(review.pk)).exists()


def test_later_grants_wait_for_the_next_review(estate: dict) -> None:
    review = open_review(estate, scope="everything")
    make_grant(by=estate["boss"], person=estate["eli"], client=estate["acme"], tiers=("oncall",))

    assert review.items.count() == 3


def test_confirming_keeps_the_grant_and_is_audited(estate: dict) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    item = item_of(review, estate["team_grant"])

    access_review_decide(item_id=item.pk, review=review, reviewer=estate["reviewer"], decision="confirm",
                         note="still on call")

    item.refresh_from_db()
    assert (item.decision, item.decided_by, item.note) == ("confirm", estate["reviewer"], "still on call")
    estate["team_grant"].refresh_from_db()
    assert estate["team_grant"].revoked_at is None
    assert AuditEvent.objects.filter(action="access_review.item_confirmed", actor=estate["reviewer"]).exists()


def test_revoking_goes_through_the_grant_service_and_access_ends(estate: dict) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    personal = estate["personal"]
    assert any(row.grant_id == personal.pk for row in AccessMatrix(MatrixFilters()))

    access_review_decide(item_id=item_of(review, personal).pk, review=review, reviewer=estate["reviewer"],
                         decision="revoke", note="left the project")

    personal.refresh_from_db()
    assert personal.revoked_at is not None
    assert personal.revoked_by == estate["reviewer"]
    assert "left the project" in personal.revoke_reason
    assert AuditEvent.objects.filter(action="grant.revoked", target_id=str(personal.pk)).exists()
    assert AuditEvent.objects.filter(action="access_review.item_revoked", target_id=str(personal.pk)).exists()
    assert not any(row.grant_id == personal.pk for row in AccessMatrix(MatrixFilters()))


def test_an_item_is_decided_once(estate: dict) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    item = item_of(review, estate["team_grant"])
    access_review_decide(item_id=item.pk, review=review, reviewer=estate["reviewer"], decision="confirm")

    with pytest.raises(ValidationError, match="already decided"):
        access_review_decide(item_id=item.pk, review=review, reviewer=estate["reviewer"], decision="revoke")
    estate["team_grant"].refresh_from_db()
    assert estate["team_grant"].revoked_at is None


def test_only_the_reviews_reviewers_decide(estate: dict) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])

    with pytest.raises(PermissionDenied):
        access_review_decide(item_id=item_of(review, estate["personal"]).pk, review=review,
                             reviewer=estate["boss"], decision="revoke")
    assert review.items.filter(decision="").count() == 2


def test_only_managers_open_reviews_and_a_plain_auditor_cannot_review(estate: dict, make_person: MakePerson) -> None:
    auditor = make_person("audrey", "Auditor")

    with pytest.raises(PermissionDenied):
        access_review_open(opened_by=auditor, title="x", scope="everything", reviewers=[estate["reviewer"]],
                           deadline=timezone.now() + timedelta(days=1))
    with pytest.raises(ValidationError, match="Only managers and reviewers can review"):
        access_review_open(opened_by=estate["boss"], title="x", scope="everything", reviewers=[auditor],
                           deadline=timezone.now() + timedelta(days=1))
    assert not AccessReview.objects.exists()


def test_progress_completion_and_overdue(estate: dict) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    later = review.deadline + timedelta(days=1)

    assert review_progress(review=review, now=later).overdue
    access_review_decide(item_id=item_of(review, estate["team_grant"]).pk, review=review,
                         reviewer=estate["reviewer"], decision="confirm")
    progress = review_progress(review=review, now=later)
    assert (progress.total, progress.decided, progress.pending, progress.percent) == (2, 1, 1, 50)
    access_review_decide(item_id=item_of(review, estate["personal"]).pk, review=review,
                         reviewer=estate["reviewer"], decision="revoke")

    review.refresh_from_db()
    assert review.state == AccessReview.State.COMPLETED
    assert not review_progress(review=review, now=later).overdue
    assert AuditEvent.objects.filter(action="access_review.completed", target_id=str(review.pk)).exists()
    with pytest.raises(ValidationError):
        access_review_decide(item_id=item_of(review, estate["team_grant"]).pk, review=review,
                             reviewer=estate["reviewer"], decision="revoke")


def test_grants_whose_links_nobody_used_are_suggested(estate: dict) -> None:
    review = open_review(estate, scope="everything")

    suggested = set(review_items(review=review, show="suggested").values_list("grant_id", flat=True))
    # Ops' engineer grant on Acme was used three days ago; the other two never were.
    assert suggested == {estate["personal"].pk, estate["beta_grant"].pk}
    # Within two days nobody used any of them.
    assert set(review_items(review=review, show="suggested", unused_days=2).values_list("grant_id", flat=True)) == {
        estate["personal"].pk, estate["beta_grant"].pk, estate["team_grant"].pk}


# --- Through the pages ---------------------------------------------------------------------------

def test_a_manager_opens_a_review_through_the_form(estate: dict, signed_in) -> None:
    client = signed_in(estate["boss"])
    deadline = (timezone.now() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M")

    response = client.post("/audit/reviews/new/", {
        "title": "Acme quarterly", "scope": "client", "client": estate["acme"].pk,
        "reviewers": [estate["reviewer"].pk], "deadline": deadline,
    })

    review = AccessReview.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/audit/reviews/{review.pk}/"
    assert review.items.count() == 2
    page = client.get(response["Location"]).content.decode()
    assert "0 of 2 decided" in page


def test_the_review_page_shows_suggestions_and_progress_to_auditors(estate: dict, auditor: User, signed_in) -> None:
    review = open_review(estate, scope="everything")

    page = signed_in(auditor).get(f"/audit/reviews/{review.pk}/?unused_days=90").content.decode()

    assert page.count("suggest revoking") == 2
    assert "0 of 3 decided" in page
    assert 'name="decision"' not in page  # auditors see no decision buttons


def test_revoking_through_the_page_asks_for_reauthentication_first(estate: dict, signed_in) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    item = item_of(review, estate["personal"])
    client = signed_in(estate["reviewer"])
    url = f"/audit/reviews/{review.pk}/items/{item.pk}/decide/"

    response = client.post(url, {"decision": "revoke", "note": "gone"})
    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/reauthenticate/")
    item.refresh_from_db()
    assert item.is_pending

    response = reauthenticated(client, estate["reviewer"]).post(url, {"decision": "revoke", "note": "gone"})
    assert response.status_code == 302
    item.refresh_from_db()
    assert item.decision == "revoke"
    estate["personal"].refresh_from_db()
    assert estate["personal"].revoked_at is not None


def test_confirming_through_the_page_needs_no_reauthentication(estate: dict, signed_in) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    item = item_of(review, estate["team_grant"])

    response = signed_in(estate["reviewer"]).post(
        f"/audit/reviews/{review.pk}/items/{item.pk}/decide/", {"decision": "confirm", "return_query": "show=pending"}
    )

    assert response.status_code == 302
    assert response["Location"] == f"/audit/reviews/{review.pk}/?show=pending"
    item.refresh_from_db()
    assert item.decision == "confirm"


def test_auditors_and_other_managers_cannot_decide(estate: dict, auditor: User, signed_in) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    url = f"/audit/reviews/{review.pk}/items/{item_of(review, estate['team_grant']).pk}/decide/"

    assert signed_in(auditor).post(url, {"decision": "confirm"}).status_code == 403
    assert signed_in(estate["boss"]).post(url, {"decision": "confirm"}).status_code == 403
    assert signed_in(auditor).get("/audit/reviews/new/").status_code == 403
    assert not review.items.exclude(decision="").exists()


def test_the_finished_review_exports_every_decision(estate: dict, auditor: User, signed_in) -> None:
    review = open_review(estate, scope="client", client=estate["acme"])
    access_review_decide(item_id=item_of(review, estate["team_grant"]).pk, review=review,
                         reviewer=estate["reviewer"], decision="confirm", note="needed")
    access_review_decide(item_id=item_of(review, estate["personal"]).pk, review=review,
                         reviewer=estate["reviewer"], decision="revoke", note="unused")

    response = signed_in(auditor).get(f"/audit/reviews/{review.pk}/review.csv")

    assert response.status_code == 200
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))  # type: ignore[arg-type]
    assert {(int(r["grant_id"]), r["decision"], r["decided_by"], r["note"]) for r in rows} == {
        (estate["team_grant"].pk, "confirm", "rita", "needed"),
        (estate["personal"].pk, "revoke", "rita", "unused"),
    }
    assert all(r["decided_at"] for r in rows)
