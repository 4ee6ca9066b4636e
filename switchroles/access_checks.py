"""Effective access, checked: what AWS really lets main-account principals assume, next to the
grants, kept as :class:`~switchroles.models.AccessFinding` rows that stay open until a later check
no longer sees them.

:func:`effective_access_check` reads the main account once (``read_authorization_details``: one
paginated ``GetAccountAuthorizationDetails`` walk plus the documents of attached AWS managed
policies), decides every (IAM user or role, member role) pair with ``switchroles.effective_access``,
and compares the answer with the grants in force (``enforcement.intended_principals``):

* a pair AWS allows that no grant in force explains is "reachable without a grant" (naming the
  policy and statement that allow it); every account's access role is always one, since no grant
  is ever meant to reach it;
* a granted role AWS does not let the person's IAM user assume is "granted, not allowed" (a failed
  sync, a missing group membership, no or a refused IAM user name);
* doors into client accounts (roles trusting the main account or outside accounts that are not
  Switchyard's) are recorded by the drift check's look into each account
  (:func:`record_doors`).

The check runs after each enforcement sync that changed or failed something, hourly with the
drift check, and when a manager asks. It takes no enforcement lock: revocations never wait on it.
"""

from __future__ import annotations

import gc
import hashlib
import json
import logging
import time
from collections import defaultdict
from collections.abc import Container, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from itertools import chain
from typing import TYPE_CHECKING, Any, NamedTuple

from django.conf import settings
from django.core.cache import cache
from django.db import transaction
from django.db.models import Q
from django.http import HttpRequest
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from portal.audit import audit_record
from portal.aws import (
    DEFAULT_ACCESS_ROLE_NAME,
    PERSON_TAG_KEY,
    AwsError,
    ClientFactory,
    read_authorization_details,
    trust_policy_for_console,
)
from portal.people.models import User
from switchroles.accounts import account_model, active_accounts
from switchroles.effective_access import (
    Allowance,
    Analysis,
    analyse,
    policy_document,
    principals_from_details,
)
from switchroles.enforcement import (
    ActiveRole,
    IntendedPrincipal,
    active_account_roles,
    iam_user_name_is_valid,
    intended_principals,
)
from switchroles.models import AccessCheck, AccessFinding, EnforcedPrincipal, RoleTemplate
from switchroles.policy_evaluation import Principal, TargetRole
from switchroles.selectors import grants_in_force, memberships_in_force

if TYPE_CHECKING:
    from onboarding.models import AwsAccount

logger = logging.getLogger(__name__)

Kind = AccessFinding.Kind
CHECK_LOCK_KEY = "switchroles:effective-access-check"
CHECK_LOCK_SECONDS = 300
_SHOWN_IN_AUDIT = 50
# Kinds this check opens and resolves; doors belong to the member-account look (record_doors).
_MAIN_ACCOUNT_KINDS = (Kind.UNGRANTED, Kind.NOT_ALLOWED, Kind.TAG_DRIFT)



def tag_condition_enabled() -> bool:
    """Whether the console roles' trust requires the ``switchyard-person`` principal tag."""
    return bool(getattr(settings, "SWITCHYARD_PRINCIPAL_TAG_CONDITION", False))


def console_trust_policy(*, main_account_id: str, require_mfa: bool) -> dict[str, Any]:
    """The trust policy Switchyard's console roles carry (what the drift check holds them to)."""
    return trust_policy_for_console(main_account_id=main_account_id, require_mfa=require_mfa,
                                    require_person_tag=tag_condition_enabled())


def access_role_trust_policy(*, main_account_id: str) -> dict[str, Any]:
    """``OrganizationAccountAccessRole`` as AWS creates it: the main account, no conditions."""
    return {
        "Version": "2012-10-17",
        "Statement": [{
            "Effect": "Allow", "Principal": {"AWS": f"arn:aws:iam::{main_account_id}:root"},
            "Action": "sts:AssumeRole",
        }],
    }


