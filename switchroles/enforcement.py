"""Main-account enforcement: the grants in force, turned into the IAM policies (and IAM group
members) that let exactly the granted people assume exactly the granted roles.

The same grants decide the directory (``selectors.links_for_person``) and, here, what AWS allows:

* each **team** is an IAM group (``Team.iam_group_name``) whose members are the IAM users of the
  team's current members, with customer managed policies ``switchyard-team-<id>-<n>``;
* each **person with personal grants** is an IAM user (``User.iam_username``) with policies
  ``switchyard-user-<id>-<n>``.

:func:`enforcement_sync` recomputes everything from the database and writes only what changed
since the last run (``EnforcedPrincipal.applied_documents``), so the every-minute schedule is
cheap. :func:`enforcement_drift_check` reads AWS back and records any difference; a drifted
principal is re-applied by the next sync.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections import defaultdict
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.utils import timezone

from portal.audit import audit_record
from portal.aws import (
    PERSON_TAG_KEY,
    AwsError,
    ClientFactory,
    PolicyTooLarge,
    PrincipalNotFound,
    RoleRef,
    allowed_role_arns,
    apply_group_members,
    apply_group_policies,
    apply_person_tags,
    apply_user_policies,
    compile_assume_policies,
    is_iam_name,
    is_unreachable,
    read_group_members,
    read_group_policies,
    read_user_policies,
    record_text,
    remove_principal_policies,
)
from portal.people.duties import is_auditor_q
from portal.people.models import User
from switchroles.accounts import account_model
from switchroles.models import (
    AccountRole,
    DriftCheck,
    DriftFinding,
    EnforcedPrincipal,
    Team,
)
from switchroles.notices import main_account_drift_notify
from switchroles.selectors import grants_in_force, memberships_in_force

logger = logging.getLogger(__name__)

SYNC_LOCK_KEY = "switchroles:enforcement-lock"
# A short lease, renewed as each principal is written (renew_enforcement_lock): a worker killed
# while holding it stops renewing, and the lock lapses within this long, so a revocation queued
# behind it (retrying every 10 s) still reaches AWS within a minute.
SYNC_LOCK_SECONDS = 30
_lock_held: ContextVar[list[Any] | None] = ContextVar("switchroles_enforcement_lock", default=None)  # [token, renewed]
_SHOWN_IN_AUDIT = 50  # ARNs listed in one audit event; the counts are always complete


class EnforcementBusy(RuntimeError):
    """Another sync or drift check holds the lock; try again shortly."""


@dataclass(frozen=True)
class IntendedPrincipal:
    """What the grants say one IAM group or user should be allowed (and, for a group, who is in it)."""

    principal_type: str  # EnforcedPrincipal.Type
    principal_name: str
    policy_name_prefix: str
    team_id: int | None
    person_id: int | None
    role_refs: frozenset[RoleRef]
    members: tuple[str, ...] = ()
    problem: str = ""  # why it cannot be enforced (e.g. no IAM user name), if it cannot

    @property
    def key(self) -> tuple[str, int]:
        return (self.principal_type, self.team_id or self.person_id or 0)

    @property
    def label(self) -> str:
        return f"team-{self.team_id}" if self.team_id else f"user-{self.person_id}"

    @property
    def role_arns(self) -> set[str]:
        return {ref.arn for ref in self.role_refs}


@dataclass
class SyncReport:
    """What one :func:`enforcement_sync` did, principal by principal."""

    applied: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    not_enforceable: dict[str, str] = field(default_factory=dict)
    # IAM users whose group membership or personal policies this run wrote (for the person tag)
    touched_users: set[str] = field(default_factory=set)
    tagged: tuple[str, ...] = ()
    untagged: tuple[str, ...] = ()


def team_policy_prefix(team_id: int) -> str:
    return f"switchyard-team-{team_id}"


def user_policy_prefix(person_id: int) -> str:
    return f"switchyard-user-{person_id}"


# --- what the grants say -------------------------------------------------------------------------


# One ACTIVE account role whose account has an AWS account id: (pk, account pk, account state, AWS
# account id (never None here), client pk, client slug, template pk, role path, role name, the
# template's require_mfa, its tier). A tuple of plain values: the garbage collector stops tracking it.
ActiveRole = tuple[int, int, str, str | None, int, str, int, str, str, bool, str]


def active_account_roles() -> list[ActiveRole]:
    """Every ACTIVE account role in an account with an AWS account id (whatever the account's
    state), by account and template: one query, which the effective-access check shares between
    its targets and :func:`intended_principals`."""
    return list(AccountRole.objects.filter(
        state=AccountRole.State.ACTIVE, account__account_id__isnull=False
    ).values_list(
        "pk", "account_id", "account__state", "account__account_id", "account__client_id", "account__client__slug",
        "template_id", "role_path", "role_name", "template__require_mfa", "template__tier",
    ).order_by("account_id", "template_id"))


def intended_principals(
    *, at: datetime | None = None, active_roles: Iterable[ActiveRole] | None = None
) -> list[IntendedPrincipal]:
    """Every team, and every person with personal grants in force (or policies written before),
    with the role ARNs their grants in force at ``at`` allow among ACTIVE account roles
    (``active_roles``: :func:`active_account_roles` when the caller has already read them).

    A fixed handful of queries whatever the number of grants, roles, teams and people.
    """
    moment = at or timezone.now()
    refs_by_account_template: dict[tuple[int, int], RoleRef] = {}
    refs_by_client_template: dict[tuple[int, int], set[RoleRef]] = defaultdict(set)
    if active_roles is None:
        active_roles = active_account_roles()
    for _pk, account_pk, _state, account_id, client_pk, slug, template_pk, role_path, role_name, _mfa, _tier in \
            active_roles:
        ref = RoleRef(account_id=account_id or "", client_slug=slug, role_path=role_path, role_name=role_name)
        refs_by_account_template[(account_pk, template_pk)] = ref
        refs_by_client_template[(client_pk, template_pk)].add(ref)

    refs_of_team: dict[int, set[RoleRef]] = defaultdict(set)
    refs_of_person: dict[int, set[RoleRef]] = defaultdict(set)
    # One row per grant in force and template it grants (one with None for a grant without any:
    # its holder is still a principal, with nothing to assume).
    for team_pk, person_pk, client_pk, account_pk, template_pk in grants_in_force(at=moment).order_by().values_list(
        "team_id", "person_id", "client_id", "account_id", "templates"
    ):
        target = refs_of_team[team_pk] if team_pk else refs_of_person[person_pk]
        if template_pk is None:
            continue
        if client_pk:
            target.update(refs_by_client_template.get((client_pk, template_pk), ()))
        else:
            granted = refs_by_account_template.get((account_pk, template_pk))
            if granted is not None:
                target.add(granted)

    members_of: dict[int, set[str]] = defaultdict(set)
    refused_of: dict[int, set[str]] = defaultdict(set)
    # A deactivated person keeps their rows (history) but nothing in AWS.
    # Separation of duties: an auditor (an existing conflict, listed on the conflicts page) gets
    # nothing in AWS either, as in the directory.
    for team_pk, iam_username in memberships_in_force(at=moment).filter(person__is_active=True).exclude(
        is_auditor_q("person_id")
    ).values_list("team_id", "person__iam_username"):
        if not iam_username:
            continue
        # A name AWS would refuse is left out of the group (and reported), so the team's other
        # members still join and leave: one bad name must not freeze the whole group.
        (members_of if iam_user_name_is_valid(iam_username) else refused_of)[team_pk].add(iam_username)

    principals = [
        IntendedPrincipal(
            principal_type=EnforcedPrincipal.Type.GROUP,
            principal_name=group_name,
            policy_name_prefix=team_policy_prefix(team_pk),
            team_id=team_pk,
            person_id=None,
            role_refs=frozenset(refs_of_team.get(team_pk, ())),
            members=tuple(sorted(members_of.get(team_pk, ()))),
            problem=_refused_names_problem(refused_of.get(team_pk, set())),
        )
        for team_pk, group_name in Team.objects.order_by("pk").values_list("pk", "iam_group_name")
    ]
    written_before = EnforcedPrincipal.objects.filter(person__isnull=False).values_list("person_id", flat=True)
    person_pks = set(refs_of_person) | set(written_before)
    for person_pk, iam_username, is_active, holds_auditor in User.objects.filter(pk__in=person_pks).annotate(
        holds_auditor=is_auditor_q("pk")
    ).order_by("pk").values_list("pk", "iam_username", "is_active", "holds_auditor"):
        refs = frozenset(refs_of_person.get(person_pk, ())) if is_active and not holds_auditor else frozenset()
        if iam_username and not iam_user_name_is_valid(iam_username):
            principals.append(
                IntendedPrincipal(
                    principal_type=EnforcedPrincipal.Type.USER, principal_name="",
                    policy_name_prefix=user_policy_prefix(person_pk), team_id=None, person_id=person_pk,
                    role_refs=refs, problem=_refused_names_problem({iam_username}),
                )
            )
            continue
        principals.append(
            IntendedPrincipal(
                principal_type=EnforcedPrincipal.Type.USER,
                principal_name=iam_username,
                policy_name_prefix=user_policy_prefix(person_pk),
                team_id=None,
                person_id=person_pk,
                role_refs=refs,
                problem="" if iam_username or not refs else "The person has no IAM user name on their profile.",
            )
        )
    return principals


def iam_user_name_is_valid(name: str) -> bool:
    """Whether IAM accepts ``name`` as a user name (1-64 ASCII letters, digits and +=,.@_-)."""
    return is_iam_name(name)


def _refused_names_problem(names: set[str]) -> str:
    if not names:
        return ""
    listed = ", ".join(repr(name) for name in sorted(names))
    return (
        f"IAM refuses the user name{'s' if len(names) > 1 else ''} {listed}: only ASCII letters, digits and "
        "+=,.@_- are allowed. Correct it on the person's profile; until then they are left out of AWS."
    )


# --- writing AWS ---------------------------------------------------------------------------------


@contextmanager
def enforcement_lock() -> Iterator[None]:
    """One sync or drift check at a time across every worker (the cache is shared)."""
    token = uuid.uuid4().hex
    if not cache.add(SYNC_LOCK_KEY, token, timeout=SYNC_LOCK_SECONDS):
        raise EnforcementBusy("Another enforcement run is in progress.")
    reset = _lock_held.set([token, time.monotonic()])
    try:
        yield
    finally:
        _lock_held.reset(reset)
        if cache.get(SYNC_LOCK_KEY) == token:
            cache.delete(SYNC_LOCK_KEY)


def renew_enforcement_lock() -> None:
    """Extend the lease of the lock this run holds (no-op outside :func:`enforcement_lock`).
    Called between principals, so the lease only has to outlast one principal's AWS calls."""
    held = _lock_held.get()
    if held is None or time.monotonic() - held[1] < SYNC_LOCK_SECONDS / 3:
        return  # renewed recently enough: no cache round trip per principal
    if cache.get(SYNC_LOCK_KEY) == held[0]:
        cache.touch(SYNC_LOCK_KEY, timeout=SYNC_LOCK_SECONDS)
        held[1] = time.monotonic()


