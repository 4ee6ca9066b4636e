"""Organizations invitations (handshakes) for moto, which does not implement them (moto 5.2.5).

The actions below are attached to moto's ``OrganizationsResponse``; moto looks handlers up on the
response class when a request arrives, so they answer in server mode (the sandbox) and in-process
(``mock_aws``) alike. Their state lives on moto's ``OrganizationsBackend`` instances (attributes set
lazily), so ``/moto-api/reset`` and the end of a ``mock_aws`` block clear it with the rest of moto.

What the sandbox simulates:

- ``InviteAccountToOrganization`` (target type ACCOUNT): any 12-digit id that is in no Organization
  can be invited; it becomes a *standalone account* outside the Organization (the client's own),
  whose IAM the client reaches with its own credentials (moto's ``x-moto-account-id`` header, or
  any credentials for that account). An account already a member answers
  ``DuplicateAccountException``, a second open invitation ``DuplicateHandshakeException``, an
  account of another Organization ``HandshakeConstraintViolationException``.
- ``DescribeHandshake``, ``ListHandshakesForOrganization`` (the management account's),
  ``ListHandshakesForAccount`` (the invited account's), ``CancelHandshake`` (the management
  account), ``AcceptHandshake`` and ``DeclineHandshake`` (the invited account).
- An accepted invitation makes the account a member with ``JoinedMethod`` INVITED (and no
  ``OrganizationAccountAccessRole``: AWS gives invited accounts nothing). An OPEN invitation older
  than 15 days answers EXPIRED.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from moto.core.exceptions import ServiceException
from moto.core.utils import unix_time, utcnow
from moto.organizations import utils as org_utils
from moto.organizations.models import FakeAccount, OrganizationsBackend, organizations_backends
from moto.organizations.responses import OrganizationsResponse

PATCHED_ACTIONS: tuple[str, ...] = (
    "invite_account_to_organization",
    "describe_handshake",
    "list_handshakes_for_organization",
    "list_handshakes_for_account",
    "accept_handshake",
    "decline_handshake",
    "cancel_handshake",
)
HANDSHAKE_LIFETIME = timedelta(days=15)
_MARK = "__switchyard_sandbox_patch__"


class _Error(ServiceException):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(code, message)


def _not_in_organization() -> _Error:
    return _Error("AWSOrganizationsNotInUseException", "Your account is not a member of an organization.")


def _not_found(handshake_id: str) -> _Error:
    return _Error("HandshakeNotFoundException", f"We can't find a handshake with the HandshakeId {handshake_id}.")


def _transition(handshake: Handshake, wanted: str) -> _Error:
    if handshake.state == wanted:
        return _Error("HandshakeAlreadyInStateException", f"The handshake is already {wanted}.")
    return _Error("InvalidHandshakeTransitionException",
                  f"You can't change a handshake in state {handshake.state} to {wanted}.")


@dataclass
class Handshake:
    id: str
    organization_id: str
    master_account_id: str
    master_email: str
    target_account_id: str
    notes: str
    requested_at: datetime
    state: str = "OPEN"
    expires_at: datetime = field(init=False)

    def __post_init__(self) -> None:
        self.expires_at = self.requested_at + HANDSHAKE_LIFETIME

    @property
    def arn(self) -> str:
        return (f"arn:aws:organizations::{self.master_account_id}:handshake/{self.organization_id}/invite/{self.id}")

    def refresh(self) -> Handshake:
        if self.state in ("OPEN", "REQUESTED") and utcnow() >= self.expires_at:
            self.state = "EXPIRED"
        return self

    def describe(self) -> dict[str, Any]:
        self.refresh()
        resources: list[dict[str, Any]] = [
            {"Type": "ORGANIZATION", "Value": self.organization_id, "Resources": [
                {"Type": "MASTER_EMAIL", "Value": self.master_email},
                {"Type": "MASTER_NAME", "Value": "Switchyard sandbox"},
                {"Type": "ORGANIZATION_FEATURE_SET", "Value": "ALL"},
            ]},
            {"Type": "ACCOUNT", "Value": self.target_account_id},
        ]
        if self.notes:
            resources.append({"Type": "NOTES", "Value": self.notes})
        return {
            "Id": self.id,
            "Arn": self.arn,
            "Parties": [
                {"Id": self.organization_id.removeprefix("o-"), "Type": "ORGANIZATION"},
                {"Id": self.target_account_id, "Type": "ACCOUNT"},
            ],
            "State": self.state,
            "RequestedTimestamp": unix_time(self.requested_at),
            "ExpirationTimestamp": unix_time(self.expires_at),
            "Action": "INVITE",
            "Resources": resources,
        }


def handshakes_of(backend: OrganizationsBackend) -> dict[str, Handshake]:
    """The invitations the Organization run from ``backend``'s account has sent (kept on the backend
    instance, so moto's reset forgets them)."""
    found: dict[str, Handshake] | None = getattr(backend, "switchyard_handshakes", None)
    if found is None:
        found = {}
        backend.switchyard_handshakes = found  # type: ignore[attr-defined]
    return found


