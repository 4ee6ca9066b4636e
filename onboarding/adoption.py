"""Bringing existing accounts in: adopting the Organization's members that Switchyard does not
manage yet, and inviting many outside accounts at once.

- :func:`unmanaged_members`: the Organization's member accounts Switchyard has no record of (read).
- :func:`adoption_request`: a manager adopts one member: the account (origin ADOPTED), its roles
  and the steps of ``workflow.ADOPTED_PATH`` (reach the access role, find the roles already there,
  provision, verify, publish), in one transaction, audited; a worker is asked to start.
- :func:`discover_roles` (the DISCOVER_ROLES step): the roles the team made by hand that trust the
  main account, recorded as :class:`~onboarding.models.ExistingRole`; adopted (their switch-role links
  published on the account's page) or only reported, as the manager chose.
- :func:`bulk_rows` and :func:`bulk_request`: many accounts (account id, client, account name) adopted
  or invited in one go, each its own workflow, grouped in an :class:`~onboarding.models.OnboardingBatch`
  for one page of progress. Every row is checked first: one bad row refuses the batch, naming the row,
  and nothing is created.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.db import IntegrityError, transaction
from django.http import HttpRequest
from django.utils.text import slugify

from onboarding import services, workflow
from onboarding.models import SLUG_VALIDATOR, AwsAccount, Client, ExistingRole, OnboardingBatch
from portal import aws
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, default_client_factory
from portal.models import User
from switchroles.models import RoleTemplate

EXISTING_ROLE_CHOICES = ("adopt", "report")
BULK_MAX_ROWS = 200


# --------------------------------------------------------------------------------------------------
# The Organization's members Switchyard does not manage
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    id: str
    name: str
    email: str
    joined_method: str
    joined_at: datetime | None
    state: str


def unmanaged_members(*, clients: ClientFactory | None = None, search: str = "") -> list[Member]:
    """The Organization's member accounts (not the management account) that Switchyard has no
    account for, by name; ``search`` keeps those whose id, name or e-mail contains it (any case).
    Raises AwsError when the Organization cannot be read."""
    members = aws.list_accounts(clients=clients or default_client_factory())
    known = set(AwsAccount.objects.filter(account_id__isnull=False).exclude(state=AwsAccount.State.HANDED_BACK)
                .values_list("account_id", flat=True))
    wanted = search.strip().casefold()
    found = [
        Member(m.id, m.name, m.email, m.joined_method, m.joined_at, m.state)
        for m in members
        if m.id != settings.SWITCHYARD_MAIN_ACCOUNT_ID and m.id not in known
        and (not wanted or wanted in f"{m.id} {m.name} {m.email}".casefold())
    ]
    return sorted(found, key=lambda m: (m.name.casefold(), m.id))


# --------------------------------------------------------------------------------------------------
# Adopting and inviting (one account, or a batch)
# --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One account of a request: its id, its client (an existing one, or a new one by name) and name."""

    account_id: str
    client_name: str
    account_name: str
    line: int = 0


def _client_slug_for(name: str) -> str:
    return slugify(name)[:32].strip("-")


def _row_errors(
    *, row: Row, origin: str, members: dict[str, aws.Account], clients_by_name: dict[str, Client],
    names_seen: dict[tuple[str, str], int], ids_seen: dict[str, int], access_role_name: str,
) -> dict[str, list[str]]:
    errors: dict[str, list[str]] = {}

    def add(name: str, message: str) -> None:
        errors.setdefault(name, []).append(message)

    if not services.ACCOUNT_ID_RE.match(row.account_id):
        add("account_id", "An AWS account id is exactly 12 digits.")
    elif row.account_id in ids_seen:
        add("account_id", f"This account is listed twice (also on line {ids_seen[row.account_id]}).")
    else:
        taken = AwsAccount.objects.filter(account_id=row.account_id).select_related("client").first()
        if taken is not None:
            add("account_id", f"Switchyard already has this account: {taken} ({taken.get_state_display()}).")
        elif origin == AwsAccount.Origin.ADOPTED:
            if row.account_id == settings.SWITCHYARD_MAIN_ACCOUNT_ID:
                add("account_id", "This is the Organization's management account: Switchyard runs from it.")
            elif row.account_id not in members:
                add("account_id", "This account is not a member of the Organization: invite it instead.")
        elif row.account_id in members:
            add("account_id", "This account is already a member of the Organization: adopt it instead.")
    if not row.client_name.strip():
        add("client_name", "Name the account's client.")
    elif row.client_name.casefold() not in clients_by_name:
        slug = _client_slug_for(row.client_name)
        try:
            SLUG_VALIDATOR(slug)
        except ValidationError:
            add("client_name", "Use a client name with letters or digits (its short name is made from it).")
        else:
            if Client.objects.filter(slug=slug).exists():
                add("client_name", f"Another client uses the short name {slug}: use that client's exact name.")
    if not services.ACCOUNT_NAME_RE.match(row.account_name):
        add("account_name", "Use 1–50 characters: letters, digits, spaces and ordinary punctuation.")
    else:
        key = (row.client_name.casefold(), row.account_name.casefold())
        client = clients_by_name.get(row.client_name.casefold())
        if key in names_seen:
            add("account_name", f"The client already gets an account of this name on line {names_seen[key]}: "
                                "their links would read the same.")
        elif client is not None and services.account_name_taken(client=client, account_name=row.account_name):
            add("account_name", f"{client.name} already has an account named {row.account_name}: "
                                "their links would read the same. Choose another name.")
    if access_role_name and not aws.is_iam_name(access_role_name):
        add("access_role_name", "An IAM role name has 1–64 letters, digits and +=,.@_-.")
    return errors


