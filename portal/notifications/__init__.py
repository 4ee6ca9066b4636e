"""Notifications: one public entry, :func:`notify`, for every part of Switchyard.

``notify`` only writes :class:`~portal.notifications.models.Notice` rows (one per person, one per team webhook)
and, after commit, queues a Celery task per row; nothing is ever sent inside a request. Each row's
``dedupe_key`` is unique, so the same notice is never made twice, however often the caller runs
(a beat sweep every minute, a retried task). People choose what they receive on their account
page (:class:`~portal.notifications.models.NotificationOptOut`); everything is on until they opt out.

Mail goes through Django's mail framework (SMTP settings from the environment in production; in
the sandbox a file-based backend under ``var/outbox/``, and each person's notices are listed on
their notifications page). A team may also have a Slack or Microsoft Teams incoming webhook
(``Team.notification_webhook_url``): its notices are POSTed there as JSON.

Callers pass words, never secrets: :func:`notify` refuses a subject or body that looks like one
(an access key, a private key, a webhook URL, a password or token line).
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import smtplib
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable
from functools import wraps
from typing import TYPE_CHECKING, Any

from django.conf import settings
from django.core.mail import EmailMessage
from django.db import IntegrityError, transaction
from django.db.models import QuerySet
from django.utils import timezone

from portal.audit import audit_record
from portal.notifications.models import Notice, NotificationOptOut
from portal.people.models import User

if TYPE_CHECKING:
    from switchroles.models import Team

logger = logging.getLogger(__name__)

#: Every kind of notice, in the words the account page shows.
EVENTS: dict[str, str] = {
    "review.assigned": "An access review is assigned to me",
    "review.overdue": "An access review I am a reviewer of is overdue",
    "grant.expiring": "A grant I hold or made expires in 7 days, and again in 1 day",
    "onboarding.step": "An onboarding or hand-back step failed or waits for the client",
    "drift.finding": "A drift finding is opened (AWS differs from the portal)",
    "access.finding": "An effective-access finding is opened (AWS allows more than the grants)",
    "audit.chain_broken": "The audit log's chain is broken",
    "cost.anomaly": "A client's cost looks unusual",
    "elevation.requested": "Someone asks for break-glass access that I may approve",
    "elevation.emergency": "A manager self-approved break-glass access on my client's accounts",
}

MAX_ATTEMPTS = 6
WEBHOOK_TIMEOUT_SECONDS = 10
_SECRET_PATTERNS = (
    re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),  # AWS access key ids
    re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----"),
    re.compile(r"https://hooks\.slack\.com/\S+|https://\S*webhook\.office\.com/\S+", re.IGNORECASE),
    re.compile(r"\b(?:password|passwd|secret|token|totp|recovery code)s?\s*[:=]\s*\S+", re.IGNORECASE),
    re.compile(r"\bsy[a-z]*_[A-Za-z0-9_-]{20,}\b"),  # Switchyard API tokens (prefixed)
)


class NoticeRetry(RuntimeError):
    """Sending failed in a way a later try may fix (mail server down, webhook busy)."""


def _refuse_secrets(*texts: str) -> None:
    for text in texts:
        for pattern in _SECRET_PATTERNS:
            if pattern.search(text):
                raise ValueError("A notice must not carry a secret (key, token, password or webhook URL).")


def _key(dedupe_key: str, suffix: str) -> str:
    key = f"{dedupe_key}:{suffix}"
    if len(key) <= 255:
        return key
    return f"{dedupe_key[:180]}#{hashlib.sha256(dedupe_key.encode()).hexdigest()[:32]}:{suffix}"


def notify(
    *,
    event: str,
    recipients: Iterable[User],
    subject: str,
    body: str,
    dedupe_key: str,
    teams: Iterable[Team] = (),
) -> list[Notice]:
    """Queue ``subject``/``body`` for each active recipient with an e-mail address who has not
    opted out of ``event``, and for each of ``teams`` with a webhook. Returns the notices made by
    this call: none for a recipient (or team) who already had the notice ``dedupe_key``. Sending
    happens after commit in ``portal.notifications.tasks.notice_deliver_task``. Safe inside any transaction; raises
    ``ValueError`` for an unknown event or a text that looks like a secret."""
    if event not in EVENTS:
        raise ValueError(f"Unknown notification event {event!r}.")
    subject, body = subject.strip()[:200], body.strip()[:5000]
    _refuse_secrets(subject, body)
    people = {person.pk: person for person in recipients if person is not None}
    opted_out = set(NotificationOptOut.objects.filter(event=event, person_id__in=list(people))
                    .values_list("person_id", flat=True))
    made: list[Notice] = []
    for pk in sorted(people):
        person = people[pk]
        if not person.is_active or not person.email or pk in opted_out:
            continue
        notice = _create(Notice(dedupe_key=_key(dedupe_key, f"u{pk}"), event=event, channel=Notice.Channel.EMAIL,
                                recipient=person, address=person.email, subject=subject, body=body))
        if notice is not None:
            made.append(notice)
    for team in {team.pk: team for team in teams}.values():
        if not team.notification_webhook_url:
            continue
        notice = _create(Notice(dedupe_key=_key(dedupe_key, f"t{team.pk}"), event=event,
                                channel=Notice.Channel.WEBHOOK, team=team, subject=subject, body=body))
        if notice is not None:
            made.append(notice)
    for notice in made:
        transaction.on_commit(_sender(notice.pk), robust=True)
    if made:
        logger.info("notifications.queued", extra={"event": event, "notices": len(made)})
    return made


def _create(notice: Notice) -> Notice | None:
    if Notice.objects.filter(dedupe_key=notice.dedupe_key).exists():
        return None
    try:
        with transaction.atomic():  # a savepoint: a concurrent twin loses the race, nothing else does
            notice.save()
    except IntegrityError:
        return None
    return notice


def _sender(notice_pk: int) -> Callable[[], None]:
    def send_notice() -> None:
        from portal.notifications.tasks import notice_deliver_task  # the task module imports this one

        notice_deliver_task.delay(notice_pk)

    return send_notice


def notice_deliver(*, notice_id: int) -> Notice | None:
    """Send one notice once. Sent or given-up notices are left alone (so a second run sends
    nothing). A failure a retry may fix (mail server, network, webhook 5xx or 429) raises
    :class:`NoticeRetry` until ``MAX_ATTEMPTS``, then the notice is marked FAILED with the error;
    one no retry can fix (webhook 4xx) is marked FAILED at once."""
    with transaction.atomic(durable=True):
        notice = Notice.objects.select_for_update(of=("self",)).select_related("team").filter(pk=notice_id).first()
        if notice is None or notice.state != Notice.State.PENDING:
            return notice
        notice.attempts += 1
        notice.save(update_fields=["attempts"])
    try:
        if notice.channel == Notice.Channel.EMAIL:
            _send_mail(notice)
        else:
            _post_webhook(notice)
    except NoticeRetry as exc:
        final = notice.attempts >= MAX_ATTEMPTS
        _mark(notice, Notice.State.FAILED if final else Notice.State.PENDING, str(exc))
        logger.warning("notifications.failed", extra={"notice": notice.pk, "attempt": notice.attempts,
                                                      "final": final})
        if final:
            return notice
        raise
    except _Unfixable as exc:
        _mark(notice, Notice.State.FAILED, str(exc))
        return notice
    _mark(notice, Notice.State.SENT, "")
    return notice


class _Unfixable(Exception):
    pass


def _mark(notice: Notice, state: str, error: str) -> None:
    notice.state = state
    notice.last_error = error[:500]
    notice.sent_at = timezone.now() if state == Notice.State.SENT else None
    notice.save(update_fields=["state", "last_error", "sent_at"])


def _send_mail(notice: Notice) -> None:
    message = EmailMessage(subject=f"[Switchyard] {notice.subject}", body=notice.body,
                           from_email=settings.DEFAULT_FROM_EMAIL, to=[notice.address])
    try:
        message.send(fail_silently=False)
    except (smtplib.SMTPException, OSError) as exc:
        raise NoticeRetry(f"The mail server did not take the message ({exc.__class__.__name__}).") from exc


def _post_webhook(notice: Notice) -> None:
    url = notice.team.notification_webhook_url if notice.team else ""
    if not url.startswith(("https://", "http://")):
        raise _Unfixable("The team has no webhook any more.")
    # Slack reads "text"; Teams' incoming webhooks read "text" too (and "title").
    payload = json.dumps({"title": notice.subject, "text": f"*{notice.subject}*\n{notice.body}"}).encode()
    request = urllib.request.Request(url, data=payload, method="POST",  # noqa: S310 - http(s) checked above
                                     headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=WEBHOOK_TIMEOUT_SECONDS) as response:  # noqa: S310
            response.read(1024)
    except urllib.error.HTTPError as exc:
        if exc.code == 429 or exc.code >= 500:
            raise NoticeRetry(f"The webhook answered {exc.code}; trying again later.") from exc
        raise _Unfixable(f"The webhook refused the notice ({exc.code}); check the team's webhook URL.") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise NoticeRetry("The webhook could not be reached; trying again later.") from exc


# --- for the callers: links, recipients, hooks that never break a workflow -----------------------


def never_breaks_the_caller(hook: Callable[..., Any]) -> Callable[..., Any]:
    """A notice that cannot be made (its text looked like a secret) is logged and dropped: the
    workflow that called the hook (an onboarding step, a drift check) goes on."""

    @wraps(hook)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return hook(*args, **kwargs)
        except ValueError:
            logger.exception("notifications.refused", extra={"hook": hook.__name__})
            return None

    return wrapper


def portal_url(path: str) -> str:
    return f"{settings.SWITCHYARD_PORTAL_URL.rstrip('/')}{path}"


def holders_of(*names: str) -> QuerySet[User]:
    return User.objects.filter(is_active=True, groups__name__in=names).distinct().order_by("pk")


# --- preferences ----------------------------------------------------------------------------------


def preferences_of(*, person: User) -> dict[str, bool]:
    """Each event and whether ``person`` receives it."""
    off = set(person.notification_opt_outs.values_list("event", flat=True))
    return {event: event not in off for event in EVENTS}


@transaction.atomic(durable=True)
def preferences_set(*, person: User, receive: Iterable[str], request: Any = None) -> dict[str, bool]:
    """``person`` receives exactly the events in ``receive`` (unknown names are ignored). Audited
    when anything changed."""
    wanted = set(receive) & set(EVENTS)
    before = preferences_of(person=person)
    NotificationOptOut.objects.filter(person=person, event__in=wanted).delete()
    for event in sorted(set(EVENTS) - wanted):
        NotificationOptOut.objects.get_or_create(person=person, event=event)
    after = preferences_of(person=person)
    changes = {event: after[event] for event in EVENTS if before[event] != after[event]}
    if changes:
        audit_record(action="notifications.preferences_changed", actor=person, target=person, request=request,
                     details={"receive": changes})
    return after


def notices_of(*, person: User) -> Any:
    return Notice.objects.filter(recipient=person).order_by("-created_at", "-pk")
