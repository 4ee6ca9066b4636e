"""Leavers and movers: what ends when a person leaves, what a change of teams gains and loses.

A leaver (:func:`person_leave`) runs, in one transaction, the steps in :func:`leaver_steps` (each
says beforehand what it will remove, and afterwards what it removed), deactivates the person and
writes ONE audit event ``person.left`` listing everything removed. After commit a Celery task
(:func:`leaver_aws_cleanup`) takes the person's IAM user out of Switchyard's groups, policies and
tags in the main account, reads IAM back and records the result on the :class:`Departure`; the
beat schedule re-drives it until AWS says it is clean (or a failure no retry can fix).

Seams for other parts of Switchyard (connect them at merge):

* :func:`leaver_step_register` adds a step (e.g. "revoke the person's API tokens"): a
  :class:`LeaverStep` whose ``preview(person)`` and ``run(person=..., left_by=..., reason=...,
  request=...)`` return lines in the users' words.
* :func:`leaver_outside_reach_register` adds a reader of what AWS would still let the person's IAM
  user do outside Switchyard (the effective-access analysis), shown on the confirmation page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import Q, QuerySet
from django.http import HttpRequest
from django.utils import timezone

from portal import aws
from portal.audit import audit_record
from portal.aws import ClientFactory
from portal.duties import may_hold_links
from portal.models import User
from portal.services import user_end_other_sessions
from switchroles import services
from switchroles.access_selectors import latest_access_check, open_access_findings
from switchroles.enforcement import EnforcementBusy, enforcement_lock, user_policy_prefix
from switchroles.models import AccessFinding, AccountRole, Departure, Grant, Team
from switchroles.selectors import grants_in_force, links_for_person, memberships_in_force

logger = logging.getLogger(__name__)

MAX_AWS_ATTEMPTS = 8
# --- the steps --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LeaverStep:
    """One thing that ends when a person leaves. ``preview`` lists what will go (before
    confirming); ``run`` removes it inside the leaver's transaction and lists what went."""

    key: str
    label: str
    preview: Callable[[User], list[str]]
    run: Callable[..., list[str]]


def _preview_sessions(person: User) -> list[str]:
    return ["Every portal session of theirs (signed out at their next request; sign-in refused from now on)"]


def _end_sessions(*, person: User, left_by: User, reason: str, request: HttpRequest | None) -> list[str]:
    user_end_other_sessions(user=person)
    return ["all portal sessions"]


def _open_memberships(person: User) -> Any:
    return memberships_in_force().filter(person=person).select_related("team").order_by("team__name")


def _preview_memberships(person: User) -> list[str]:
    return [f"team {m.team.name} (IAM group {m.team.iam_group_name})" for m in _open_memberships(person)]


def _close_memberships(*, person: User, left_by: User, reason: str, request: HttpRequest | None) -> list[str]:
    closed = []
    for membership in _open_memberships(person):
        services.team_member_remove(team=membership.team, person=person, removed_by=left_by, request=request)
        closed.append(f"team {membership.team.name} (IAM group {membership.team.iam_group_name})")
    return closed


def _personal_grants(person: User) -> QuerySet[Grant]:
    return grants_in_force().filter(person=person).select_related("client", "account").prefetch_related(
        "templates").order_by("pk")


def _grant_line(grant: Grant) -> str:
    tiers = ", ".join(sorted(t.name for t in grant.templates.all()))
    on = f"account {grant.account}" if grant.account else f"client {grant.client}"
    return f"grant #{grant.pk}: {tiers} on {on}"


def _preview_grants(person: User) -> list[str]:
    return [_grant_line(grant) for grant in _personal_grants(person)]


def _revoke_grants(*, person: User, left_by: User, reason: str, request: HttpRequest | None) -> list[str]:
    revoked = []
    for grant in _personal_grants(person):
        services.grant_revoke(grant=grant, revoked_by=left_by, reason=f"Left Switchyard: {reason}"[:1000],
                              request=request)
        revoked.append(_grant_line(grant))
    return revoked


_BUILTIN_STEPS = (
    LeaverStep("sessions", "Portal sessions", _preview_sessions, _end_sessions),
    LeaverStep("teams", "Team memberships", _preview_memberships, _close_memberships),
    LeaverStep("grants", "Personal grants", _preview_grants, _revoke_grants),
)
_registered_steps: dict[str, LeaverStep] = {}