def _check_common(*, origin: str, templates: Sequence[RoleTemplate], reason: str, existing_roles: str) -> None:
    errors: dict[str, list[str]] = {}
    if origin not in (AwsAccount.Origin.ADOPTED, AwsAccount.Origin.INVITED):
        errors["origin"] = ["Choose whether to adopt members of the Organization or invite outside accounts."]
    if not templates:
        errors["templates"] = ["Choose at least one role template."]
    retired = [t.name for t in templates if not t.is_active]
    if retired:
        errors.setdefault("templates", []).append(f"Retired templates: {', '.join(retired)}.")
    if not reason.strip():
        errors["reason"] = ["Say why these accounts are being brought in (for the audit log)."]
    elif len(reason) > 1000:
        errors["reason"] = ["Use at most 1,000 characters."]
    if origin == AwsAccount.Origin.ADOPTED and existing_roles not in EXISTING_ROLE_CHOICES:
        errors["existing_roles"] = ["Choose whether to adopt the roles already there or only report them."]
    if errors:
        raise ValidationError(errors)


def _members(clients: ClientFactory, origin: str, rows: Sequence[Row]) -> dict[str, aws.Account]:
    try:
        return {m.id: m for m in aws.list_accounts(clients=clients)}
    except AwsError as error:
        raise ValidationError({NON_FIELD_ERRORS: [
            f"Switchyard could not read the Organization in AWS, so nothing was done: {error.plain_message} "
            f"(AWS said: {error.code}). Try again in a moment."
        ]}) from error


def bulk_request(
    *,
    actor: User,
    origin: str,
    rows: Sequence[Row],
    templates: Sequence[RoleTemplate],
    reason: str,
    existing_roles: str = "report",
    access_role_name: str = "",
    request: HttpRequest | None = None,
    clients: ClientFactory | None = None,
) -> OnboardingBatch:
    """Adopt (``origin`` ADOPTED: members of the Organization) or invite (INVITED: accounts outside
    it) every row's account, each its own workflow, grouped in one batch.

    Every row is checked before anything is written (one read of the Organization): malformed ids and
    names, accounts Switchyard has already, accounts that are (adopt) or are not (invite) members,
    an account listed twice, and two accounts of one client with the same name (in the batch or with
    an account the client has). Raises ``ValidationError`` whose messages name the line and field
    (``{"rows": [...]}`` plus the form's fields), and writes nothing. Then one transaction creates
    the batch, the clients that do not exist yet (short name made from the name), each account with
    its roles and steps, and the audit events; the workers are asked to start on each."""
    _check_common(origin=origin, templates=templates, reason=reason, existing_roles=existing_roles)
    if not rows:
        raise ValidationError({"rows": ["List at least one account: account id, client, account name."]})
    if len(rows) > BULK_MAX_ROWS:
        raise ValidationError({"rows": [f"At most {BULK_MAX_ROWS} accounts at once."]})
    factory = clients or default_client_factory()
    members = _members(factory, origin, rows)
    clients_by_name = {c.name.casefold(): c for c in Client.objects.all()}
    names_seen: dict[tuple[str, str], int] = {}
    ids_seen: dict[str, int] = {}
    problems: list[str] = []
    field_errors: dict[str, list[str]] = {}
    for index, row in enumerate(rows, start=1):
        line = row.line or index
        found = _row_errors(row=row, origin=origin, members=members, clients_by_name=clients_by_name,
                            names_seen=names_seen, ids_seen=ids_seen, access_role_name=access_role_name)
        names_seen.setdefault((row.client_name.casefold(), row.account_name.casefold()), line)
        ids_seen.setdefault(row.account_id, line)
        for name, messages in found.items():
            if name == "access_role_name":
                field_errors[name] = messages
                continue
            problems.extend(f"Line {line} ({name.replace('_', ' ')}): {message}" for message in messages)
    if problems or field_errors:
        raise ValidationError({**({"rows": problems} if problems else {}), **field_errors})
    try:
        with transaction.atomic():
            batch = OnboardingBatch(origin=origin, requested_by=actor, reason=reason)
            batch.full_clean()
            batch.save()
            for row in rows:
                client = clients_by_name.get(row.client_name.casefold())
                account = services._write_request(  # noqa: SLF001 - the one writer of a request's rows
                    actor=actor, client=client, client_name=row.client_name.strip(),
                    client_slug=_client_slug_for(row.client_name), origin=origin,
                    account_name=row.account_name.strip(), root_email="", account_id=row.account_id,
                    templates=templates, reason=reason, request=request,
                )
                clients_by_name[account.client.name.casefold()] = account.client
                account.batch = batch
                account.existing_roles = existing_roles if origin == AwsAccount.Origin.ADOPTED else ""
                account.access_role_name = access_role_name
                account.save(update_fields=["batch", "existing_roles", "access_role_name", "updated_at"])
            audit_record(action="onboarding.batch.requested", actor=actor, target=batch, request=request,
                         details={"origin": origin, "accounts": [r.account_id for r in rows],
                                  "existing_roles": existing_roles, "reason": reason})
    except IntegrityError as exc:
        raise ValidationError({"rows": [
            "Another request for one of these accounts or clients was saved at the same moment. Check the "
            "clients list, then try again."
        ]}) from exc
    return batch


