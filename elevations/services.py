"""Writes of client contacts and elevations.

Every function is keyword-only, runs in one transaction and writes an audit event for each
change of state. Approval makes a time-bound personal grant through
``switchroles.services.grant_create`` (so the directory, the IAM enforcement and the audit log
follow) and the grant ends by itself at expiry (``switchroles.tasks.record_grant_expiries``).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import Group
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import ValidationError
from django.core.mail import send_mail
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.urls import reverse
from django.utils import timezone
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode

from elevations.models import CLIENT_CONTACT, ApprovalPolicy, ClientContact, ElevationDecision, ElevationRequest
from elevations.selectors import decider_role, elevation_possible_deciders
from onboarding.models import AwsAccount, Client
from portal.audit import audit_record
from portal.notifications import notify
from portal.people.models import User
from portal.people.permissions import ENGINEER, MANAGER, user_has_capability
from switchroles.models import AccountRole, RoleTemplate
from switchroles.selectors import links_for_person
from switchroles.services import grant_create, grant_revoke

logger = logging.getLogger(__name__)

Approvers = ApprovalPolicy.Approvers


def elevation_max_minutes() -> int:
    return int(getattr(settings, "SWITCHYARD_ELEVATION_MAX_MINUTES", 240))


def elevation_answer_minutes() -> int:
    """How long a request waits for its approvers before it is unanswered."""
    return int(getattr(settings, "SWITCHYARD_ELEVATION_ANSWER_MINUTES", 60))


# --- the one place approvers are told ---------------------------------------------------------------


def elevation_approvers_notify(*, request: ElevationRequest, event: str) -> None:
    """Tell the people who may decide ``request`` ("requested"), or the client's contacts at once
    ("emergency": a manager approved their own), by the notifications framework (e-mail after
    commit, once per request and event; each person may opt out). Also audited, naming them."""
    if event == "emergency":
        people = [contact.user for contact in ClientContact.objects.filter(
            client_id=request.account.client_id).select_related("user")]
    else:
        people = list(elevation_possible_deciders(request=request))
    account = request.account
    what = f"{request.template.name} on {account.client.name} / {account.name} for {request.duration_minutes} minutes"
    link = f"{settings.SWITCHYARD_PORTAL_URL}{reverse('elevations:detail', args=[request.pk])}"
    if event == "emergency":
        subject = f"Emergency access to {account.client.name}: {request.requester.get_username()} approved it"
        body = (f"A manager approved their own break-glass access without waiting: {what}. "
                f"Reason: {request.emergency_reason or request.reason}. Details and its log: {link}")
    else:
        subject = f"{request.requester.get_username()} asks for {request.template.name} on {account.client.name}"
        body = f"{request.requester.get_username()} asks for {what}. Reason: {request.reason}. Decide here: {link}"
    try:
        notify(event=f"elevation.{event}", recipients=people, subject=subject, body=body,
               dedupe_key=f"elevation:{request.pk}:{event}")
    except ValueError:
        # The reason looks like it holds a secret: the notice is dropped (never sent), the request stands.
        logger.warning("elevations.notice_refused", extra={"request": request.pk, "event": event})
    audit_record(action="elevation.approvers_notified", target=request,
                 details={"event": event, "recipients": sorted(person.get_username() for person in people)})


# --- client contacts --------------------------------------------------------------------------------


def _contact_group() -> Group:
    group, _ = Group.objects.get_or_create(name=CLIENT_CONTACT)
    return group


def contact_invitation_path(*, user: User) -> str:
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    token = default_token_generator.make_token(user)
    return reverse("elevations:contact_accept", kwargs={"uidb64": uid, "token": token})


@transaction.atomic(durable=True)
def contact_invite(
    *, invited_by: User, client: Client, email: str, first_name: str, last_name: str,
    request: HttpRequest | None = None,
) -> ClientContact:
    """Make a person with no usable password who sees only ``client``, and e-mail them a
    one-time link to set their password (then the portal makes them enrol TOTP).
    Raises ``ValidationError`` (nothing saved, nothing sent) for a blank or taken e-mail."""
    email = (email or "").strip().lower()
    if not email:
        raise ValidationError({"email": "Give the contact's e-mail address."})
    if User.objects.filter(email__iexact=email).exists() or User.objects.filter(username__iexact=email).exists():
        raise ValidationError({"email": "Someone already has this e-mail address."})
    user = User(username=email[:150], email=email, first_name=first_name.strip()[:150],
                last_name=last_name.strip()[:150])
    user.set_unusable_password()
    user.full_clean()
    user.save()
    user.groups.add(_contact_group())
    contact = ClientContact(user=user, client=client, invited_by=invited_by, invited_at=timezone.now())
    contact.full_clean()
    contact.save()
    audit_record(action="client_contact.invited", actor=invited_by, target=contact, request=request,
                 details={"client_id": client.pk, "client": client.name, "email": email})
    link = contact_invitation_path(user=user)
    base = request.build_absolute_uri("/")[:-1] if request is not None else ""

    def send() -> None:
        send_mail(
            subject=f"Your access to {client.name}'s page at Switchyard",
            message=(f"{invited_by} invited you to see who at our company can reach {client.name}'s AWS "
                     f"accounts, and to approve elevated access.\n\nSet your password (the link works once):\n"
                     f"{base}{link}\n\nYou will then set up an authenticator app."),
            from_email=None, recipient_list=[email],
        )

    transaction.on_commit(send)
    return contact


@transaction.atomic
def contact_accept(*, user: User, password: str, request: HttpRequest | None = None) -> ClientContact:
    """The invited person sets their password (the caller has checked the token and validated
    the password); the invitation link stops working (the token covers the password hash)."""
    contact = ClientContact.objects.select_for_update().get(user=user)
    user.set_password(password)
    user.save(update_fields=["password"])
    contact.accepted_at = timezone.now()
    contact.save(update_fields=["accepted_at"])
    audit_record(action="client_contact.accepted", actor=user, target=contact, request=request,
                 details={"client_id": contact.client_id})
    return contact


@transaction.atomic
def approval_policy_set(
    *, client: Client, approvers: str, updated_by: User, request: HttpRequest | None = None
) -> ApprovalPolicy:
    """Set who approves elevations on ``client``'s accounts (requests already asked keep theirs)."""
    if approvers not in Approvers.values:
        raise ValidationError({"approvers": "Choose who approves."})
    needs_contact = approvers in (Approvers.CONTACT, Approvers.BOTH_ALL)
    if needs_contact and not ClientContact.objects.filter(client=client, user__is_active=True).exists():
        raise ValidationError({"approvers": "Invite a client contact first: nobody could approve."})
    policy = ApprovalPolicy.objects.select_for_update().filter(client=client).first()
    before = policy.approvers if policy else Approvers.MANAGER
    if policy is None:
        policy = ApprovalPolicy(client=client)
    policy.approvers, policy.updated_by, policy.updated_at = approvers, updated_by, timezone.now()
    policy.full_clean()
    policy.save()
    audit_record(action="elevation.policy_set", actor=updated_by, target=client, request=request,
                 details={"from": before, "to": approvers})
    return policy


