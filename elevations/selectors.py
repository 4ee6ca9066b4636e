"""Reads of client contacts and elevations, always scoped to the person asking."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from django.db.models import Q, QuerySet

from elevations.models import ApprovalPolicy, ClientContact, ElevationDecision, ElevationRequest
from onboarding.models import AwsAccount, Client
from portal.evidence.matrix import AccessMatrix, AccessRow, MatrixFilters
from portal.people.models import User
from switchroles.access_selectors import open_access_findings
from switchroles.models import AccessFinding, AccountRole, LinkUse, RoleTemplate
from switchroles.selectors import links_for_person


def contact_of(*, user: User) -> ClientContact | None:
    """The person's client-contact row, or None for everyone at the MSP."""
    return ClientContact.objects.select_related("client").filter(user=user).first()


def contacts_of_client(*, client: Client) -> QuerySet[ClientContact]:
    return ClientContact.objects.filter(client=client).select_related("user", "invited_by").order_by("user__email")


def client_accounts(*, client: Client) -> QuerySet[AwsAccount]:
    return AwsAccount.objects.filter(client=client).select_related("root_posture").order_by("name")


def client_roles(*, client: Client) -> QuerySet[AccountRole]:
    return (AccountRole.objects.filter(account__client=client).exclude(state=AccountRole.State.REMOVED)
            .select_related("account", "template").order_by("account__name", "template__pk"))


def client_who_can_reach(*, client: Client) -> list[AccessRow]:
    """Who at the MSP can use each role of the client's accounts now, and why (the access matrix,
    narrowed to this client)."""
    return AccessMatrix(MatrixFilters(client=client.pk, sort="account")).rows()


def client_link_uses(*, client: Client) -> QuerySet[LinkUse]:
    return (LinkUse.objects.filter(account_role__account__client=client)
            .select_related("person", "account_role__account", "account_role__template").order_by("-used_at"))


def client_elevations(*, client: Client) -> QuerySet[ElevationRequest]:
    return (ElevationRequest.objects.filter(account__client=client)
            .select_related("requester", "account", "template", "grant", "ended_by")
            .prefetch_related("decisions__decider").order_by("-requested_at", "-pk"))


def elevations_visible_to(*, person: User) -> QuerySet[ElevationRequest]:
    """A contact: their client's requests. A manager or an auditor (who only reads): all. Anyone
    else: their own."""
    base = ElevationRequest.objects.select_related("requester", "account__client", "template", "grant")
    contact = contact_of(user=person)
    if contact is not None:
        return base.filter(account__client_id=contact.client_id)
    if person.is_manager or person.is_auditor:
        return base
    return base.filter(requester=person)


def elevation_of(*, person: User, request_id: int) -> ElevationRequest | None:
    return elevations_visible_to(person=person).filter(pk=request_id).first()


def elevation_possible_deciders(*, request: ElevationRequest) -> list[User]:
    """Who may decide ``request`` now (for notifications and the page)."""
    candidates = User.objects.filter(is_active=True).filter(
        Q(groups__name="Manager") | Q(client_contact__client_id=request.account.client_id)
    ).exclude(pk=request.requester_id).distinct()
    return [person for person in candidates if decider_role(request=request, decider=person) is not None]


def elevation_targets(*, person: User) -> QuerySet[AccountRole]:
    """The active roles the person could ask to be elevated to: on accounts they can already
    reach with some tier, roles they do not hold."""
    links_ids = list(_held_role_ids(person))
    reach_accounts = AccountRole.objects.filter(pk__in=links_ids).values("account_id")
    return (AccountRole.objects.filter(state=AccountRole.State.ACTIVE, account_id__in=reach_accounts)
            .exclude(pk__in=links_ids).select_related("account__client", "template")
            .order_by("account__client__name", "account__name", "template__pk"))


def _held_role_ids(person: User) -> Iterator[int]:
    yield from links_for_person(person=person).values_list("pk", flat=True)


LOG_HEADER = ("when", "what", "person", "account", "aws_account_id", "tier", "detail")


def client_log_rows(*, client: Client) -> Iterator[Sequence[Any]]:
    """The client's own log: every elevation (asked, decided, ended) and every use of a link on
    its accounts, newest first; the header row first."""
    events: list[tuple[Any, ...]] = []
    for elevation in client_elevations(client=client):
        account, tier = elevation.account, elevation.template.name
        who = elevation.requester.get_username()
        events.append((elevation.requested_at, "elevation requested", who, account.name, account.account_id, tier,
                       f"#{elevation.pk} for {elevation.duration_minutes} min: {elevation.reason}"))
        for decision in elevation.decisions.all():
            events.append((decision.decided_at, "approved" if decision.approve else "declined",
                           decision.decider.get_username(), account.name, account.account_id, tier,
                           f"#{elevation.pk} as {decision.get_decided_as_display()}: {decision.reason}"))
        if elevation.emergency and elevation.approved_at:
            events.append((elevation.approved_at, "emergency self-approval", who, account.name, account.account_id,
                           tier, f"#{elevation.pk}: {elevation.emergency_reason}"))
        if elevation.finished_at and elevation.state != ElevationRequest.State.DECLINED:
            events.append((elevation.finished_at, elevation.get_state_display().lower(),
                           elevation.ended_by.get_username() if elevation.ended_by else "", account.name,
                           account.account_id, tier, f"#{elevation.pk}"))
    for use in client_link_uses(client=client).iterator(chunk_size=2000):
        role = use.account_role
        events.append((use.used_at, "switched in", use.person.get_username(), role.account.name,
                       role.account.account_id, role.template.name, role.display_name))
    events.sort(key=lambda row: row[0], reverse=True)
    yield LOG_HEADER
    for row in events:
        yield (row[0].isoformat(), *row[1:])


def tiers() -> QuerySet[RoleTemplate]:
    return RoleTemplate.objects.filter(is_active=True).order_by("pk")


def client_access_findings(*, client: Client) -> QuerySet[AccessFinding]:
    """The open effective-access findings that concern the client's accounts: who AWS lets in with
    no grant, granted links AWS refuses, and doors into the accounts that are not Switchyard's."""
    return open_access_findings(client_id=client.pk)


# --- who may decide ------------------------------------------------------------------------------


def decider_facts(*, decider: User) -> tuple[int | None, bool]:
    """What deciding depends on, read once per person: the client they are a contact of (or
    None) and whether they are an MSP manager."""
    contact_client = ClientContact.objects.filter(user=decider).values_list("client_id", flat=True).first()
    return contact_client, contact_client is None and decider.is_manager


def decider_role(
    *, request: ElevationRequest, decider: User, facts: tuple[int | None, bool] | None = None
) -> str | None:
    """As what ``decider`` may decide ``request`` ("manager" or "contact"), or None. Nobody
    decides their own request; ``facts`` (``decider_facts``) saves its queries over many rows."""
    if decider.pk == request.requester_id or not decider.is_active:
        return None
    contact_client, is_manager = facts if facts is not None else decider_facts(decider=decider)
    approvers = ApprovalPolicy.Approvers
    wants_manager = request.approvers in (approvers.MANAGER, approvers.BOTH_FIRST, approvers.BOTH_ALL)
    wants_contact = request.approvers in (approvers.CONTACT, approvers.BOTH_FIRST, approvers.BOTH_ALL)
    if wants_contact and contact_client is not None and contact_client == request.account.client_id:
        return ElevationDecision.As.CONTACT
    if wants_manager and is_manager:
        return ElevationDecision.As.MANAGER
    return None