def _reach_without_grant(person: User) -> list[str]:
    """What the last effective-access check found the person's IAM user may assume with no grant
    (their own policies or groups outside Switchyard): the leaver removes none of it."""
    if latest_access_check() is None:
        return ["Effective access has not been checked yet, so Switchyard cannot say: run a check on the "
                "drift page first."]
    return [
        f"{finding.role_arn}: {finding.detail or 'reachable without a grant'}"
        + (f" (allowed by {finding.policy}{' ' + finding.statement if finding.statement else ''})"
           if finding.policy else "")
        for finding in open_access_findings(kind=AccessFinding.Kind.UNGRANTED, person_id=person.pk)
    ]


_outside_reach_readers: list[Callable[[User], list[str]]] = [_reach_without_grant]


def leaver_step_register(step: LeaverStep) -> None:
    """Add a step every leaver runs after the built-in ones (once per key; registering the same
    key again replaces it). Call it from an AppConfig.ready()."""
    _registered_steps[step.key] = step


def leaver_outside_reach_register(reader: Callable[[User], list[str]]) -> None:
    """Add a reader of what AWS would still let the person's IAM user do outside Switchyard."""
    if reader not in _outside_reach_readers:
        _outside_reach_readers.append(reader)


def leaver_steps() -> list[LeaverStep]:
    return [*_BUILTIN_STEPS, *_registered_steps.values()]


# --- what goes (before confirming) --------------------------------------------------------------


@dataclass(frozen=True)
class LeaverPreview:
    person: User
    steps: list[tuple[LeaverStep, list[str]]]
    links: list[AccountRole]
    aws_groups: list[str]
    outside_reach: list[str] | None  # None: no effective-access analysis is connected

    @property
    def aws_lines(self) -> list[str]:
        if not self.person.iam_username:
            return []
        name = self.person.iam_username
        return [*(f"IAM user {name} out of group {group}" for group in self.aws_groups),
                f"IAM user {name}: Switchyard's policies ({user_policy_prefix(self.person.pk)}-*) detached and deleted",
                f"IAM user {name}: Switchyard's tags ({aws.PERSON_TAG_KEY}) removed"]


def leaver_preview(*, person: User) -> LeaverPreview:
    """Everything :func:`person_leave` would remove, read now."""
    outside: list[str] | None = None
    if _outside_reach_readers:
        outside = [line for reader in _outside_reach_readers for line in reader(person)]
    groups = sorted({m.team.iam_group_name for m in _open_memberships(person)})
    return LeaverPreview(
        person=person,
        steps=[(step, step.preview(person)) for step in leaver_steps()],
        links=list(links_for_person(person=person)),
        aws_groups=groups,
        outside_reach=outside,
    )


# --- the leaver ---------------------------------------------------------------------------------


def person_leave(*, person: User, left_by: User, reason: str, request: HttpRequest | None = None) -> Departure:
    """``person`` leaves now: every step of :func:`leaver_steps` runs, they are deactivated
    (``is_active`` False: sign-in refused, their sessions answer as signed out), and one audit
    event ``person.left`` lists what was removed. AWS follows after commit
    (:func:`leaver_aws_cleanup`). Raises ``ValidationError`` (nothing changed) for a blank reason,
    a person who already left, or a manager removing themself."""
    errors: dict[str, str] = {}
    if not (reason or "").strip():
        errors["reason"] = "Say why they leave (recorded in the audit log)."
    if person.pk == left_by.pk:
        errors["reason"] = "You cannot make yourself leave: ask another manager."
    if errors:
        raise ValidationError(errors)
    with transaction.atomic(durable=True):
        locked = User.objects.select_for_update().get(pk=person.pk)
        if not locked.is_active:
            raise ValidationError({"reason": f"{locked.username} has already left."})
        links = [role.arn for role in links_for_person(person=locked)]
        removed = {step.key: step.run(person=locked, left_by=left_by, reason=reason.strip(), request=request)
                   for step in leaver_steps()}
        locked.is_active = False
        locked.save(update_fields=["is_active"])
        now = timezone.now()
        departure = Departure(person=locked, left_by=left_by, left_at=now, reason=reason.strip()[:1000],
                              iam_username=locked.iam_username, removed=removed)
        departure.full_clean()
        departure.save()
        audit_record(
            action="person.left", actor=left_by, target=locked, request=request,
            details={"reason": departure.reason, "departure_id": departure.pk, "removed": removed,
                     "links_lost": links[:50], "links_lost_count": len(links), "deactivated": True,
                     "iam_username": locked.iam_username,
                     "aws_to_remove": {"groups": "every Switchyard group", "policies": user_policy_prefix(locked.pk),
                                       "tags": aws.PERSON_TAG_KEY} if locked.iam_username else {}},
        )
        services.enforcement_sync_schedule(reason=f"{locked.username} left")
        departure_pk = departure.pk
        transaction.on_commit(lambda: _enqueue_aws_cleanup(departure_pk), robust=True)
    return departure