def _all_handshakes() -> list[Handshake]:
    every: list[Handshake] = []
    for _, per_account in list(organizations_backends.items()):
        for backend in list(per_account.values()):
            every.extend(getattr(backend, "switchyard_handshakes", {}).values())
    return every


def _find(handshake_id: str) -> Handshake:
    handshake = next((h for h in _all_handshakes() if h.id == handshake_id), None)
    if handshake is None:
        raise _not_found(handshake_id)
    return handshake.refresh()


def _master_backend(handshake: Handshake, partition: str) -> OrganizationsBackend:
    return organizations_backends[handshake.master_account_id][partition]


def _answer(handshake: Handshake) -> str:
    return json.dumps({"Handshake": handshake.describe()})


def _join(handshake: Handshake, partition: str) -> None:
    """The invited account becomes a member, as AWS does it: JoinedMethod INVITED, no access role."""
    backend = _master_backend(handshake, partition)
    org = backend.org
    if org is None:
        raise _not_in_organization()
    account: Any = FakeAccount.__new__(FakeAccount)
    account.type = "ACCOUNT"
    account.region = org.region
    account.organization_id = org.id
    account.master_account_id = org.master_account_id
    account.create_account_status_id = org_utils.make_random_create_account_status_id()
    account.id = handshake.target_account_id
    account.name = f"Client account {handshake.target_account_id}"
    account.email = f"aws+{handshake.target_account_id}@client.example"
    account.create_time = utcnow()
    account.status = account.state = "ACTIVE"
    account.joined_method = "INVITED"
    account.parent_id = org.root_id
    account.attached_policies = []
    account.tags = {}
    backend.accounts.append(account)
    for policy_id in (org_utils.DEFAULT_SCP_POLICY_ID, org_utils.DEFAULT_RCP_POLICY_ID):
        try:
            backend.attach_policy(PolicyId=policy_id, TargetId=account.id)
        except ServiceException:  # that policy type is not enabled in this Organization
            pass
    organizations_backends.master_accounts[account.id] = (backend.account_id, backend.partition)


# --------------------------------------------------------------------------------------------------
# The actions (methods of OrganizationsResponse)
# --------------------------------------------------------------------------------------------------


def invite_account_to_organization(self: OrganizationsResponse) -> str:
    backend = self.organizations_backend
    if backend.org is None:
        raise _not_in_organization()
    target = self._get_param("Target") or {}
    target_id = str(target.get("Id", ""))
    if target.get("Type") != "ACCOUNT" or not (len(target_id) == 12 and target_id.isdigit()):
        raise _Error("InvalidInputException", "The sandbox invites accounts by their 12-digit id only.")
    if any(account.id == target_id for account in backend.accounts):
        raise _Error("DuplicateAccountException", "That account is already present in the specified destination.")
    owner = organizations_backends.master_accounts.get(target_id)
    if owner is not None and owner[0] != backend.account_id:
        raise _Error("HandshakeConstraintViolationException",
                     "The account is already a member of another organization (ALREADY_IN_AN_ORGANIZATION).")
    handshakes = handshakes_of(backend)
    if any(h.target_account_id == target_id and h.refresh().state in ("OPEN", "REQUESTED")
           for h in handshakes.values()):
        raise _Error("DuplicateHandshakeException", "A handshake with the same action and target already exists.")
    handshake = Handshake(
        id=f"h-{secrets.token_hex(16)}",
        organization_id=backend.org.id,
        master_account_id=backend.account_id,
        master_email=backend.org.master_account_email,
        target_account_id=target_id,
        notes=str(self._get_param("Notes") or ""),
        requested_at=utcnow(),
    )
    handshakes[handshake.id] = handshake
    return _answer(handshake)