def adoption_request(
    *, actor: User, account_id: str, account_name: str, templates: Sequence[RoleTemplate], reason: str,
    client: Client | None = None, client_name: str = "", existing_roles: str = "report",
    access_role_name: str = "", request: HttpRequest | None = None, clients: ClientFactory | None = None,
) -> AwsAccount:
    """Adopt one member of the Organization (see :func:`bulk_request`, of which this is a batch of one)."""
    batch = bulk_request(
        actor=actor, origin=AwsAccount.Origin.ADOPTED,
        rows=[Row(account_id=account_id.strip(), client_name=client.name if client else client_name,
                  account_name=account_name, line=1)],
        templates=templates, reason=reason, existing_roles=existing_roles, access_role_name=access_role_name,
        request=request, clients=clients,
    )
    return batch.accounts.get()


def bulk_rows(text: str) -> list[Row]:
    """Rows from a pasted list or an uploaded CSV: ``account id, client, account name`` per line (a
    header line starting with "account" is skipped, blank lines too). Raises ``ValidationError``
    naming the line of a row without three values."""
    rows: list[Row] = []
    problems: list[str] = []
    for line, values in enumerate(csv.reader(io.StringIO(text)), start=1):
        cells = [value.strip() for value in values]
        if not any(cells):
            continue
        if line == 1 and cells[0].casefold().startswith("account"):
            continue
        if len(cells) != 3:
            problems.append(f"Line {line}: expected account id, client, account name (3 values), found {len(cells)}.")
            continue
        rows.append(Row(account_id=cells[0], client_name=cells[1], account_name=cells[2], line=line))
    if problems:
        raise ValidationError({"rows": problems})
    return rows


# --------------------------------------------------------------------------------------------------
# The DISCOVER_ROLES step
# --------------------------------------------------------------------------------------------------


def discover_roles(run: workflow.StepRun) -> workflow.Outcome:
    """Find the roles the team made by hand that trust the main account; record each (adopted or
    reported, as the manager chose). Safe to run twice: rows are kept by role name."""
    credentials = workflow._member_credentials(run)  # noqa: SLF001 - the workflow's own helper
    if isinstance(credentials, workflow.Outcome):
        return credentials
    account = run.account
    found = aws.roles_trusting_account(
        clients=run.clients, credentials=credentials, trusted_account_id=settings.SWITCHYARD_MAIN_ACCOUNT_ID,
        ignore_names=[account.access_role],
    )
    adopt = account.existing_roles == "adopt"
    for role in found:
        ExistingRole.objects.update_or_create(
            account=account, role_name=role.name,
            defaults={"arn": role.arn, "role_path": role.path, "trusted_principals": list(role.trusted_principals),
                      "managed_policy_arns": list(role.managed_policy_arns), "adopted": adopt},
        )
    details: dict[str, Any] = {"found_roles": [role.arn for role in found],
                               "existing_roles": "adopted" if adopt else "reported"}
    if found:
        audit_record(action="onboarding.existing_roles." + ("adopted" if adopt else "reported"), target=account,
                     details=details)
    return workflow.Outcome.succeeded(**details)