def _enqueue_aws_cleanup(departure_pk: int) -> None:
    from switchroles.tasks import leaver_aws_cleanup_task

    leaver_aws_cleanup_task.delay(departure_pk)


class LeaverAwsRetry(RuntimeError):
    """AWS could not be reached or was busy; the task retries with backoff."""


def leaver_aws_cleanup(*, departure_id: int, clients: ClientFactory) -> Departure | None:
    """Take the leaver's IAM user out of every Switchyard group, detach (and delete their own)
    ``/switchyard/`` policies, remove Switchyard's tags, then read IAM back and record on the
    departure what was removed and what AWS says now (``VERIFIED`` when it carries nothing of
    Switchyard). Idempotent. Raises :class:`LeaverAwsRetry` for what a retry can fix
    (throttling, no connection, the enforcement lock busy); anything else is recorded as
    ``FAILED`` with the error, and so is a retryable error after ``MAX_AWS_ATTEMPTS``."""
    departure = Departure.objects.select_related("person").filter(pk=departure_id).first()
    if departure is None or departure.aws_state == Departure.AwsState.VERIFIED:
        return departure
    if not departure.iam_username:
        return _record_aws(departure, state=Departure.AwsState.VERIFIED, removed={}, read_back={
            "note": "They had no IAM user name: nothing to remove in AWS."})
    groups = list(Team.objects.values_list("iam_group_name", flat=True))
    departure.aws_attempts += 1
    departure.save(update_fields=["aws_attempts"])
    try:
        # Under the enforcement lock, so a sync that read the grants before the leaver cannot put
        # the user back into a group after we took them out.
        with enforcement_lock():
            removed = aws.remove_user_from_switchyard(
                clients=clients, user_name=departure.iam_username, group_names=groups,
                policy_name_prefix=user_policy_prefix(departure.person_id),
            )
            state = aws.read_user_switchyard_state(clients=clients, user_name=departure.iam_username,
                                                   group_names=groups)
    except (aws.AwsError, EnforcementBusy) as exc:
        retryable = _is_retryable(exc)
        message = _plain_error(exc)
        if retryable and departure.aws_attempts < MAX_AWS_ATTEMPTS:
            Departure.objects.filter(pk=departure.pk).update(aws_error=message)
            raise LeaverAwsRetry(message) from exc
        return _record_aws(departure, state=Departure.AwsState.FAILED, removed={}, read_back={}, error=message)
    return _record_aws(
        departure, state=Departure.AwsState.VERIFIED if state.is_clean else Departure.AwsState.FAILED,
        removed={"groups": list(removed.groups), "policies": list(removed.policies), "tags": list(removed.tags)},
        read_back=state.as_dict(),
        error="" if state.is_clean else "IAM still shows Switchyard's access on the user after removal; "
                                        "check the user in the IAM console and retry.",
    )


def _is_retryable(exc: Exception) -> bool:
    return isinstance(exc, EnforcementBusy) or (isinstance(exc, aws.AwsError) and exc.retryable)


def _plain_error(exc: aws.AwsError | EnforcementBusy) -> str:
    if isinstance(exc, EnforcementBusy):
        return "Another enforcement run was in progress; trying again shortly."
    if aws.is_access_denied(exc):
        return (f"AWS refused ({exc.code}): Switchyard's role in the main account may not change this IAM user. "
                "Remove the user from Switchyard's groups by hand, or widen Switchyard's IAM permissions.")
    if exc.code in aws.NETWORK_ERROR_CODES or aws.is_unreachable(exc):
        return f"AWS could not be reached ({exc.code}); trying again shortly."
    return f"AWS refused ({exc.code}): {exc.raw_message}".strip()


def _record_aws(departure: Departure, *, state: str, removed: dict[str, Any], read_back: dict[str, Any],
                error: str = "") -> Departure:
    with transaction.atomic():
        departure.aws_state = state
        departure.aws_removed = removed
        departure.aws_read_back = read_back
        departure.aws_error = error[:2000]
        departure.aws_verified_at = timezone.now() if state == Departure.AwsState.VERIFIED else None
        departure.save(update_fields=["aws_state", "aws_removed", "aws_read_back", "aws_error", "aws_verified_at"])
        audit_record(
            action="person.left_aws_verified" if state == Departure.AwsState.VERIFIED else "person.left_aws_failed",
            target=departure.person,
            details={"departure_id": departure.pk, "iam_username": departure.iam_username, "removed": removed,
                     "read_back": read_back, "error": error[:500]},
        )
    return departure