def enforcement_sync(
    *, clients: ClientFactory, reason: str = "", force: bool = False, at: datetime | None = None
) -> SyncReport:
    """Make the main account's Switchyard policies and team groups say what the grants in force say.

    Idempotent and safe to run twice; principals whose documents and members did not change since
    the last successful run (and are not marked drifted) cost no AWS call unless ``force``. One
    principal failing (IAM user missing, grants too large for IAM) does not stop the others: the
    error is kept on its ``EnforcedPrincipal`` row, logged, and audited once. Call it under
    :func:`enforcement_lock` (the task does).
    """
    report = SyncReport()
    principals = intended_principals(at=at)
    rows = {
        (row.principal_type, row.team_id or row.person_id or 0): row for row in EnforcedPrincipal.objects.all()
    }
    for intended in principals:
        renew_enforcement_lock()
        row = rows.get(intended.key) or EnforcedPrincipal(
            principal_type=intended.principal_type,
            team_id=intended.team_id,
            person_id=intended.person_id,
            principal_name=intended.principal_name,
            policy_name_prefix=intended.policy_name_prefix,
        )
        _sync_one(clients, row, intended, report, reason=reason, force=force)
    if getattr(settings, "SWITCHYARD_PRINCIPAL_TAG_CONDITION", False):
        _sync_person_tags(clients, principals, report, force=force, reason=reason)
    logger.info(
        "switchroles.enforcement.synced",
        extra={"applied": len(report.applied), "unchanged": report.unchanged, "failed": len(report.failed)},
    )
    return report