# --- elevations -------------------------------------------------------------------------------------


def _locked(request: ElevationRequest) -> ElevationRequest:
    # The request row is the lock every decision takes: two approvals racing serialise here.
    return (ElevationRequest.objects.select_for_update().select_related("account__client", "template", "requester")
            .get(pk=request.pk))


def _summary(request: ElevationRequest) -> dict[str, object]:
    return {
        "requester": request.requester.get_username(), "client_id": request.account.client_id,
        "account": str(request.account), "aws_account_id": request.account.account_id,
        "tier": request.template.name, "duration_minutes": request.duration_minutes, "reason": request.reason,
        "state": request.state,
    }


@transaction.atomic(durable=True)
def elevation_request(
    *, requester: User, account: AwsAccount, template: RoleTemplate, duration: int, reason: str,
    request: HttpRequest | None = None,
) -> ElevationRequest:
    """Ask for ``template`` on ``account`` for ``duration`` minutes (1 to the configured maximum).

    Raises ``ValidationError`` (nothing saved) when the account has no active role of that tier,
    the requester already holds it, already has a pending or active request for it, the duration
    is out of range or the reason is blank. The approvers are notified."""
    if not user_has_capability(requester, ENGINEER, MANAGER) or hasattr(requester, "client_contact"):
        raise ValidationError("Only engineers and managers ask for elevations.")
    errors: dict[str, str] = {}
    maximum = elevation_max_minutes()
    if not isinstance(duration, int) or not 1 <= duration <= maximum:
        errors["duration"] = f"Ask for 1 to {maximum} minutes."
    if not (reason or "").strip():
        errors["reason"] = "Say why (a ticket reference will do)."
    if not AccountRole.objects.filter(account=account, template=template, state=AccountRole.State.ACTIVE).exists():
        errors["template"] = "This account has no such role to elevate to."
    elif links_for_person(person=requester).filter(account=account, template=template).exists():
        errors["template"] = "You already hold this tier on this account."
    elif ElevationRequest.objects.filter(requester=requester, account=account, template=template,
                                         state__in=[ElevationRequest.State.PENDING,
                                                    ElevationRequest.State.ACTIVE]).exists():
        errors["template"] = "You already have a request for this tier on this account."
    if errors:
        raise ValidationError(errors)
    policy = ApprovalPolicy.objects.filter(client_id=account.client_id).first()
    now = timezone.now()
    elevation = ElevationRequest(
        requester=requester, account=account, template=template, duration_minutes=duration,
        reason=reason.strip()[:1000], approvers=policy.approvers if policy else Approvers.MANAGER,
        requested_at=now, answer_by=now + timedelta(minutes=elevation_answer_minutes()),
    )
    elevation.full_clean()
    elevation.save()
    audit_record(action="elevation.requested", actor=requester, target=elevation, request=request,
                 details=_summary(elevation))
    elevation_approvers_notify(request=elevation, event="requested")
    return elevation