@transaction.atomic
def departure_aws_retry(*, departure: Departure, requested_by: User, request: HttpRequest | None = None) -> Departure:
    """A manager asks again for a FAILED AWS removal (after fixing what the error said): back to
    PENDING with fresh attempts, audited, sent to a worker after commit. Anything else: unchanged."""
    locked = Departure.objects.select_for_update().get(pk=departure.pk)
    if locked.aws_state != Departure.AwsState.FAILED:
        return locked
    locked.aws_state, locked.aws_attempts = Departure.AwsState.PENDING, 0
    locked.save(update_fields=["aws_state", "aws_attempts"])
    audit_record(action="person.left_aws_retry_requested", actor=requested_by, target=locked.person, request=request,
                 details={"departure_id": locked.pk, "previous_error": locked.aws_error[:500]})
    departure_pk = locked.pk
    transaction.on_commit(lambda: _enqueue_aws_cleanup(departure_pk), robust=True)
    return locked


def departures_to_redrive(*, now: Any = None) -> list[int]:
    """Departures whose AWS removal is still pending a while after the leaver (a lost message,
    a killed worker): the beat schedule sends them again."""
    moment = now or timezone.now()
    return list(Departure.objects.filter(aws_state=Departure.AwsState.PENDING,
                                         left_at__lte=moment - timedelta(seconds=30))
                .values_list("pk", flat=True)[:100])


# --- the mover ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class MoverPreview:
    teams_joined: list[Team]
    teams_left: list[Team]
    links_gained: list[AccountRole] = field(default_factory=list)
    links_lost: list[AccountRole] = field(default_factory=list)

    @property
    def changes_teams(self) -> bool:
        return bool(self.teams_joined or self.teams_left)


def _roles_reached(grants: QuerySet[Grant]) -> QuerySet[AccountRole]:
    reached = Q(pk__in=[])
    for account_id, client_id, template_id in grants.order_by().values_list("account_id", "client_id", "templates"):
        if template_id is None:
            continue
        scope = Q(account_id=account_id) if account_id is not None else Q(account__client_id=client_id)
        reached |= Q(template_id=template_id) & scope
    return (AccountRole.objects.filter(state=AccountRole.State.ACTIVE, account__account_id__isnull=False)
            .filter(reached).select_related("account", "account__client", "template"))


def mover_preview(*, person: User, teams: Iterable[Team]) -> MoverPreview:
    """What changing ``person``'s teams to ``teams`` would gain and lose, in links they could use."""
    wanted = {team.pk: team for team in teams}
    current = {m.team_id: m.team for m in _open_memberships(person)}
    now_links = {role.pk: role for role in links_for_person(person=person)}
    future_grants = grants_in_force().filter(Q(person=person) | Q(team_id__in=list(wanted)))
    future = {role.pk: role for role in _roles_reached(future_grants)} if may_hold_links(person) else {}
    return MoverPreview(
        teams_joined=[wanted[pk] for pk in sorted(set(wanted) - set(current))],
        teams_left=[current[pk] for pk in sorted(set(current) - set(wanted))],
        links_gained=sorted((future[pk] for pk in set(future) - set(now_links)), key=_role_order),
        links_lost=sorted((now_links[pk] for pk in set(now_links) - set(future)), key=_role_order),
    )


def _role_order(role: AccountRole) -> tuple[str, str, int]:
    return (role.account.client.name, role.account.name, role.template_id)


def person_move_record(*, person: User, moved_by: User, preview: MoverPreview,
                       request: HttpRequest | None = None) -> None:
    """Audit a confirmed change of teams with the access it gained and lost (``person.moved``)."""
    audit_record(
        action="person.moved", actor=moved_by, target=person, request=request,
        details={"teams_joined": [t.name for t in preview.teams_joined],
                 "teams_left": [t.name for t in preview.teams_left],
                 "links_gained": [r.arn for r in preview.links_gained][:50],
                 "links_lost": [r.arn for r in preview.links_lost][:50],
                 "links_gained_count": len(preview.links_gained), "links_lost_count": len(preview.links_lost)},
    )


def departures_listed() -> QuerySet[Departure]:
    return Departure.objects.select_related("person", "left_by").order_by("-left_at", "-pk")
