"""Writes of the directory: grants, teams and their members, people, favourites, link uses, and
scheduling enforcement.

Every change that can alter who may assume what (a grant, a revocation, a team member, a
person's IAM user name) calls :func:`enforcement_sync_schedule`, so the main-account IAM policies
follow the portal within seconds, and within a minute at worst through the beat schedule.
Every change writes one audit event in the same transaction.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

from django.contrib.auth.models import Group
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.http import HttpRequest
from django.utils import timezone

from portal.audit import audit_record, client_ip_of
from portal.people import duties
from portal.people.models import User
from portal.people.permissions import AUDITOR, ENGINEER, MANAGER, REVIEWER
from switchroles.accounts import account_model, client_model
from switchroles.models import AccountRole, Favourite, Grant, LinkUse, RoleTemplate, Team, TeamMembership
from switchroles.selectors import grants_in_force

if TYPE_CHECKING:
    from onboarding.models import AwsAccount, Client

logger = logging.getLogger(__name__)

CAPABILITY_NAMES = (MANAGER, ENGINEER, AUDITOR, REVIEWER)
TEMPORARY_PASSWORD_BYTES = 15  # 20 URL-safe characters


def enforcement_sync_schedule(*, reason: str) -> None:
    """Once the current transaction commits, queue the task that recomputes and applies every
    affected main-account IAM policy (``switchroles.tasks.enforcement_sync``).

    Safe to call inside or outside a transaction, and as often as you like: the task recomputes
    everything and writes only what changed. If the broker is unreachable the failure is logged,
    not raised (the change itself is committed), and the every-minute schedule applies it.
    """
    from switchroles.tasks import enforcement_sync

    def send() -> None:
        enforcement_sync.delay(reason=reason[:200])

    transaction.on_commit(send, robust=True)
    logger.info("switchroles.enforcement.scheduled", extra={"reason": reason[:200]})


# --- grants ----------------------------------------------------------------------------------------


def _grant_summary(grant: Grant) -> dict[str, Any]:
    return {
        "to": f"team {grant.team.name}" if grant.team else f"person {grant.person.get_username()}",  # type: ignore[union-attr]
        "team_id": grant.team_id,
        "person_id": grant.person_id,
        "on": f"client {grant.client.name}" if grant.client else f"account {grant.account}",
        "client_id": grant.client_id,
        "account_id": grant.account_id,
        "aws_account_id": grant.account.account_id if grant.account else None,
        "tiers": sorted(t.name for t in grant.templates.all()),
        "reason": grant.reason,
        "expires_at": grant.expires_at.isoformat() if grant.expires_at else None,
    }


@transaction.atomic
def grant_create(
    *,
    granted_by: User,
    team: Team | None = None,
    person: User | None = None,
    client: Client | None = None,
    account: AwsAccount | None = None,
    templates: Iterable[RoleTemplate],
    reason: str,
    expires_at: datetime | None = None,
    request: HttpRequest | None = None,
) -> Grant:
    """Grant a team or a person (exactly one) the given tiers on a client's accounts or on one
    account (exactly one), from now until ``expires_at`` (future, or None for no expiry).

    Raises ``ValidationError`` (nothing saved) when the combination is invalid, no tier is given,
    the reason is blank or the expiry is not in the future. The grant is audited
    (``grant.created``) and the main-account IAM policies are rewritten after commit.
    """
    tiers = list(dict.fromkeys(templates))
    errors: dict[str, str] = {}
    if (team is None) == (person is None):
        errors["team"] = "Grant to a team or to a person (one of them)."
    if (client is None) == (account is None):
        errors["client"] = "Grant on a client (all its accounts) or on one account (one of them)."
    if not tiers:
        errors["templates"] = "Choose at least one tier."
    elif any(not t.is_active for t in tiers):
        errors["templates"] = "A retired tier cannot be granted."
    if not (reason or "").strip():
        errors["reason"] = "Say why this access is needed."
    now = timezone.now()
    if expires_at is not None and expires_at <= now:
        errors["expires_at"] = "The expiry must be in the future."
    if account is not None and not account.account_id:
        errors["account"] = "This account has no AWS account ID yet."
    elif account is not None and account.state != account_model().State.ACTIVE:
        errors["account"] = (f"This account is “{account.get_state_display()}”: grants are only for active "
                             "accounts, since AWS would give nothing.")
    if client is not None and client.state != client_model().State.ACTIVE:
        errors["client"] = f"{client.name} is “{client.get_state_display()}”: grants are only for active clients."
    if person is not None and not duties.may_hold_links(person):
        errors["person"] = duties.AUDITOR_GRANTED
    if not errors:
        duplicate = _grant_already_in_force(team=team, person=person, client=client, account=account,
                                            tiers=tiers, expires_at=expires_at)
        if duplicate is not None:
            until = " with no expiry" if duplicate.expires_at is None else \
                f" until {duplicate.expires_at:%Y-%m-%d %H:%M} UTC"
            errors["templates"] = (f"Grant #{duplicate.pk} already gives exactly this, in force{until}: "
                                   "change or revoke that one instead.")
    if errors:
        raise ValidationError(errors)

    grant = Grant(
        team=team, person=person, client=client, account=account, reason=reason.strip(),
        granted_by=granted_by, granted_at=now, expires_at=expires_at,
    )
    grant.full_clean()
    grant.save()
    grant.templates.set(tiers)
    audit_record(
        action="grant.created", actor=granted_by, target=grant, request=request, details=_grant_summary(grant)
    )
    enforcement_sync_schedule(reason=f"grant {grant.pk} created")
    return grant


def _grant_already_in_force(
    *, team: Team | None, person: User | None, client: Client | None, account: AwsAccount | None,
    tiers: Sequence[RoleTemplate], expires_at: datetime | None,
) -> Grant | None:
    """A grant in force to the same team or person, on the same client or account, with the same
    tiers, that lasts at least as long: a second one would add nothing."""
    wanted = {t.pk for t in tiers}
    candidates = grants_in_force().filter(team=team, person=person, client=client, account=account)
    if expires_at is not None:
        candidates = candidates.filter(Q(expires_at__isnull=True) | Q(expires_at__gte=expires_at))
    else:
        candidates = candidates.filter(expires_at__isnull=True)
    for grant in candidates.prefetch_related("templates").order_by("pk"):
        if {t.pk for t in grant.templates.all()} == wanted:
            return grant
    return None


@transaction.atomic
def grant_revoke(*, grant: Grant, revoked_by: User, reason: str, request: HttpRequest | None = None) -> Grant:
    """Revoke ``grant`` now: it stops counting at once in the portal and within a minute in AWS.

    Idempotent: revoking a revoked grant returns it unchanged and writes no second event.
    Raises ``ValidationError`` (nothing changed) for a blank reason on a grant not yet revoked.
    """
    locked = Grant.objects.select_for_update().get(pk=grant.pk)
    if locked.revoked_at is not None:
        return locked
    if not (reason or "").strip():
        raise ValidationError({"reason": "Say why the access is revoked."})
    locked.revoked_at = timezone.now()
    locked.revoked_by = revoked_by
    locked.revoke_reason = reason.strip()[:1000]
    locked.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
    audit_record(
        action="grant.revoked",
        actor=revoked_by,
        target=locked,
        request=request,
        details={**_grant_summary(locked), "revoke_reason": locked.revoke_reason},
    )
    enforcement_sync_schedule(reason=f"grant {locked.pk} revoked")
    return locked


def grant_expiries_record(*, at: datetime | None = None) -> list[int]:
    """Record, once each, the grants that expired by ``at`` (default: now): ``expiry_recorded_at``
    is set and an audit event ``grant.expired`` written, then the enforcement sync is scheduled so
    AWS follows within a minute. (The directory stopped showing them the moment they expired:
    ``selectors.grants_in_force`` filters on ``expires_at``.) A grant revoked before it expired never
    expired. Safe to run any number of times; returns the grants recorded by this call."""
    moment = at or timezone.now()
    with transaction.atomic(durable=True):
        expired = list(
            Grant.objects.select_for_update(of=("self",))
            .filter(expiry_recorded_at__isnull=True, expires_at__lte=moment)
            .filter(Q(revoked_at__isnull=True) | Q(revoked_at__gt=F("expires_at")))
            .select_related("team", "person", "client", "account")
            .prefetch_related("templates")
            .order_by("expires_at", "pk")
        )
        for grant in expired:
            grant.expiry_recorded_at = moment
            grant.save(update_fields=["expiry_recorded_at"])
            audit_record(
                action="grant.expired", target=grant,
                details={**_grant_summary(grant), "recorded_at": moment.isoformat()},
            )
        if expired:
            enforcement_sync_schedule(reason=f"{len(expired)} grant(s) expired")
    return [grant.pk for grant in expired]


# --- teams -----------------------------------------------------------------------------------------


@transaction.atomic
def team_create(*, name: str, iam_group_name: str, created_by: User, request: HttpRequest | None = None,
                notification_webhook_url: str = "") -> Team:
    """A new team mapped to the IAM group ``iam_group_name`` (created in AWS with its first grant).
    Raises ``ValidationError`` for a taken or invalid name."""
    team = Team(name=name.strip(), iam_group_name=iam_group_name.strip(),
                notification_webhook_url=notification_webhook_url.strip())
    team.full_clean()
    team.save()
    audit_record(
        action="team.created", actor=created_by, target=team, request=request,
        details={"name": team.name, "iam_group_name": team.iam_group_name,
                 "webhook": _webhook_host(team.notification_webhook_url)},
    )
    return team


def _webhook_host(url: str) -> str:
    """What the audit log keeps of a webhook: its host (the URL itself is a secret)."""
    from urllib.parse import urlsplit

    return urlsplit(url).hostname or "" if url else ""


@transaction.atomic(durable=True)
def team_webhook_set(*, team: Team, url: str, changed_by: User, request: HttpRequest | None = None) -> Team:
    """Set (or, with a blank ``url``, clear) the team's Slack/Teams incoming webhook. Raises
    ``ValidationError`` on ``notification_webhook_url`` for a URL that is not https."""
    locked = Team.objects.select_for_update().get(pk=team.pk)
    url = url.strip()
    if url and not url.startswith("https://"):
        raise ValidationError({"notification_webhook_url": "Use the https:// URL Slack or Teams gave you."})
    before = locked.notification_webhook_url
    locked.notification_webhook_url = url
    locked.full_clean()
    locked.save(update_fields=["notification_webhook_url"])
    if before != url:
        audit_record(action="team.webhook_changed", actor=changed_by, target=locked, request=request,
                     details={"from": _webhook_host(before), "to": _webhook_host(url)})
    return locked


@transaction.atomic
def team_member_add(
    *, team: Team, person: User, added_by: User | None, request: HttpRequest | None = None
) -> TeamMembership:
    """Put ``person`` in ``team`` from now on. Idempotent: an open membership is returned as is
    (no second event). The person's IAM user joins the team's IAM group with the next sync.
    Raises ``ValidationError`` on ``person`` for an auditor (separation of duties)."""
    if not duties.may_hold_links(person):
        raise ValidationError({"person": duties.AUDITOR_IN_TEAM})
    Team.objects.select_for_update().get(pk=team.pk)  # serialise changes to this team's members
    current = TeamMembership.objects.filter(team=team, person=person, removed_at__isnull=True).first()
    if current is not None:
        return current
    membership = TeamMembership.objects.create(team=team, person=person, added_at=timezone.now(), added_by=added_by)
    audit_record(
        action="team.member_added", actor=added_by, target=team, request=request,
        details={"person_id": person.pk, "person": person.get_username(), "iam_username": person.iam_username},
    )
    enforcement_sync_schedule(reason=f"{person.get_username()} joined team {team.pk}")
    return membership


@transaction.atomic
def team_member_remove(
    *, team: Team, person: User, removed_by: User | None, request: HttpRequest | None = None
) -> TeamMembership | None:
    """End ``person``'s membership of ``team`` now (the row is kept, with ``removed_at``). Their
    team links vanish at once; AWS follows within a minute. Returns None (and writes nothing)
    when they were not a member."""
    Team.objects.select_for_update().get(pk=team.pk)
    membership = TeamMembership.objects.filter(team=team, person=person, removed_at__isnull=True).first()
    if membership is None:
        return None
    membership.removed_at = timezone.now()
    membership.removed_by = removed_by
    membership.save(update_fields=["removed_at", "removed_by"])
    audit_record(
        action="team.member_removed", actor=removed_by, target=team, request=request,
        details={"person_id": person.pk, "person": person.get_username(), "iam_username": person.iam_username},
    )
    enforcement_sync_schedule(reason=f"{person.get_username()} left team {team.pk}")
    return membership


# --- people ----------------------------------------------------------------------------------------


def temporary_password() -> str:
    return secrets.token_urlsafe(TEMPORARY_PASSWORD_BYTES)


@transaction.atomic
def person_create(
    *,
    created_by: User,
    username: str,
    first_name: str,
    last_name: str,
    email: str,
    iam_username: str,
    capabilities: Sequence[str],
    teams: Iterable[Team],
    request: HttpRequest | None = None,
) -> tuple[User, str]:
    """Add a person with a random temporary password, returned once (never stored in clear or
    logged). They must enrol an authenticator at first sign-in (``RequireMfaMiddleware``).
    Raises ``ValidationError`` (nothing saved) for a taken user name or e-mail, an invalid IAM
    user name or an unknown capability."""
    unknown = set(capabilities) - set(CAPABILITY_NAMES)
    if unknown:
        raise ValidationError({"capabilities": f"Unknown capability: {', '.join(sorted(unknown))}."})
    teams = list(teams)
    if AUDITOR in capabilities and teams and duties.auditors_hold_no_links():
        raise ValidationError({"teams": duties.AUDITOR_IN_TEAM})
    email = email.strip()
    if email and User.objects.filter(email__iexact=email).exists():
        raise ValidationError({"email": "Someone already has this e-mail address."})
    password = temporary_password()
    person = User(
        username=username.strip(), first_name=first_name.strip(), last_name=last_name.strip(), email=email,
        iam_username=iam_username.strip(),
    )
    person.set_password(password)
    person.full_clean()
    person.save()
    person.groups.set(Group.objects.filter(name__in=capabilities))
    audit_record(
        action="person.created", actor=created_by, target=person, request=request,
        details={
            "username": person.username, "email": person.email, "iam_username": person.iam_username,
            "capabilities": sorted(capabilities),
        },
    )
    for team in teams:
        team_member_add(team=team, person=person, added_by=created_by, request=request)
    return person, password


def _duties_check(*, person: User, capabilities: Sequence[str], teams: Sequence[Team]) -> None:
    """Separation of duties on a person's edit: an auditor in no team, and no Auditor capability for
    someone who keeps teams or personal grants. The message goes under the field that changes."""
    if AUDITOR not in capabilities or not duties.auditors_hold_no_links():
        return
    was_auditor = person.groups.filter(name=AUDITOR).exists()
    if teams:
        raise ValidationError({"teams" if was_auditor else "capabilities": duties.AUDITOR_IN_TEAM if was_auditor
                               else duties.AUDITOR_WITH_LINKS})
    if grants_in_force().filter(person=person).exists():
        raise ValidationError({"capabilities": duties.AUDITOR_WITH_LINKS})


@transaction.atomic
def person_update(
    *,
    person: User,
    updated_by: User,
    first_name: str,
    last_name: str,
    email: str,
    iam_username: str,
    capabilities: Sequence[str],
    teams: Iterable[Team],
    request: HttpRequest | None = None,
) -> User:
    """Change a person's names, e-mail, IAM user name, capabilities and teams (joining and
    leaving teams through :func:`team_member_add` / :func:`team_member_remove`). Audited with
    what changed; a changed IAM user name moves their policies and group memberships in AWS."""
    unknown = set(capabilities) - set(CAPABILITY_NAMES)
    if unknown:
        raise ValidationError({"capabilities": f"Unknown capability: {', '.join(sorted(unknown))}."})
    person = User.objects.select_for_update().get(pk=person.pk)
    teams = list(teams)
    _duties_check(person=person, capabilities=capabilities, teams=teams)
    email = email.strip()
    if email and User.objects.filter(email__iexact=email).exclude(pk=person.pk).exists():
        raise ValidationError({"email": "Someone already has this e-mail address."})
    before = {
        "first_name": person.first_name, "last_name": person.last_name, "email": person.email,
        "iam_username": person.iam_username,
        "capabilities": sorted(g.name for g in person.groups.filter(name__in=CAPABILITY_NAMES)),
    }
    person.first_name, person.last_name = first_name.strip(), last_name.strip()
    person.email, person.iam_username = email, iam_username.strip()
    person.full_clean()
    person.save(update_fields=["first_name", "last_name", "email", "iam_username"])
    kept_groups = person.groups.exclude(name__in=CAPABILITY_NAMES)
    person.groups.set([*kept_groups, *Group.objects.filter(name__in=capabilities)])
    after = {
        "first_name": person.first_name, "last_name": person.last_name, "email": person.email,
        "iam_username": person.iam_username, "capabilities": sorted(capabilities),
    }
    changes = {key: {"from": before[key], "to": after[key]} for key in before if before[key] != after[key]}
    if changes:
        audit_record(action="person.updated", actor=updated_by, target=person, request=request, details=changes)
    if "iam_username" in changes:
        enforcement_sync_schedule(reason=f"IAM user name of {person.get_username()} changed")
    wanted = {team.pk: team for team in teams}
    current = {m.team_id: m.team for m in person.memberships.filter(removed_at__isnull=True).select_related("team")}
    for team_pk in sorted(set(wanted) - set(current)):
        team_member_add(team=wanted[team_pk], person=person, added_by=updated_by, request=request)
    for team_pk in sorted(set(current) - set(wanted)):
        team_member_remove(team=current[team_pk], person=person, removed_by=updated_by, request=request)
    return person


# --- the directory ---------------------------------------------------------------------------------


@transaction.atomic(durable=True)
def favourite_toggle(*, person: User, account_role: AccountRole) -> bool:
    """Star or unstar a link; returns whether it is a favourite now. The caller has checked that
    ``person`` may use ``account_role`` (``selectors.link_of_person``)."""
    deleted, _ = Favourite.objects.filter(person=person, account_role=account_role).delete()
    if not deleted:
        Favourite.objects.create(person=person, account_role=account_role)
    audit_record(
        action="link.favourite_removed" if deleted else "link.favourite_added",
        actor=person, target=account_role,
    )
    return not deleted


@transaction.atomic(durable=True)
def link_use_record(
    *, person: User, account_role: AccountRole, grants: Sequence[Grant], request: HttpRequest | None = None
) -> LinkUse:
    """Record a click-through (a ``LinkUse`` row and a ``link.used`` audit event with the
    person, role, time and client address). ``grants`` are the grants in force that cover the
    role for the person (at least one; the caller has checked)."""
    now = timezone.now()
    ip = client_ip_of(request)
    use = LinkUse.objects.create(
        person=person, account_role=account_role, grant=grants[0] if grants else None, used_at=now, client_ip=ip
    )
    account = account_role.account
    audit_record(
        action="link.used",
        actor=person,
        target=account_role,
        request=request,
        occurred_at=now,
        details={
            "link_use_id": use.pk,
            "client": account.client.name,
            "account_id": account.account_id,
            "role_arn": f"arn:aws:iam::{account.account_id}:role{account_role.role_path}{account_role.role_name}",
            "tier": account_role.template.name,
            "grant_ids": [grant.pk for grant in grants],
        },
    )
    return use