def _approve(*, locked: ElevationRequest, approver: User, now: datetime, request: HttpRequest | None) -> None:
    grant = grant_create(
        granted_by=approver, person=locked.requester, account=locked.account, templates=[locked.template],
        reason=f"Elevation #{locked.pk}: {locked.reason}"[:1000],
        expires_at=timezone.now() + timedelta(minutes=locked.duration_minutes), request=request,
    )
    locked.grant, locked.state, locked.approved_at = grant, ElevationRequest.State.ACTIVE, grant.granted_at
    locked.save(update_fields=["grant", "state", "approved_at"])
    audit_record(action="elevation.approved", actor=approver, target=locked, request=request,
                 details={**_summary(locked), "grant_id": grant.pk,
                          "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
                          "emergency": locked.emergency})


@transaction.atomic(durable=True)
def elevation_decide(
    *, request: ElevationRequest, decider: User, approve: bool, reason: str, http_request: HttpRequest | None = None,
) -> ElevationRequest:
    """Record ``decider``'s answer. A decline declines the request; an approval activates it
    when the policy is met (one approver, or a manager and a contact for "both"), making the grant.

    Raises ``ValidationError`` (nothing changed) when the decider may not decide it (their own
    request, not an approver of it), already answered, the request is no longer pending, or its
    time to be answered ran out. Two approvals racing make one grant (the row is locked)."""
    locked = _locked(request)
    role = decider_role(request=locked, decider=decider)
    if role is None:
        raise ValidationError("You cannot decide this request.")
    now = timezone.now()
    if locked.state != ElevationRequest.State.PENDING:
        raise ValidationError(f"This request is already {locked.get_state_display().lower()}.")
    if locked.answer_by <= now:
        raise ValidationError("This request expired before it was answered; ask again.")
    if locked.decisions.filter(decider=decider).exists():
        raise ValidationError("You already answered this request.")
    if not approve and not (reason or "").strip():
        raise ValidationError({"reason": "Say why you decline."})
    ElevationDecision.objects.create(request=locked, decider=decider, decided_as=role, approve=approve,
                                     reason=(reason or "").strip()[:1000], decided_at=now)
    audit_record(action="elevation.decided", actor=decider, target=locked, request=http_request,
                 details={**_summary(locked), "approve": approve, "as": role, "reason": (reason or "").strip()})
    if not approve:
        locked.state, locked.finished_at = ElevationRequest.State.DECLINED, now
        locked.save(update_fields=["state", "finished_at"])
        audit_record(action="elevation.declined", actor=decider, target=locked, request=http_request,
                     details=_summary(locked))
        return locked
    if locked.approvers == Approvers.BOTH_ALL:
        approved_as = set(locked.decisions.filter(approve=True).values_list("decided_as", flat=True))
        if approved_as != {ElevationDecision.As.MANAGER, ElevationDecision.As.CONTACT}:
            return locked
    _approve(locked=locked, approver=decider, now=now, request=http_request)
    return locked


