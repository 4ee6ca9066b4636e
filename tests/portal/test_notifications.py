"""Notifications: each notice goes once to the right people (and a team's webhook), never to those
who opted out, is sent by a task after commit (a failing mail server is retried, nothing waits for
it), and never carries a secret."""

from __future__ import annotations

import json
import smtplib
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import pytest
from django.core import mail
from django.core.mail.backends.base import BaseEmailBackend
from django.db import connection
from django.test import Client as HttpClient
from django.urls import reverse
from django.utils import timezone

from onboarding import advance as onboarding_advance
from onboarding.models import OnboardingStep
from onboarding.workflow import Outcome
from portal import notifications
from portal.audit import audit_record
from portal.audit.models import AuditEvent
from portal.aws import AwsError
from portal.chain_checks import audit_chain_check_record
from portal.notification_sweeps import notices_sweep, review_assigned_notify
from portal.notifications.models import Notice, NotificationOptOut
from portal.reviews import access_review_open
from portal.tasks import notice_deliver_task
from switchroles import services
from switchroles.models import DriftCheck, DriftFinding, RoleDriftFinding
from switchroles.notices import drift_role_finding_notify, main_account_drift_notify
from tests.conftest import MakePerson
from tests.factories import add_member, make_account, make_client, make_grant, make_role, make_team

pytestmark = pytest.mark.django_db


class FailingMailServer(BaseEmailBackend):
    """A mail server that is down."""

    calls = 0

    def send_messages(self, email_messages: Any) -> int:
        FailingMailServer.calls += 1
        raise smtplib.SMTPServerDisconnected("Connection unexpectedly closed")


@pytest.fixture(autouse=True)
def _no_enforcement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(services, "enforcement_sync_schedule", lambda *, reason: None)


@pytest.fixture
def people(make_person: MakePerson) -> dict[str, Any]:
    return {
        "boss": make_person("boss", "Manager"), "rita": make_person("rita", "Manager"),
        "ada": make_person("ada", "Auditor"), "eli": make_person("eli", "Engineer"),
        "bea": make_person("bea", "Engineer"),
    }


def sent_to(event_subject: str) -> list[str]:
    return sorted(address for message in mail.outbox if event_subject in message.subject for address in message.to)


class WebhookStub(BaseHTTPRequestHandler):
    received: list[dict[str, Any]] = []

    def do_POST(self) -> None:  # noqa: N802 - the stdlib's name
        length = int(self.headers["Content-Length"])
        WebhookStub.received.append(json.loads(self.rfile.read(length)))
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def webhook() -> Iterator[str]:
    """A local stand-in for Slack's incoming webhook (no network)."""
    WebhookStub.received = []
    server = HTTPServer(("127.0.0.1", 0), WebhookStub)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/services/T000/B000"
    server.shutdown()