@dataclass(frozen=True)
class _Targets:
    """The roles the check decides for and, by position, where each is in the portal: (account
    pk, account role pk; None for an account's access role)."""

    roles: list[TargetRole]
    places: list[tuple[int, int | None]]
    # every ACTIVE account role (also in accounts that are not active), for intended_principals
    active_roles: list[ActiveRole]

    @cached_property
    def position_of(self) -> dict[str, int]:
        return {role.arn: number for number, role in enumerate(self.roles)}


def _targets(main_account_id: str) -> _Targets:
    """Every ACTIVE Switchyard role in an active account, and each active account's access role."""
    targets = _Targets(roles=[], places=[], active_roles=active_account_roles())
    trusts: dict[bool, dict[str, Any]] = {}
    active = account_model().State.ACTIVE
    for pk, account_pk, account_state, account_id, _client, _slug, _template, path, name, require_mfa, tier in \
            targets.active_roles:
        if account_state != active:
            continue
        trust = trusts.get(require_mfa)
        if trust is None:
            trust = trusts[require_mfa] = console_trust_policy(main_account_id=main_account_id,
                                                               require_mfa=require_mfa)
        targets.roles.append(TargetRole(
            arn=f"arn:aws:iam::{account_id}:role{path}{name}", account_id=account_id or "", trust_policy=trust,
            kind="switchyard", is_administrator=tier == RoleTemplate.Tier.ADMINISTRATOR,
        ))
        targets.places.append((account_pk, pk))
    access_trust = access_role_trust_policy(main_account_id=main_account_id)
    for account_pk, account_id in active_accounts().values_list("pk", "account_id").order_by("pk"):
        targets.roles.append(TargetRole(
            arn=f"arn:aws:iam::{account_id}:role/{DEFAULT_ACCESS_ROLE_NAME}", account_id=account_id or "",
            trust_policy=access_trust, kind="access role", is_administrator=True,
        ))
        targets.places.append((account_pk, None))
    return targets


class _Wanted(NamedTuple):
    """One finding this check sees, before it is matched with the open ones. (A named tuple: a
    check makes tens of thousands, and a tuple is made without running Python code per field.)"""

    kind: str
    principal_type: str
    principal_name: str
    principal_arn: str
    person_id: int | None = None
    account_id: int | None = None
    account_role_id: int | None = None
    role_arn: str = ""
    policy: str = ""
    statement: str = ""
    statement_json: str = ""
    detail: str = ""


# IAM user name -> what the grants in force let it assume, source by source in the order of the
# grants: (the role ARNs, what it comes through: an IAM group, or its own Switchyard policies).
_Granted = Mapping[str, Sequence[tuple[set[str], str]]]


def _granted(intended: Iterable[IntendedPrincipal]) -> _Granted:
    """What the grants in force let each IAM user assume. A group's ARNs are one set, shared by
    its members rather than copied into a set per member (at scale, hundreds of members of groups
    granted hundreds of roles each)."""
    granted: dict[str, list[tuple[set[str], str]]] = defaultdict(list)
    for principal in intended:
        arns = principal.role_arns
        if principal.principal_type == EnforcedPrincipal.Type.GROUP:
            through = f"the IAM group {principal.principal_name}"
            for member in principal.members:
                granted[member].append((arns, through))
        elif principal.principal_name:
            granted[principal.principal_name].append(
                (arns, f"the Switchyard policies on IAM user {principal.principal_name}"))
    return granted


def _through(sources: Sequence[tuple[set[str], str]]) -> dict[str, str]:
    """Role ARN -> what the user should come through for it: the first of its sources that grants
    it (the sources in reverse, each overwriting the later ones)."""
    found: dict[str, str] = {}
    for arns, what in reversed(sources):
        found.update(dict.fromkeys(arns, what))
    return found


def _people_by_iam_user() -> dict[str, int]:
    return {
        name: pk for pk, name in User.objects.filter(is_active=True).exclude(iam_username="")
        .values_list("pk", "iam_username")
    }


def _compare(analysis: Analysis, targets: _Targets, main_account_id: str, at: datetime | None) -> Iterator[_Wanted]:
    """The findings AWS's answer and the grants make. The database is read first; the findings
    (tens of thousands at scale) are then made one at a time, as they are stored."""
    intended = intended_principals(at=at, active_roles=targets.active_roles)
    granted = _granted(intended)
    people = _people_by_iam_user()
    unusable = _people_without_usable_iam_user(at)
    drift = _tag_drift(analysis, intended) if tag_condition_enabled() else []
    return chain(_granted_against_reached(analysis, targets, main_account_id, granted, people),
                 unusable, drift)