def _sync_one(
    clients: ClientFactory,
    row: EnforcedPrincipal,
    intended: IntendedPrincipal,
    report: SyncReport,
    *,
    reason: str,
    force: bool,
) -> None:
    if not intended.principal_name and not (row.pk and row.principal_name):
        # Nobody to write to, and nothing written before: only a problem to show, if any.
        if intended.problem:
            report.not_enforceable[intended.label] = intended.problem
            _record_failure(row, intended, intended.problem, reason)
        return
    try:
        # No IAM user name any more (cleared): everything comes off the old one.
        documents = compile_assume_policies(principal_label=intended.label, role_arns=intended.role_refs) \
            if intended.principal_name else []
    except PolicyTooLarge as exc:
        report.failed[intended.label] = str(exc)
        _record_failure(row, intended, str(exc), reason)
        return
    members = list(intended.members)
    if (
        not force
        and row.pk is not None
        and not row.needs_apply
        and not row.last_error
        and row.principal_name == intended.principal_name
        and row.applied_documents == documents
        and (intended.principal_type == EnforcedPrincipal.Type.USER or row.applied_members == members)
    ):
        report.unchanged += 1
        return
    try:
        details = _apply(clients, row, intended, documents, members)
    except (PrincipalNotFound, AwsError, ValueError) as exc:
        _raise_if_unreachable(exc)
        report.failed[intended.label] = _error_text(exc)
        _record_failure(row, intended, _error_text(exc), reason)
        return
    row.principal_name = intended.principal_name
    row.applied_documents = documents
    row.applied_members = members if intended.principal_type == EnforcedPrincipal.Type.GROUP else []
    row.role_count = len(intended.role_refs) if documents else 0
    row.applied_at = row.last_attempt_at = timezone.now()
    row.needs_apply = False
    row.last_error = ""
    with transaction.atomic():
        row.save()
        if details["changed"]:
            audit_record(
                action="enforcement.applied",
                target=_target(intended),
                target_label=f"IAM {intended.principal_type} {details['principal_name']}",
                details={**details, "reason": reason[:200]},
            )
    if details["changed"]:
        report.applied.append(intended.label)
    report.touched_users.update(details["members_added"], details["members_removed"])
    if intended.principal_type == EnforcedPrincipal.Type.USER and intended.principal_name:
        report.touched_users.add(intended.principal_name)
    if intended.problem:
        report.not_enforceable[intended.label] = intended.problem
        _record_failure(row, intended, intended.problem, reason)