def describe_handshake(self: OrganizationsResponse) -> str:
    handshake = _find(str(self._get_param("HandshakeId") or ""))
    if self.current_account not in (handshake.master_account_id, handshake.target_account_id):
        raise _not_found(handshake.id)
    return _answer(handshake)


def _listed(self: OrganizationsResponse, handshakes: list[Handshake]) -> str:
    wanted = (self._get_param("Filter") or {}).get("ActionType")
    chosen = [h for h in handshakes if wanted in (None, "INVITE")]
    chosen.sort(key=lambda h: h.requested_at)
    return json.dumps({"Handshakes": [h.describe() for h in chosen]})


def list_handshakes_for_organization(self: OrganizationsResponse) -> str:
    backend = self.organizations_backend
    if backend.org is None:
        raise _not_in_organization()
    return _listed(self, list(handshakes_of(backend).values()))


def list_handshakes_for_account(self: OrganizationsResponse) -> str:
    return _listed(self, [h for h in _all_handshakes() if h.target_account_id == self.current_account])


def accept_handshake(self: OrganizationsResponse) -> str:
    handshake = _find(str(self._get_param("HandshakeId") or ""))
    if self.current_account != handshake.target_account_id:
        raise _Error("AccessDeniedException", "Only the invited account can accept its invitation.")
    if handshake.state != "OPEN":
        raise _transition(handshake, "ACCEPTED")
    _join(handshake, self.partition)
    handshake.state = "ACCEPTED"
    return _answer(handshake)


def decline_handshake(self: OrganizationsResponse) -> str:
    handshake = _find(str(self._get_param("HandshakeId") or ""))
    if self.current_account != handshake.target_account_id:
        raise _Error("AccessDeniedException", "Only the invited account can decline its invitation.")
    if handshake.state != "OPEN":
        raise _transition(handshake, "DECLINED")
    handshake.state = "DECLINED"
    return _answer(handshake)


def cancel_handshake(self: OrganizationsResponse) -> str:
    handshake = _find(str(self._get_param("HandshakeId") or ""))
    if self.current_account != handshake.master_account_id:
        raise _not_found(handshake.id)
    if handshake.state != "OPEN":
        raise _transition(handshake, "CANCELED")
    handshake.state = "CANCELED"
    return _answer(handshake)


_ACTIONS = {
    "invite_account_to_organization": invite_account_to_organization,
    "describe_handshake": describe_handshake,
    "list_handshakes_for_organization": list_handshakes_for_organization,
    "list_handshakes_for_account": list_handshakes_for_account,
    "accept_handshake": accept_handshake,
    "decline_handshake": decline_handshake,
    "cancel_handshake": cancel_handshake,
}


def native_actions() -> list[str]:
    """The patched actions moto now implements itself (its own method, not ours): the patch of each
    should go."""
    return [name for name in PATCHED_ACTIONS
            if getattr(OrganizationsResponse, name, None) is not None
            and not getattr(getattr(OrganizationsResponse, name), _MARK, False)]


def install() -> None:
    """Attach the actions to ``OrganizationsResponse`` (idempotent). Refuses to shadow an action
    moto implements natively."""
    native = native_actions()
    if native:
        raise RuntimeError(f"moto now implements {', '.join(native)} natively: remove portal.sandbox_moto.handshakes.")
    for name, action in _ACTIONS.items():
        setattr(action, _MARK, True)
        setattr(OrganizationsResponse, name, action)


def expire_for_tests(handshake_id: str) -> None:
    """Make an open invitation 15 days old (in-process moto only: tests of expiry)."""
    handshake = _find(handshake_id)
    handshake.requested_at -= HANDSHAKE_LIFETIME
    handshake.expires_at -= HANDSHAKE_LIFETIME