_ACCESS_ROLE = "the account's access role (administrator of the whole account)"
_ADMINISTRATOR = "an Administrator role"
_SWITCHYARD = "a Switchyard role"


def _granted_against_reached(
    analysis: Analysis, targets: _Targets, main_account_id: str, granted: _Granted, people: Mapping[str, int],
) -> Iterator[_Wanted]:
    """Each pair AWS allows that no grant explains, then each granted role AWS does not allow."""
    users = {p.name: p for p in analysis.principals if p.kind == "user"}
    blocked_of: dict[str, list[str]] = defaultdict(list)
    for blocked in analysis.blocked:
        blocked_of[blocked.principal.arn].append(blocked.reason)
    reached_by_user: dict[str, set[str]] = {}
    role_arns = [role.arn for role in analysis.roles]
    said: dict[tuple[Allowance, str, str], tuple[str, str, str, str]] = {}  # (allowance, role kind, via) -> texts
    places = targets.places
    what_of = [_ACCESS_ROLE if role.kind == "access role" else _ADMINISTRATOR if role.is_administrator else _SWITCHYARD
               for role in analysis.roles]
    for reached in analysis.reached:
        principal = reached.principal
        reached_arns = list(map(role_arns.__getitem__, reached.roles))
        ungranted: Container[str] = reached_arns
        if principal.kind == "user":
            reached_set = set(reached_arns)
            earlier = reached_by_user.get(principal.name)
            reached_by_user[principal.name] = reached_set if earlier is None else earlier | reached_set
            ungranted = reached_set.difference(*(arns for arns, _ in granted.get(principal.name, ())))
            if not ungranted:
                continue
        person_id = people.get(principal.name) if principal.kind == "user" else None
        via = f" as a member of {', '.join(principal.groups)}" if principal.groups else ""
        for (index, allowance), arn in zip(reached.roles.items(), reached_arns, strict=True):
            if arn not in ungranted:
                continue
            # (analysis.roles is targets.roles: the index is the role's place too)
            what = what_of[index]
            texts = said.get((allowance, what, via))
            if texts is None:
                classification = allowance.classification
                texts = said[(allowance, what, via)] = (
                    allowance.allowed_by.label, allowance.statement, allowance.statement_json,
                    f"{classification[:1].upper()}{classification[1:]}: {what}, allowed by "
                    f"{allowance.allowed_by.label} {allowance.statement}{via}. No grant in force explains it.",
                )
            account_pk, account_role_pk = places[index]
            policy, statement, statement_json, detail = texts
            yield _Wanted(Kind.UNGRANTED, principal.kind, principal.name, principal.arn, person_id, account_pk,
                          account_role_pk, arn, policy, statement, statement_json, detail)
    main = main_account_id
    position_of = targets.position_of
    for name, sources in sorted(granted.items()):
        reached_arns_of_user = reached_by_user.get(name, set())
        missing = sorted(set().union(*(arns - reached_arns_of_user for arns, _ in sources)))
        if not missing:
            continue
        # What does not depend on the role is worked out once per user: one detail text for
        # every role, except when the user should get them through different sources.
        user = users.get(name)
        principal_arn = user.arn if user else f"arn:aws:iam::{main}:user/{name}"
        person_id = people.get(name)
        details: dict[str, str] = {}  # why -> detail
        through: Mapping[str, str] = {}
        if user is None:
            fixed_why: str | None = f"there is no IAM user {name} in the main account"
        elif blocked_of.get(user.arn):
            fixed_why = "; ".join(blocked_of[user.arn])
        else:
            fixed_why, through = None, _through(sources)
        for arn in missing:
            position = position_of.get(arn)
            if position is None:
                continue  # the role or its account is not active: the grant gives nothing anyway
            if fixed_why is None:
                why = f"nothing allows it: the user should get it through {through.get(arn, 'its grants')}"
            else:
                why = fixed_why
            said_why = details.get(why)
            if said_why is None:
                said_why = details[why] = f"Granted in the portal, but AWS does not let {name} assume it: {why}."
            account_pk, account_role_pk = targets.places[position]
            yield _Wanted(
                kind=Kind.NOT_ALLOWED, principal_type="user", principal_name=name, principal_arn=principal_arn,
                person_id=person_id, account_id=account_pk, account_role_id=account_role_pk,
                role_arn=arn, detail=said_why,
            )