def _sync_person_tags(
    clients: ClientFactory, principals: list[IntendedPrincipal], report: SyncReport, *, force: bool, reason: str
) -> None:
    """The console roles' trust requires the ``switchyard-person`` tag: put it on the IAM users of
    the people enforcement manages (team members, people with personal grants) and take it off
    those it stopped managing. Only the users this run wrote are touched (all of them when forced,
    as a repair does); the effective-access check reports any other tag drift."""
    managed = {name for p in principals if p.principal_type == EnforcedPrincipal.Type.GROUP for name in p.members}
    managed |= {p.principal_name for p in principals
                if p.principal_type == EnforcedPrincipal.Type.USER and p.principal_name and p.role_refs}
    candidates = report.touched_users | (managed if force else set())
    if not candidates:
        return
    try:
        report.tagged, report.untagged = apply_person_tags(
            clients=clients, tag_key=PERSON_TAG_KEY, tagged=candidates & managed, untagged=candidates - managed,
        )
    except AwsError as exc:
        _raise_if_unreachable(exc)
        report.failed["person-tags"] = _error_text(exc)
        logger.warning("switchroles.enforcement.tags_failed", extra={"error": _error_text(exc)})
        return
    if report.tagged or report.untagged:
        audit_record(
            action="enforcement.person_tags_applied", target_label=f"tag {PERSON_TAG_KEY}",
            details={"tagged": list(report.tagged[:_SHOWN_IN_AUDIT]),
                     "untagged": list(report.untagged[:_SHOWN_IN_AUDIT]), "reason": reason[:200]},
        )