def test_a_review_is_announced_once_to_its_reviewers_and_not_to_those_who_opted_out(
    people: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    # given rita opted out of review notices, boss did not; eli holds a grant to review
    NotificationOptOut.objects.create(person=people["rita"], event="review.assigned")
    client = make_client("Acme")
    make_role(make_account(client), "engineer")
    make_grant(by=people["boss"], person=people["eli"], client=client, tiers=("engineer",))

    # when a review is opened with both as reviewers (and the notice asked for again)
    with django_capture_on_commit_callbacks(execute=True):
        review = access_review_open(opened_by=people["boss"], title="Q4 review", scope="everything",
                                    reviewers=[people["boss"], people["rita"]], deadline=timezone.now() + timedelta(7))
    with django_capture_on_commit_callbacks(execute=True):
        review_assigned_notify(review=review)

    # then boss got one e-mail with the link, rita and the others none
    assert sent_to("Access review to do: Q4 review") == ["boss@example.com"]
    assert f"/audit/reviews/{review.pk}/" in mail.outbox[0].body
    assert Notice.objects.get().state == Notice.State.SENT


def test_an_overdue_review_is_told_once(people: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    client = make_client("Acme")
    make_role(make_account(client), "engineer")
    make_grant(by=people["boss"], person=people["eli"], client=client, tiers=("engineer",))
    review = access_review_open(opened_by=people["boss"], title="Q4 review", scope="everything",
                                reviewers=[people["rita"]], deadline=timezone.now() + timedelta(hours=1))

    with django_capture_on_commit_callbacks(execute=True):
        notices_sweep(now=review.deadline + timedelta(hours=1))
        notices_sweep(now=review.deadline + timedelta(hours=2))

    assert sent_to("Access review overdue") == ["rita@example.com"]
    assert "1 grant still wait" in next(m for m in mail.outbox if "overdue" in m.subject).body


def test_an_expiring_grant_is_told_at_7_days_and_at_1_day_to_holders_granter_and_team_webhook(
    people: dict[str, Any], webhook: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given a team grant (eli and bea in Ops, Ops has a webhook) expiring in 6 days, made by boss;
    # bea opted out of expiry notices
    client = make_client("Acme")
    make_role(make_account(client), "engineer")
    ops = make_team("Ops")
    ops.notification_webhook_url = webhook
    ops.save()
    long_ago = timezone.now() - timedelta(days=30)
    add_member(ops, people["eli"], at=long_ago)
    add_member(ops, people["bea"], at=long_ago)
    NotificationOptOut.objects.create(person=people["bea"], event="grant.expiring")
    grant = make_grant(by=people["boss"], team=ops, client=client, tiers=("engineer",), at=long_ago)
    grant.expires_at = timezone.now() + timedelta(days=6)
    grant.save()

    # when the sweep runs now, again an hour later, then on the last day, twice
    with django_capture_on_commit_callbacks(execute=True):
        notices_sweep()
        notices_sweep(now=timezone.now() + timedelta(hours=1))
        notices_sweep(now=timezone.now() + timedelta(days=5, hours=1))
        notices_sweep(now=timezone.now() + timedelta(days=5, hours=2))

    # then the week's notice and the last day's went once each to eli and boss, and to the webhook
    assert sent_to("Access ends in a week") == ["boss@example.com", "eli@example.com"]
    assert sent_to("Access ends tomorrow") == ["boss@example.com", "eli@example.com"]
    assert [m["title"][:16] for m in WebhookStub.received] == ["Access ends in a", "Access ends tomo"]
    assert all(f"Grant #{grant.pk} to team Ops" in m["text"] for m in WebhookStub.received)


def test_a_failed_onboarding_step_is_told_to_the_managers_once(
    people: dict[str, Any], django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an account whose step is running
    monkeypatch.setattr(onboarding_advance, "_enqueue_advance", lambda *args, **kwargs: None)
    account = make_account(make_client("Acme"))
    step = OnboardingStep.objects.create(account=account, position=1, kind=OnboardingStep.Kind.PROVISION_ROLES,
                                         status=OnboardingStep.Status.RUNNING, attempts=1)
    error = AwsError("AccessDenied", "not authorized", "Switchyard may not create roles there.", False)

    # when the worker records that it failed
    with django_capture_on_commit_callbacks(execute=True):
        onboarding_advance._record_outcome(step.pk, 1, account.pk, OnboardingStep.Status.RUNNING,
                                            Outcome.failed(error))

    # then each manager got one e-mail naming the step, the plain message and the AWS code
    assert sent_to("Acme / Production") == ["boss@example.com", "rita@example.com"]
    body = mail.outbox[0].body
    assert "Switchyard may not create roles there." in body and "AccessDenied" in body


def test_the_same_main_account_drift_is_told_once(people: dict[str, Any],
                                                  django_capture_on_commit_callbacks: Any) -> None:
    finding = DriftFinding(principal_type="group", principal_name="ops", missing_arns=[],
                           extra_arns=["arn:aws:iam::111111111111:role/x"], missing_members=[], extra_members=[])

    with django_capture_on_commit_callbacks(execute=True):
        main_account_drift_notify(findings=[finding])
        main_account_drift_notify(findings=[finding])

    assert sent_to("Drift in the main account") == ["ada@example.com", "boss@example.com", "rita@example.com"]


def test_a_broken_audit_chain_is_told_to_managers_and_auditors_once(
    people: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    # given someone edited an audit event behind the portal's back
    event = audit_record(action="test.something", details={"x": 1})
    with connection.cursor() as cursor:
        cursor.execute("UPDATE portal_auditevent SET details = %s WHERE id = %s", ['{"x": 2}', event.pk])

    # when the chain is checked twice
    with django_capture_on_commit_callbacks(execute=True):
        audit_chain_check_record()
        audit_chain_check_record()

    # then managers and auditors were told once; engineers not
    assert sent_to("audit log's chain is broken") == ["ada@example.com", "boss@example.com", "rita@example.com"]


def test_choices_on_the_account_page_are_kept_and_audited(people: dict[str, Any], signed_in: Any) -> None:
    browser: HttpClient = signed_in(people["eli"])

    page = browser.get(reverse("notification_preferences"))
    assert page.status_code == 200 and page.content.decode().count('type="checkbox"') == len(notifications.EVENTS)
    browser.post(reverse("notification_preferences"), {"receive": ["review.assigned"]})

    assert notifications.preferences_of(person=people["eli"]) == {
        event: event == "review.assigned" for event in notifications.EVENTS}
    assert AuditEvent.objects.filter(action="notifications.preferences_changed", actor=people["eli"]).exists()


def test_a_failing_mail_server_blocks_nothing_and_is_retried_until_it_gives_up(
    people: dict[str, Any], settings: Any, signed_in: Any, monkeypatch: pytest.MonkeyPatch,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # given the mail server is down
    settings.EMAIL_BACKEND = "tests.portal.test_notifications.FailingMailServer"
    FailingMailServer.calls = 0
    client = make_client("Acme")
    make_role(make_account(client), "engineer")
    make_grant(by=people["boss"], person=people["eli"], client=client, tiers=("engineer",))
    queued: list[int] = []
    monkeypatch.setattr(notice_deliver_task, "delay", lambda pk: queued.append(pk))

    # when a manager opens a review through the page
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_in(people["boss"]).post(reverse("audit:review_new"), {
            "title": "Q4", "scope": "everything", "reviewers": [people["rita"].pk],
            "deadline": (timezone.now() + timedelta(days=7)).strftime("%Y-%m-%dT%H:%M"),
        })

    # then the page answered at once and nothing was sent inside the request; a task was queued
    assert response.status_code == 302
    notice = Notice.objects.get()
    assert queued == [notice.pk] and FailingMailServer.calls == 0

    # when the worker tries: each failure is kept and raised for Celery's backoff retry
    with pytest.raises(notifications.NoticeRetry):
        notifications.notice_deliver(notice_id=notice.pk)
    notice.refresh_from_db()
    assert (notice.state, notice.attempts) == (Notice.State.PENDING, 1)
    assert "mail server" in notice.last_error

    # and the task hands exactly that error to Celery's retry with backoff, until the service gives up
    assert issubclass(notifications.NoticeRetry, notice_deliver_task.autoretry_for)
    assert notice_deliver_task.retry_backoff and notice_deliver_task.max_retries >= notifications.MAX_ATTEMPTS
    for _retry in range(2, notifications.MAX_ATTEMPTS):
        with pytest.raises(notifications.NoticeRetry):
            notifications.notice_deliver(notice_id=notice.pk)
    notifications.notice_deliver(notice_id=notice.pk)  # the last attempt records the failure, raises nothing
    notice.refresh_from_db()
    assert (notice.state, notice.attempts) == (Notice.State.FAILED, notifications.MAX_ATTEMPTS)
    assert FailingMailServer.calls == notifications.MAX_ATTEMPTS

    # and once the server is back, a new notice goes and a given-up one is not resent
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    notifications.notice_deliver(notice_id=notice.pk)
    assert mail.outbox == []


def test_a_sent_notice_is_never_sent_again(people: dict[str, Any], django_capture_on_commit_callbacks: Any) -> None:
    with django_capture_on_commit_callbacks(execute=True):
        [notice] = notifications.notify(event="review.assigned", recipients=[people["rita"]], subject="Hello",
                                        body="A review.", dedupe_key="x:1")
    notifications.notice_deliver(notice_id=notice.pk)
    notice_deliver_task.apply(args=[notice.pk])

    assert len(mail.outbox) == 1


def test_no_notice_carries_a_secret(
    people: dict[str, Any], webhook: str, django_capture_on_commit_callbacks: Any
) -> None:
    # given a world with secrets in it: a fresh temporary password, TOTP secrets, a webhook URL
    person, password = services.person_create(
        created_by=people["boss"], username="newbie", first_name="", last_name="", email="newbie@example.com",
        iam_username="newbie", capabilities=["Engineer"], teams=[])
    secrets = [password, webhook, *(getattr(p, "totp_secret", "") for p in people.values())]
    client = make_client("Acme")
    account = make_account(client)
    make_role(account, "engineer")
    ops = make_team("Ops")
    ops.notification_webhook_url = webhook
    ops.save()
    add_member(ops, people["eli"], at=timezone.now() - timedelta(days=1))
    grant = make_grant(by=people["boss"], team=ops, client=client, tiers=("engineer",))
    grant.expires_at = timezone.now() + timedelta(hours=5)
    grant.save()

    # when every kind of notice is made
    with django_capture_on_commit_callbacks(execute=True):
        access_review_open(opened_by=people["boss"], title="Q4", scope="everything", reviewers=[people["rita"]],
                           deadline=timezone.now() + timedelta(days=1))
        notices_sweep()
        notices_sweep(now=timezone.now() + timedelta(days=2))
        main_account_drift_notify(findings=[DriftFinding(principal_type="user", principal_name="newbie",
                                                         missing_arns=["a"], extra_arns=[], missing_members=[],
                                                         extra_members=[])])

    # then none of the notices, mails or webhook posts contains a secret
    texts = [f"{n.subject}\n{n.body}" for n in Notice.objects.all()]
    texts += [f"{m.subject}\n{m.body}" for m in mail.outbox] + [json.dumps(m) for m in WebhookStub.received]
    assert set(Notice.objects.values_list("event", flat=True)) == {"review.assigned", "review.overdue",
                                                                   "grant.expiring", "drift.finding"}
    assert all(secret and secret not in text for secret in secrets for text in texts)
    # and notify refuses a text that looks like one
    slack_url = "https://hooks.slack.com/services/T000/B000/XXXX"
    for leak in (f"Your password: {password}", "token=syk_abcdefghijklmnopqrstuvwxyz", f"see {slack_url}",
                 "AKIAABCDEFGHIJKLMNOP"):
        with pytest.raises(ValueError, match="secret"):
            notifications.notify(event="review.assigned", recipients=[people["rita"]], subject="x", body=leak,
                                 dedupe_key=f"leak:{leak}")
    assert person.is_active


def test_a_step_waiting_for_the_client_is_told_once_when_it_starts_waiting(
    people: dict[str, Any], django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given an invited account whose access-role step is running for the first time
    monkeypatch.setattr(onboarding_advance, "_enqueue_advance", lambda *args, **kwargs: None)
    account = make_account(make_client("Acme"))
    step = OnboardingStep.objects.create(account=account, position=1, kind=OnboardingStep.Kind.AWAIT_ACCESS_ROLE,
                                         status=OnboardingStep.Status.RUNNING, attempts=1)

    # when it starts waiting, and then waits again on its next run
    with django_capture_on_commit_callbacks(execute=True):
        onboarding_advance._record_outcome(step.pk, 1, account.pk, OnboardingStep.Status.RUNNING,
                                            Outcome.waiting(60, "The client has not deployed the access role yet."))
        OnboardingStep.objects.filter(pk=step.pk).update(status=OnboardingStep.Status.RUNNING, attempts=2)
        onboarding_advance._record_outcome(step.pk, 2, account.pk, OnboardingStep.Status.WAITING,
                                            Outcome.waiting(60, "Still not there."))

    # then the managers were told once that it waits for the client
    assert sent_to("waits for the client") == ["boss@example.com", "rita@example.com"]
    assert "has not deployed the access role" in mail.outbox[0].body


def test_a_new_role_drift_finding_is_told_once_to_managers_and_auditors(
    people: dict[str, Any], django_capture_on_commit_callbacks: Any
) -> None:
    account = make_account(make_client("Acme"))
    role = make_role(account, "engineer")
    check = DriftCheck.objects.create(checked_at=timezone.now())
    finding = RoleDriftFinding.objects.create(
        check_run=check, kind=RoleDriftFinding.Kind.DIFFERENT, account=account, account_role=role,
        role_path=role.role_path, role_name=role.role_name, role_arn=role.arn,
        differences=["The trust policy differs."], first_seen_at=timezone.now())

    with django_capture_on_commit_callbacks(execute=True):
        drift_role_finding_notify(finding=finding)
        drift_role_finding_notify(finding=finding)  # the next check finds it again

    assert sent_to("Drift in Acme / Production") == ["ada@example.com", "boss@example.com", "rita@example.com"]
    assert "The trust policy differs." in mail.outbox[0].body


def test_a_notice_that_would_leak_is_dropped_without_breaking_the_workflow(
    people: dict[str, Any], django_capture_on_commit_callbacks: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    # given AWS's message for a failed step happens to look like a secret
    monkeypatch.setattr(onboarding_advance, "_enqueue_advance", lambda *args, **kwargs: None)
    account = make_account(make_client("Acme"))
    step = OnboardingStep.objects.create(account=account, position=1, kind=OnboardingStep.Kind.PROVISION_ROLES,
                                         status=OnboardingStep.Status.RUNNING, attempts=1)
    error = AwsError("InvalidClientTokenId", "x", "The key AKIAABCDEFGHIJKLMNOP is not valid.", False)

    # when the step's failure is recorded
    with django_capture_on_commit_callbacks(execute=True):
        onboarding_advance._record_outcome(step.pk, 1, account.pk, OnboardingStep.Status.RUNNING,
                                            Outcome.failed(error))

    # then the failure is recorded as always, and no notice carries the key
    step.refresh_from_db()
    assert step.status == OnboardingStep.Status.FAILED
    assert not Notice.objects.exists() and mail.outbox == []
