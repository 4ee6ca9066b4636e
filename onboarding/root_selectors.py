"""Reads for root credentials, scoped like the rest of onboarding: managers and auditors see every
account's root posture; anyone else sees none."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.db.models import QuerySet

from onboarding.models import AwsAccount, Client, RootPosture, RootPostureRun, RootPostureRunAccount
from portal.operations.fan_out import Progress
from portal.people.permissions import AUDITOR, MANAGER, user_has_capability

# Sort keys of the list of all accounts (query parameter ``sort``) → ordering.
SORTS: dict[str, tuple[str, ...]] = {
    "account": ("client__name", "name"),
    "password": ("-root_posture__password", "client__name", "name"),
    "mfa": ("-root_posture__mfa_devices", "client__name", "name"),
    "keys": ("-root_posture__access_keys", "client__name", "name"),
    "certificates": ("-root_posture__signing_certificates", "client__name", "name"),
    "checked": ("root_posture__checked_at", "client__name", "name"),
}
SHOWN_STATES = (AwsAccount.State.ACTIVE, AwsAccount.State.REMOVING_ROOT, AwsAccount.State.FAILED,
                AwsAccount.State.PROVISIONING, AwsAccount.State.HANDING_BACK)


def root_credentials_for(account: AwsAccount) -> dict[str, Any] | None:
    """The account's ``root_credentials`` for the API's account JSON: ``{"password": bool, "mfa_devices":
    int, "access_keys": int, "signing_certificates": int, "checked_at": ISO 8601 str}``, or None when
    the root user was never looked at. (Reads ``account.root_posture``: select it with the account.)"""
    posture = getattr(account, "root_posture", None) if _has_posture(account) else None
    if posture is None or posture.checked_at is None:
        return None
    return {
        "password": posture.password,
        "mfa_devices": posture.mfa_devices,
        "access_keys": posture.access_keys,
        "signing_certificates": posture.signing_certificates,
        "checked_at": posture.checked_at.isoformat(),
    }


def _has_posture(account: AwsAccount) -> bool:
    try:
        return account.root_posture is not None
    except RootPosture.DoesNotExist:
        return False


def posture_of(account: AwsAccount) -> RootPosture | None:
    return account.root_posture if _has_posture(account) else None


@dataclass(frozen=True)
class RootPostureList:
    accounts: list[AwsAccount]  # each with ``root_posture`` selected (may be missing)
    sort: str
    with_password: int
    with_any: int
    unchecked: int


def root_posture_list(*, viewer: Any, sort: str = "password") -> RootPostureList:
    """Every account in the Organization with its root posture, sorted by ``sort`` (a key of
    :data:`SORTS`, else by password first), and the counts the page leads with."""
    if not user_has_capability(viewer, MANAGER, AUDITOR):
        return RootPostureList([], sort, 0, 0, 0)
    sort = sort if sort in SORTS else "password"
    accounts = list(
        AwsAccount.objects.filter(state__in=SHOWN_STATES, account_id__isnull=False)
        .select_related("client", "root_posture").order_by(*SORTS[sort])
    )
    postures = [posture_of(a) for a in accounts]
    return RootPostureList(
        accounts=accounts,
        sort=sort,
        with_password=sum(1 for p in postures if p is not None and p.known and p.password),
        with_any=sum(1 for p in postures if p is not None and p.known and p.has_credentials),
        unchecked=sum(1 for p in postures if p is None or not p.known),
    )


def accounts_with_root_credentials() -> QuerySet[AwsAccount]:
    """Drift findings: accounts whose root user was last seen with any credential."""
    return (
        AwsAccount.objects.filter(state__in=SHOWN_STATES, root_posture__checked_at__isnull=False)
        .exclude(root_posture__password=False, root_posture__mfa_devices=0, root_posture__access_keys=0,
                 root_posture__signing_certificates=0)
        .select_related("client", "root_posture").order_by("client__name", "name")
    )


def client_root_posture_rows(*, client: Client) -> list[list[Any]]:
    """The evidence pack's root-credentials.csv: a header, then one row per account of the client."""
    rows: list[list[Any]] = [["account", "account_id", "state", "root_password", "mfa_devices", "access_keys",
                              "signing_certificates", "checked_at", "last_error"]]
    for account in client.accounts.select_related("root_posture").order_by("name"):
        posture = posture_of(account)
        known = posture is not None and posture.known
        rows.append([
            account.name, account.account_id or "", account.state,
            ("yes" if posture.password else "no") if known and posture else "not checked",
            posture.mfa_devices if known and posture else "",
            posture.access_keys if known and posture else "",
            posture.signing_certificates if known and posture else "",
            posture.checked_at.isoformat() if known and posture and posture.checked_at else "",
            f"{posture.last_error_code}: {posture.last_error_message}" if posture and posture.last_error_code else "",
        ])
    return rows


def root_posture_progress() -> Progress | None:
    """How far the latest daily root-posture run has got ("40 of 120 accounts checked"), or None."""
    run = RootPostureRun.objects.first()
    if run is None:
        return None
    done = RootPostureRunAccount.objects.filter(run=run, status=RootPostureRunAccount.Status.DONE).count()
    return Progress(checked=done, total=run.accounts_total, finished=run.finished_at is not None)