def _raise_if_unreachable(exc: Exception) -> None:
    """AWS cannot be reached at all: stop this run rather than wait out every principal's
    retries; the next scheduled run (within a minute) starts over."""
    if isinstance(exc, AwsError) and is_unreachable(exc):
        raise exc


def _apply(
    clients: ClientFactory,
    row: EnforcedPrincipal,
    intended: IntendedPrincipal,
    documents: list[dict[str, Any]],
    members: list[str],
) -> dict[str, Any]:
    renamed_from = row.principal_name if row.pk and row.principal_name != intended.principal_name else ""
    if not intended.principal_name:
        # Nothing to write to: only take everything off the old name.
        intended = IntendedPrincipal(
            principal_type=intended.principal_type, principal_name=renamed_from,
            policy_name_prefix=intended.policy_name_prefix, team_id=intended.team_id,
            person_id=intended.person_id, role_refs=frozenset(),
        )
        renamed_from = ""
    if renamed_from:
        # The old group or user must not keep what it was allowed under its old name.
        remove_principal_policies(
            clients=clients, principal_type=row.principal_type,  # type: ignore[arg-type]
            principal_name=renamed_from, policy_name_prefix=row.policy_name_prefix,
        )
        if row.principal_type == EnforcedPrincipal.Type.GROUP:
            apply_group_members(clients=clients, group_name=renamed_from, user_names=[])
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    missing_users: tuple[str, ...] = ()
    if intended.principal_type == EnforcedPrincipal.Type.GROUP:
        applied = apply_group_policies(
            clients=clients, group_name=intended.principal_name, documents=documents,
            policy_name_prefix=intended.policy_name_prefix,
        )
        membership = apply_group_members(clients=clients, group_name=intended.principal_name, user_names=members)
        added, removed, missing_users = membership.added, membership.removed, membership.missing_users
    elif documents:
        applied = apply_user_policies(
            clients=clients, user_name=intended.principal_name, documents=documents,
            policy_name_prefix=intended.policy_name_prefix,
        )
    else:
        applied = remove_principal_policies(
            clients=clients, principal_type="user", principal_name=intended.principal_name,
            policy_name_prefix=intended.policy_name_prefix,
        )
    arns = sorted(intended.role_arns)
    return {
        "changed": bool(applied.changed or added or removed or renamed_from),
        "principal_type": intended.principal_type,
        "principal_name": intended.principal_name,
        "renamed_from": renamed_from,
        "policy_arns": list(applied.policy_arns),
        "policies_created": len(applied.created),
        "policies_updated": len(applied.updated),
        "policies_deleted": len(applied.deleted),
        "role_count": len(arns),
        "role_arns": arns[:_SHOWN_IN_AUDIT],
        "members_added": list(added),
        "members_removed": list(removed),
        "members_without_iam_user": list(missing_users),
    }


def _record_failure(row: EnforcedPrincipal, intended: IntendedPrincipal, message: str, reason: str) -> None:
    """Keep the error on the row; audit it only when it is new, not once a minute."""
    is_new = row.last_error != message
    row.last_error = message
    row.needs_apply = True
    row.last_attempt_at = timezone.now()
    if row.pk is None:
        row.principal_name = intended.principal_name
    logger.warning(
        "switchroles.enforcement.failed",
        extra={"principal_type": intended.principal_type, "principal": intended.principal_name, "error": message},
    )
    with transaction.atomic():
        row.save()
        if is_new:
            audit_record(
                action="enforcement.failed",
                target=_target(intended),
                target_label=f"IAM {intended.principal_type} {intended.principal_name or '(none)'}",
                details={"error": message[:1000], "role_count": len(intended.role_refs), "reason": reason[:200]},
            )


def _target(intended: IntendedPrincipal) -> Team | User:
    if intended.team_id is not None:
        return Team.objects.get(pk=intended.team_id)
    return User.objects.get(pk=intended.person_id or 0)