def _people_without_usable_iam_user(at: datetime | None) -> list[_Wanted]:
    """People whose grants reach roles but whose IAM user name AWS cannot use. The names are
    looked at first (nearly always every one is usable), then only those people's grants."""
    moment = at or timezone.now()
    unusable = [pk for pk, iam_username in User.objects.filter(is_active=True).values_list("pk", "iam_username")
                if not (iam_username and iam_user_name_is_valid(iam_username))]
    if not unusable:
        return []
    in_force = grants_in_force(at=moment)
    members = memberships_in_force(at=moment).filter(person_id__in=unusable,
                                                     team_id__in=in_force.filter(team__isnull=False).values("team_id"))
    reached = (Q(pk__in=in_force.filter(person_id__in=unusable).values("person_id"))
               | Q(pk__in=members.values("person_id")))
    found = []
    for pk, username, iam_username in User.objects.filter(reached, pk__in=unusable).order_by("pk").values_list(
        "pk", "username", "iam_username"
    ):
        problem = (f"the IAM user name {iam_username!r} is not one IAM accepts" if iam_username
                   else "the profile has no IAM user name")
        found.append(_Wanted(
            kind=Kind.NOT_ALLOWED, principal_type="person", principal_name=username,
            principal_arn=f"person:{pk}", person_id=pk,
            detail=f"Granted in the portal, but AWS refuses every link: {problem}. Set the person's IAM user "
                   "name (as it is in the main account) on their profile.",
        ))
    return found


def _tag_drift(analysis: Analysis, intended: Iterable[IntendedPrincipal]) -> list[_Wanted]:
    managed = _managed_iam_users(intended)
    found = []
    for principal in analysis.principals:
        if principal.kind != "user":
            continue
        tagged = PERSON_TAG_KEY in principal.tags
        if principal.name in managed and not tagged:
            detail = (f"{principal.name} is one of Switchyard's people but lacks the tag {PERSON_TAG_KEY}: the "
                      "console roles' trust refuses them until enforcement tags them.")
        elif tagged and principal.name not in managed:
            detail = (f"{principal.name} carries the tag {PERSON_TAG_KEY} but is not one of Switchyard's people: "
                      "the console roles' trust lets them in. Remove the tag.")
        else:
            continue
        found.append(_Wanted(kind=Kind.TAG_DRIFT, principal_type="user", principal_name=principal.name,
                             principal_arn=principal.arn, detail=detail))
    return found


def _managed_iam_users(intended: Iterable[IntendedPrincipal]) -> set[str]:
    names: set[str] = set()
    for principal in intended:
        if principal.principal_type == EnforcedPrincipal.Type.GROUP:
            names.update(principal.members)
        elif principal.principal_name and principal.role_refs:
            names.add(principal.principal_name)
    return names


def _administrators_everywhere(analysis: Analysis, targets: _Targets) -> list[dict[str, Any]]:
    access_roles = {role.arn for role in targets.roles if role.kind == "access role"}
    if not access_roles:
        return []
    roles = analysis.roles
    access_indexes = {index for index, role in enumerate(roles) if role.arn in access_roles}
    everywhere: dict[str, dict[str, Any]] = {}
    for reached in analysis.reached:
        on_access_roles = access_indexes.intersection(reached.roles)  # (a step per role reached, in C)
        if not on_access_roles or {roles[index].arn for index in on_access_roles} != access_roles:
            continue
        principal, first = reached.principal, reached.roles[min(on_access_roles)]
        everywhere.setdefault(principal.arn, {
            "principal_type": principal.kind, "principal": principal.name, "arn": principal.arn,
            "policy": first.allowed_by.label, "statement": first.statement, "classification": first.classification,
        })
    return [everywhere[arn] for arn in sorted(everywhere)]


