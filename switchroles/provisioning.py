"""Role provisioning: make an account's roles match their templates.

The one place Switchyard writes its roles in member accounts, used by onboarding (the provision
and verify steps), template roll-outs, drift repair and the sandbox's rebuild of its simulated AWS:

- :func:`role_spec_for`: the IAM role an :class:`~switchroles.models.AccountRole` stands for;
- :func:`access_session`: credentials in the account through its access role;
- :func:`make_roles_match`: assume the access role (unless credentials are given), then
  ``ensure_role`` each role's spec (look before creating, adopt an identical role, bring a
  Switchyard role back to its spec, refuse a role that is not Switchyard's);
- :func:`roles_read_back`: what AWS shows that differs from the specs (after IAM's eventual
  consistency, the proof that a write landed), the roles read side by side;
- :func:`provisioned_record`: the role's ARN and the template revision it now has, in the database.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol

from django.conf import settings

from portal import aws
from portal.aws import AwsError, ClientFactory, RoleResult, RoleSpec, TemporaryCredentials
from switchroles.models import AccountRole

TAG_VALUE_RE = re.compile(r"[^\w .:/=+@-]", re.ASCII)
SESSION_NAME = "switchyard-provisioning"
# Roles of one account read back at once (IAM's read limits are far above this).
READ_BACK_AT_ONCE = 4


class ReachableAccount(Protocol):
    """A member account as provisioning needs it: its id and the role Switchyard assumes in it."""

    @property
    def account_id(self) -> str | None: ...

    @property
    def access_role(self) -> str: ...


def _tag_value(value: str) -> str:
    return TAG_VALUE_RE.sub("-", value)[:256] or "-"


def role_spec_for(role: AccountRole) -> RoleSpec:
    """The IAM role an ``AccountRole`` stands for: the template's policies and session length, a
    console trust policy for the main account, and tags naming the client, account and template."""
    template = role.template
    account = role.account
    return RoleSpec(
        path=role.role_path,
        name=role.role_name,
        trust_policy=aws.trust_policy_for_console(
            main_account_id=settings.SWITCHYARD_MAIN_ACCOUNT_ID, require_mfa=template.require_mfa,
            require_person_tag=getattr(settings, "SWITCHYARD_PRINCIPAL_TAG_CONDITION", False),
        ),
        managed_policy_arns=tuple(template.managed_policy_arns or ()),
        inline_policy=template.custom_policy or None,
        max_session_duration=template.max_session_seconds,
        description=f"Switchyard: {template.name} for {account.client.name}"[:1000],
        tags=(
            ("switchyard-client", _tag_value(account.client.slug)),
            ("switchyard-account", _tag_value(account.name)),
            ("switchyard-template", _tag_value(template.role_name)),
        ),
    )


def access_session(*, account: ReachableAccount, clients: ClientFactory,
                   session_name: str = SESSION_NAME) -> TemporaryCredentials:
    """Credentials in ``account``, an account Switchyard reached before, through its access role.
    Raises ``AwsError``; a refusal (``AccessDenied``) is not retryable and says the role must be
    restored (onboarding, whose new accounts' IAM may not be ready yet, assumes the role itself)."""
    return aws.assume_access_role(clients=clients, account_id=account.account_id or "",
                                  role_name=account.access_role, session_name=session_name,
                                  account_may_be_new=False)


@dataclass(frozen=True)
class RoleMatched:
    """One role made to match its spec: ``result`` from ``ensure_role``, or ``conflict`` when a role
    of that name exists in the account and is not Switchyard's (only with ``conflicts_allowed``)."""

    role: AccountRole
    spec: RoleSpec
    result: RoleResult | None = None
    conflict: AwsError | None = None

    @property
    def outcome(self) -> str:
        """"created", "adopted", "updated" or "conflict"."""
        return self.result.outcome if self.result is not None else "conflict"


def make_roles_match(
    *,
    account: ReachableAccount,
    roles: Iterable[AccountRole],
    clients: ClientFactory,
    credentials: TemporaryCredentials | None = None,
    session_name: str = SESSION_NAME,
    likely_new: bool = False,
    conflicts_allowed: bool = False,
    each: Callable[[RoleMatched], object] | None = None,
) -> list[RoleMatched]:
    """Make each of ``roles`` (of ``account``) in AWS match its spec (:func:`role_spec_for`).

    Assumes the account's access role first, unless ``credentials`` (of that role) are given.
    ``likely_new`` (onboarding): CreateRole first, reading only a role that exists already. Safe to
    run any number of times. Writes nothing in the database (see :func:`provisioned_record`).
    Raises ``AwsError`` (the first role AWS refuses stops the rest; with ``conflicts_allowed`` a role
    that is not Switchyard's is returned as a conflict instead and the others go on) and
    ``ValueError`` for a spec AWS would refuse (nothing sent for that role). ``each`` is called
    with each role as soon as it matches (or conflicts), before the next is written: a caller that
    records it there keeps what AWS has done so far even if a later role is never reached.
    """
    session = credentials or access_session(account=account, clients=clients, session_name=session_name)
    matched: list[RoleMatched] = []
    for role in roles:
        spec = role_spec_for(role)
        try:
            if likely_new:
                result = aws.ensure_role(clients=clients, credentials=session, spec=spec, likely_new=True)
            else:
                result = aws.ensure_role(clients=clients, credentials=session, spec=spec)
        except AwsError as error:
            if not conflicts_allowed or error.code != "RoleConflict":
                raise
            done = RoleMatched(role=role, spec=spec, conflict=error)
        else:
            done = RoleMatched(role=role, spec=spec, result=result)
        matched.append(done)
        if each is not None:
            each(done)
    return matched


def roles_read_back(
    *, roles: Sequence[AccountRole], clients: ClientFactory, credentials: TemporaryCredentials | None
) -> dict[str, list[str]]:
    """Read each role back and compare it with its spec: ``{role name: differences}`` for the roles
    that differ (a missing role, another path, trust, policies or session length, or no
    ``managed-by=switchyard`` tag); empty when AWS shows every role as specified."""
    specs = [role_spec_for(role) for role in roles]  # here: they read the database, the readers must not

    def read(spec: RoleSpec) -> aws.RoleState | None:
        return aws.read_role(clients=clients, credentials=credentials, path=spec.path, name=spec.name)

    if len(specs) > 1:
        # Side by side: each read is a few IAM round trips, and the step waits for all of them.
        with ThreadPoolExecutor(max_workers=min(len(specs), READ_BACK_AT_ONCE)) as readers:
            found = list(readers.map(read, specs))
    else:
        found = [read(spec) for spec in specs]
    problems: dict[str, list[str]] = {}
    for spec, current in zip(specs, found, strict=True):
        if current is None:
            problems[spec.name] = ["the role does not exist"]
            continue
        differences = list(aws.role_differences(current, spec))
        if not current.managed_by_switchyard:
            differences.append(f"it lacks the tag {aws.MANAGED_BY_TAG_KEY}={aws.MANAGED_BY_TAG_VALUE}")
        if differences:
            problems[spec.name] = differences
    return problems


def provisioned_record(matched: RoleMatched, *, state: str | None = None) -> None:
    """Record in the database what :func:`make_roles_match` did for one role: its ARN, and the
    template revision it now has (raised, never lowered: a newer roll-out may have landed first).
    ``state``: the role's new state too (onboarding: provisioned). Nothing for a conflict."""
    if matched.result is None:
        return
    role = matched.role
    revision = role.template.revision
    fields: dict[str, object] = {"arn": matched.result.arn}
    if state is not None:
        fields["state"] = state
    AccountRole.objects.filter(pk=role.pk).update(**fields)
    AccountRole.objects.filter(pk=role.pk, provisioned_revision__lt=revision).update(provisioned_revision=revision)