def _error_text(exc: Exception) -> str:
    if isinstance(exc, AwsError):
        return record_text(exc)
    return str(exc) or exc.__class__.__name__


# --- reading AWS back ----------------------------------------------------------------------------


def enforcement_drift_check(*, clients: ClientFactory, at: datetime | None = None) -> DriftCheck:
    """Compare what AWS allows (the ``/switchyard/`` policies attached to each team's group and
    each person's user, expanded to role ARNs, and the group members) with what the grants in
    force say. Stores a :class:`DriftCheck` with one :class:`DriftFinding` per principal that
    differs, marks those principals for the next sync to repair, and audits
    ``enforcement.drift_found`` when anything differs."""
    check = DriftCheck(checked_at=timezone.now())
    account_clients = {
        account_id or "": slug
        for account_id, slug in account_model().objects.filter(account_id__isnull=False).values_list(
            "account_id", "client__slug"
        )
    }
    findings: list[DriftFinding] = []
    principals = [p for p in intended_principals(at=at) if p.principal_name]
    try:
        for intended in principals:
            renew_enforcement_lock()
            finding = _compare(clients, intended, account_clients)
            if finding is not None:
                findings.append(finding)
    except AwsError as exc:
        check.error = _error_text(exc)
    check.principals_checked = len(principals)
    check.drifted = len(findings)
    with transaction.atomic():
        check.save()
        for finding in findings:
            finding.check_run = check
        DriftFinding.objects.bulk_create(findings)
        for finding in findings:
            EnforcedPrincipal.objects.filter(
                principal_type=finding.principal_type, team=finding.team_id, person=finding.person_id
            ).update(needs_apply=True)
        if findings:
            audit_record(
                action="enforcement.drift_found",
                target=check,
                target_label=f"{len(findings)} IAM principal{'s' if len(findings) != 1 else ''} differ",
                details={
                    "principals": [
                        {
                            "principal": f"{f.principal_type}/{f.principal_name}",
                            "missing_arns": len(f.missing_arns),
                            "extra_arns": len(f.extra_arns),
                            "missing_members": f.missing_members,
                            "extra_members": f.extra_members,
                            "problem": f.problem[:200],
                        }
                        for f in findings[:_SHOWN_IN_AUDIT]
                    ]
                },
            )
            main_account_drift_notify(findings=findings)
    if findings or check.error:
        logger.warning("switchroles.enforcement.drift", extra={"drifted": len(findings), "error": check.error})
    return check


def _compare(
    clients: ClientFactory, intended: IntendedPrincipal, account_clients: dict[str, str]
) -> DriftFinding | None:
    expected = intended.role_arns
    problem = ""
    if intended.principal_type == EnforcedPrincipal.Type.GROUP:
        read = read_group_policies(clients=clients, group_name=intended.principal_name)
    else:
        read = read_user_policies(clients=clients, user_name=intended.principal_name)
    try:
        actual = allowed_role_arns(read.documents, account_clients=account_clients)
    except ValueError as exc:
        actual = set()
        problem = f"A policy attached to it is not in Switchyard's form, so it may allow anything: {exc}"[:1000]
    if not read.exists and expected:
        problem = f"The IAM {intended.principal_type} {intended.principal_name} does not exist."
    missing_members: list[str] = []
    extra_members: list[str] = []
    if intended.principal_type == EnforcedPrincipal.Type.GROUP:
        current = read_group_members(clients=clients, group_name=intended.principal_name)
        if current is not None or expected:
            members = set(current or ())
            missing_members = sorted(set(intended.members) - members)
            extra_members = sorted(members - set(intended.members))
    missing = sorted(expected - actual)
    extra = sorted(actual - expected)
    if not (missing or extra or missing_members or extra_members or problem):
        return None
    return DriftFinding(
        principal_type=intended.principal_type,
        principal_name=intended.principal_name,
        team_id=intended.team_id,
        person_id=intended.person_id,
        missing_arns=missing,
        extra_arns=extra,
        missing_members=missing_members,
        extra_members=extra_members,
        problem=problem,
    )