def _plain_error(error: AwsError) -> str:
    return f"{error.plain_message} (AWS said: {error.code})"


def effective_access_check(*, clients: ClientFactory, at: datetime | None = None) -> AccessCheck:
    """Read the main account once, decide every (principal, role) pair, and open or resolve
    findings. When AWS cannot be read, the check is stored with ``error`` and the open findings
    are left as they were (never resolved by a check that saw nothing). Audited
    ``access.findings_changed`` when findings open or resolve."""
    started = time.monotonic()
    now = timezone.now()
    main = settings.SWITCHYARD_MAIN_ACCOUNT_ID
    check = AccessCheck(checked_at=now, tag_condition=tag_condition_enabled())
    try:
        read = read_authorization_details(clients=clients)
    except AwsError as exc:
        check.error = _plain_error(exc)
        check.duration_ms = int((time.monotonic() - started) * 1000)
        check.save()
        logger.warning("switchroles.access.check_failed", extra={"error": check.error})
        return check
    with _no_collector_pauses():
        _decide_and_store(check, read.details, api_calls=read.api_calls, main_account_id=main, at=at,
                          started=started)
    return check


def _decide_and_store(check: AccessCheck, details: Mapping[str, Any], *, api_calls: int, main_account_id: str,
                      at: datetime | None, started: float) -> None:
    """Decide every pair, then save ``check`` and its findings. (Its own function so that what it
    builds is freed before the collector resumes, with nothing left for it to walk.)"""
    principals: list[Principal] = principals_from_details(details, account_id=main_account_id)
    targets = _targets(main_account_id)
    analysis = analyse(principals, targets.roles)
    wanted = _compare(analysis, targets, main_account_id, at)
    check.api_calls = api_calls
    check.principals_checked = len(principals)
    check.roles_checked = len(targets.roles)
    check.reachable_pairs = analysis.reachable_pairs
    check.blocked = [
        {"principal_type": b.principal.kind, "principal": b.principal.name, "reason": b.reason, "roles": b.roles}
        for b in analysis.blocked
    ][:500]
    check.administrators_everywhere = _administrators_everywhere(analysis, targets)
    with transaction.atomic(durable=True):
        check.duration_ms = int((time.monotonic() - started) * 1000)
        previous = AccessCheck.objects.filter(error="").order_by("-checked_at", "-pk").first()
        check.save()
        _store(check, wanted, kinds=_MAIN_ACCOUNT_KINDS, seen_by_every_check=True, previous=previous)