@transaction.atomic(durable=True)
def elevation_emergency_approve(
    *, request: ElevationRequest, manager: User, reason: str, http_request: HttpRequest | None = None,
) -> ElevationRequest:
    """Break-glass: a manager approves their own pending request at once, with a mandatory
    reason. Flagged (``emergency``), audited, and the client's contacts are told."""
    locked = _locked(request)
    if locked.requester_id != manager.pk or not manager.is_manager:
        raise ValidationError("Only a manager, for their own request, can use the emergency path.")
    if locked.state != ElevationRequest.State.PENDING:
        raise ValidationError(f"This request is already {locked.get_state_display().lower()}.")
    if not (reason or "").strip():
        raise ValidationError({"reason": "An emergency approval needs a reason."})
    locked.emergency, locked.emergency_reason = True, reason.strip()[:1000]
    locked.save(update_fields=["emergency", "emergency_reason"])
    audit_record(action="elevation.emergency", actor=manager, target=locked, request=http_request,
                 details={**_summary(locked), "emergency_reason": locked.emergency_reason})
    _approve(locked=locked, approver=manager, now=timezone.now(), request=http_request)
    elevation_approvers_notify(request=locked, event="emergency")
    return locked


@transaction.atomic(durable=True)
def elevation_end(
    *, request: ElevationRequest, ended_by: User, reason: str = "", http_request: HttpRequest | None = None,
) -> ElevationRequest:
    """End an active elevation now (the requester, or a manager): its grant is revoked, so it
    leaves the directory at once and AWS within a minute. A pending request is withdrawn
    (recorded as ended). Idempotent on a finished request."""
    locked = _locked(request)
    if ended_by.pk != locked.requester_id and not (ended_by.is_manager and not hasattr(ended_by, "client_contact")):
        raise ValidationError("Only the requester or a manager can end this elevation.")
    if locked.state not in (ElevationRequest.State.PENDING, ElevationRequest.State.ACTIVE):
        return locked
    if locked.grant is not None:
        grant_revoke(grant=locked.grant, revoked_by=ended_by,
                     reason=(reason or "").strip() or f"Elevation #{locked.pk} ended early", request=http_request)
    locked.state, locked.finished_at, locked.ended_by = ElevationRequest.State.ENDED, timezone.now(), ended_by
    locked.save(update_fields=["state", "finished_at", "ended_by"])
    audit_record(action="elevation.ended", actor=ended_by, target=locked, request=http_request,
                 details={**_summary(locked), "reason": (reason or "").strip()})
    return locked


def elevations_expire_due(*, at: datetime | None = None) -> list[int]:
    """Close what time has closed: pending requests past ``answer_by`` become unanswered, active
    ones whose grant expired become expired (the grant itself is ended by the grant-expiry
    schedule). Safe to run any number of times; returns the requests changed by this call."""
    moment = at or timezone.now()
    changed: list[int] = []
    with transaction.atomic(durable=True):
        due = ElevationRequest.objects.select_for_update(of=("self",)).filter(
            Q(state=ElevationRequest.State.PENDING, answer_by__lte=moment)
            | Q(state=ElevationRequest.State.ACTIVE, grant__expires_at__lte=moment)
        )
        for elevation in due.select_related("account", "template", "requester").order_by("pk"):
            was_pending = elevation.state == ElevationRequest.State.PENDING
            elevation.state = ElevationRequest.State.UNANSWERED if was_pending else ElevationRequest.State.EXPIRED
            elevation.finished_at = moment
            elevation.save(update_fields=["state", "finished_at"])
            audit_record(action="elevation.unanswered" if was_pending else "elevation.expired", target=elevation,
                         details=_summary(elevation))
            changed.append(elevation.pk)
    return changed