@contextmanager
def _no_collector_pauses() -> Iterator[None]:
    """Hold off Python's cyclic garbage collector while the check decides and stores. At scale
    the check builds a few hundred thousand objects (the principals' policies, 10^5 reachable
    pairs, the findings) that all live until it ends and form no cycles; each full collection
    triggered meanwhile walks them and the rest of the worker's heap again for nothing (about a
    quarter of a second each, several per check). Reference counting still frees everything as
    usual, and the collector resumes, with nothing owed, when the check ends."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def finding_digest(detail: str, policy: str, statement: str, statement_json: str, person_id: int | None) -> str:
    """What :attr:`AccessFinding.digest` holds: the stored texts (as stored, cut to their
    columns) and the person, hashed."""
    text = "\x1f".join((detail, policy[:2048], statement[:256], statement_json, str(person_id or "")))
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def _store(check: AccessCheck | None, wanted: Iterable[_Wanted], *, kinds: Sequence[str],
           account_ids: Iterable[int] | None = None, seen_by_every_check: bool = False,
           previous: AccessCheck | None = None) -> tuple[int, int]:
    """Open what is new, refresh what is still there, resolve what is gone (within ``kinds``,
    and ``account_ids`` when given). Returns how many were (opened, resolved).

    ``seen_by_every_check``: every check of these kinds looks at all of them (the main-account
    check), so an open one was seen by the latest check, and its row is not dated again each hour
    (tens of thousands of rows at scale); when one resolves, it is dated by the check before
    (``previous``), the last that saw it. Otherwise (doors, seen account by account) each check
    dates what it sees again."""
    now = check.checked_at if check is not None else timezone.now()
    still_open = AccessFinding.objects.filter(resolved_at__isnull=True, kind__in=kinds)
    if account_ids is not None:
        still_open = still_open.filter(account_id__in=list(account_ids))
    # Plain rows of the key and the digest, not model instances: a check sees tens of thousands
    # of findings again each hour, and most are unchanged.
    current: dict[tuple[str, str, str], tuple[int, str]] = {
        (kind, principal_arn, role_arn): (pk, digest) for pk, kind, principal_arn, role_arn, digest
        in still_open.select_for_update().order_by().values_list("pk", "kind", "principal_arn", "role_arn", "digest")
    }
    digests: dict[tuple[str, str, str, str, int | None], str] = {}  # findings share their texts
    seen: set[tuple[str, str, str]] = set()
    opened: list[AccessFinding] = []
    refreshed: list[AccessFinding] = []
    for item in wanted:
        key = (item.kind, item.principal_arn, item.role_arn)
        if key in seen:
            continue
        seen.add(key)
        texts = (item.detail, item.policy, item.statement, item.statement_json, item.person_id)
        digest = digests.get(texts)
        if digest is None:
            digest = digests[texts] = finding_digest(*texts)
        row = current.get(key)
        if row is None:
            opened.append(AccessFinding(
                kind=item.kind, principal_type=item.principal_type, principal_name=item.principal_name[:256],
                principal_arn=item.principal_arn[:2048], person_id=item.person_id, account_id=item.account_id,
                account_role_id=item.account_role_id, role_arn=item.role_arn[:2048], policy=item.policy[:2048],
                statement=item.statement[:256], statement_json=item.statement_json, detail=item.detail,
                digest=digest, opened_at=now, last_seen_at=now, last_check=check,
            ))
        elif row[1] != digest:
            refreshed.append(AccessFinding(pk=row[0], detail=item.detail, policy=item.policy[:2048],
                                           statement=item.statement[:256], statement_json=item.statement_json,
                                           person_id=item.person_id, digest=digest))
    resolved_pks = sorted(current[key][0] for key in current.keys() - seen)
    resolved_shown = list(AccessFinding.objects.filter(pk__in=resolved_pks[:_SHOWN_IN_AUDIT]).order_by("pk")
                          .values_list("kind", "principal_arn", "role_arn", "policy", "statement"))
    dated: dict[str, Any] = {}
    if seen_by_every_check and previous is not None:
        dated = {"last_seen_at": previous.checked_at, "last_check": previous}
    for start in range(0, len(resolved_pks), 1000):
        AccessFinding.objects.filter(pk__in=resolved_pks[start:start + 1000]).update(resolved_at=now, **dated)
    if not seen_by_every_check:
        # What is left open of these is what this check saw again (before the new ones are stored).
        still_open.update(last_seen_at=now, last_check=check)
    AccessFinding.objects.bulk_create(opened, batch_size=1000)
    AccessFinding.objects.bulk_update(
        refreshed, ["detail", "policy", "statement", "statement_json", "person", "digest"], batch_size=1000,
    )
    if opened or resolved_pks:
        audit_record(
            action="access.findings_changed",
            target=check,
            target_label=f"{len(opened)} access finding(s) opened, {len(resolved_pks)} resolved",
            details={
                "opened": [_summary(f.kind, f.principal_arn, f.role_arn, f.policy, f.statement)
                           for f in opened[:_SHOWN_IN_AUDIT]],
                "resolved": [_summary(*row) for row in resolved_shown],
                "opened_count": len(opened), "resolved_count": len(resolved_pks),
            },
        )
        logger.warning("switchroles.access.findings", extra={"opened": len(opened), "resolved": len(resolved_pks)})
    return len(opened), len(resolved_pks)


def _summary(kind: str, principal_arn: str, role_arn: str, policy: str, statement: str) -> dict[str, str]:
    return {"kind": kind, "principal": principal_arn, "role": role_arn, "policy": policy[:300], "statement": statement}


# --- member accounts: doors ------------------------------------------------------------------------


def doors_in_account(
    *, account: AwsAccount, roles: Iterable[Mapping[str, Any]], switchyard_names: set[str],
    organization_account_ids: set[str], main_account_id: str,
) -> list[_Wanted]:
    """Roles in a client account (``ListRoles`` output) that trust the main account or an
    account outside the Organization and are not Switchyard's: doors into the client. The access
    role is expected to trust the main account, so only a foreign principal on it is a door."""
    found = []
    for role in roles:
        name = role.get("RoleName", "")
        if name in switchyard_names:
            continue
        trust = role.get("AssumeRolePolicyDocument") or {}
        if isinstance(trust, str):
            trust = policy_document(trust)
        trusted = _trusted_accounts(trust)
        foreign = sorted(a for a in trusted if a not in organization_account_ids and a != main_account_id)
        trusts_main = main_account_id in trusted
        if name == DEFAULT_ACCESS_ROLE_NAME and not foreign:
            continue
        if not foreign and not trusts_main:
            continue
        whom = ", ".join(f"account {a}" if a != "*" else "anyone (Principal *)" for a in foreign)
        if trusts_main and name != DEFAULT_ACCESS_ROLE_NAME:
            whom = ", ".join(filter(None, ["the main account", whom]))
        tagged = " (tagged managed-by=switchyard, but the portal has no such role)" if any(
            t.get("Key") == "managed-by" and t.get("Value") == "switchyard" for t in role.get("Tags", []) or []
        ) else ""
        found.append(_Wanted(
            kind=Kind.DOOR, principal_type="account", principal_name=whom[:256],
            principal_arn=",".join(foreign or [main_account_id]), account_id=account.pk,
            role_arn=role.get("Arn", ""), statement_json=json.dumps(trust, sort_keys=True),
            detail=(f"Door into {account.client.name}: the role {role.get('Path', '/')}{name} in {account} trusts "
                    f"{whom}{tagged}. Anyone there whose own policies allow sts:AssumeRole can use it. Delete the "
                    "role or narrow its trust policy."),
        ))
    return found


def _trusted_accounts(trust: Mapping[str, Any]) -> set[str]:
    accounts: set[str] = set()
    statements = trust.get("Statement", [])
    for statement in statements if isinstance(statements, list) else [statements]:
        if not isinstance(statement, Mapping) or statement.get("Effect") != "Allow":
            continue
        principal = statement.get("Principal")
        values: list[Any] = ["*"] if principal == "*" else []
        if isinstance(principal, Mapping):
            raw = principal.get("AWS", [])
            values = raw if isinstance(raw, list) else [raw]
        for value in values:
            text = str(value)
            if text == "*":
                accounts.add("*")
            elif text.isdigit():
                accounts.add(text)
            elif text.startswith("arn:") and len(text.split(":")) > 4:
                accounts.add(text.split(":")[4])
    return accounts


def record_doors(*, check: AccessCheck | None, wanted: list[_Wanted], account_ids: Iterable[int]) -> None:
    """Store the doors seen in the accounts looked into (resolving those no longer there)."""
    with transaction.atomic():
        _store(check, wanted, kinds=(Kind.DOOR,), account_ids=account_ids)


# --- asking for a check --------------------------------------------------------------------------


def effective_access_schedule() -> None:
    """Queue a check once the current transaction commits (duplicates within a few minutes are
    dropped by the task's lock). A broker failure is logged: the hourly run catches up."""

    def send() -> None:
        from switchroles import tasks

        try:
            tasks.effective_access_check.delay()
        except BrokerUnavailable:
            logger.warning("switchroles.access.enqueue_failed")

    transaction.on_commit(send)


@transaction.atomic
def effective_access_check_request(*, actor: User, request: HttpRequest | None = None) -> None:
    """A manager asks for a check now (audited ``access.check_requested``)."""
    audit_record(action="access.check_requested", actor=actor, request=request, target_label="effective access")
    effective_access_schedule()


def effective_access_check_locked(*, clients: ClientFactory) -> AccessCheck | None:
    """One check at a time across workers; ``None`` when another is running."""
    if not cache.add(CHECK_LOCK_KEY, "1", timeout=CHECK_LOCK_SECONDS):
        return None
    try:
        return effective_access_check(clients=clients)
    finally:
        cache.delete(CHECK_LOCK_KEY)
