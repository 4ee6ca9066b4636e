"""Reads for the auditors' workspace: events, the history of a link or a person, evidence.

Auditors and managers read everything here (the views check the capability); nothing in this
module writes.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from django.db.models import Q, QuerySet

from onboarding.models import AwsAccount, Client
from portal.audit.models import AuditEvent
from portal.people.models import User
from switchroles.models import AccountRole, Grant, LinkUse, RoleTemplate, Team, TeamMembership

SIGN_IN_ACTIONS = ("auth.", "mfa.")


@dataclass(frozen=True)
class EventFilters:
    action: str = ""
    actor: str = ""
    target_type: str = ""
    target_id: str = ""
    target: str = ""
    since: datetime | None = None
    until: datetime | None = None


def audit_events_filtered(*, action: str = "", actor: str = "", target_type: str = "", target_id: str = "",
                          target: str = "", since: datetime | None = None,
                          until: datetime | None = None) -> QuerySet[AuditEvent]:
    """Events newest first. ``action`` matches a prefix (``grant.`` finds every grant event),
    ``actor`` the person's user name as it was recorded, ``target`` a part of the target's label;
    ``since`` is inclusive, ``until`` exclusive."""
    events = AuditEvent.objects.order_by("-sequence")
    if action:
        events = events.filter(action__startswith=action)
    if actor:
        events = events.filter(actor_label__iexact=actor)
    if target_type:
        events = events.filter(target_type=target_type)
    if target_id:
        events = events.filter(target_id=target_id)
    if target:
        events = events.filter(target_label__icontains=target)
    if since is not None:
        events = events.filter(occurred_at__gte=since)
    if until is not None:
        events = events.filter(occurred_at__lt=until)
    return events


EVENT_CSV_HEADER = ("sequence", "occurred_at", "actor", "action", "target_type", "target_id", "target",
                    "details", "client_ip", "digest")


def audit_events_csv_rows(*, filters: EventFilters) -> Iterator[Sequence[Any]]:
    """The header, then one row per event (oldest first, as the chain runs), read in chunks."""
    import json

    yield EVENT_CSV_HEADER
    events = audit_events_filtered(**vars(filters)).order_by("sequence").values_list(
        "sequence", "occurred_at", "actor_label", "action", "target_type", "target_id", "target_label",
        "details", "client_ip", "digest",
    )
    for sequence, occurred_at, actor, action, target_type, target_id, label, details, ip, digest in events.iterator(
        chunk_size=2000
    ):
        yield (sequence, occurred_at.isoformat(), actor, action, target_type, target_id, label,
               json.dumps(details, sort_keys=True), ip or "", digest)


# --- Choices for the filters -------------------------------------------------------------------

def filter_choices(*, client_id: int | None = None) -> dict[str, Any]:
    """The options of the matrix filters; accounts only for the chosen client (there are thousands)."""
    return {
        "clients": Client.objects.order_by("name").values_list("pk", "name"),
        "accounts": (AwsAccount.objects.filter(client_id=client_id).order_by("name").values_list("pk", "name")
                     if client_id else []),
        "teams": Team.objects.order_by("name").values_list("pk", "name"),
        "people": User.objects.order_by("username").values_list("pk", "username"),
        "tiers": RoleTemplate.Tier.choices,
    }


# --- The history of one link -------------------------------------------------------------------

def grants_covering_link(*, role: AccountRole) -> QuerySet[Grant]:
    """Every grant that ever covered ``role`` (in force, revoked or expired), newest first."""
    return (
        Grant.objects.filter(Q(account_id=role.account_id) | Q(client_id=role.account.client_id),
                             templates=role.template_id)
        .select_related("team", "person", "granted_by", "revoked_by", "client", "account__client")
        .order_by("-granted_at", "-pk")
    )


def link_uses(*, role: AccountRole | None = None, person: User | None = None,
              client: Client | None = None) -> QuerySet[LinkUse]:
    uses = LinkUse.objects.select_related("person", "account_role__account__client", "grant").order_by(
        "-used_at", "-pk"
    )
    if role is not None:
        uses = uses.filter(account_role=role)
    if person is not None:
        uses = uses.filter(person=person)
    if client is not None:
        uses = uses.filter(account_role__account__client=client)
    return uses


def events_about(*, target: Any) -> QuerySet[AuditEvent]:
    return AuditEvent.objects.filter(target_type=target._meta.label_lower, target_id=str(target.pk)).order_by(
        "-sequence"
    )


def link_history(*, role: AccountRole) -> dict[str, Any]:
    return {
        "role": role,
        "grants": grants_covering_link(role=role),
        "events": events_about(target=role)[:100],
    }


# --- The history of one person -----------------------------------------------------------------

def person_history(*, person: User) -> dict[str, Any]:
    memberships = (TeamMembership.objects.filter(person=person).select_related("team", "added_by", "removed_by")
                   .order_by("-added_at"))
    team_ids = memberships.values("team_id")
    return {
        "person": person,
        "personal_grants": Grant.objects.filter(person=person)
        .select_related("client", "account__client", "granted_by", "revoked_by").prefetch_related("templates")
        .order_by("-granted_at"),
        "team_grants": Grant.objects.filter(team_id__in=team_ids)
        .select_related("team", "client", "account__client", "granted_by", "revoked_by").prefetch_related("templates")
        .order_by("-granted_at"),
        "memberships": memberships,
        "sign_ins": AuditEvent.objects.filter(target_type=User._meta.label_lower, target_id=str(person.pk))
        .filter(Q(action__startswith=SIGN_IN_ACTIONS[0]) | Q(action__startswith=SIGN_IN_ACTIONS[1]))
        .order_by("-sequence")[:100],
    }


# --- Evidence for one client -------------------------------------------------------------------

GRANT_CSV_HEADER = ("grant_id", "to", "team", "person", "scope", "tiers", "reason", "granted_by", "granted_at",
                    "expires_at", "revoked_at", "revoked_by", "revoke_reason")
USE_CSV_HEADER = ("used_at", "person", "client", "account", "aws_account_id", "link", "link_id", "grant_id",
                  "client_ip")


def _iso(value: datetime | None) -> str:
    return value.isoformat() if value else ""


def client_grants(*, client: Client) -> QuerySet[Grant]:
    """Every grant ever made on the client or one of its accounts, in force or not."""
    return Grant.objects.filter(Q(client=client) | Q(account__client=client))


def client_grant_history_rows(*, client: Client) -> Iterator[Sequence[Any]]:
    yield GRANT_CSV_HEADER
    grants = (client_grants(client=client).select_related("team", "person", "account__client", "granted_by",
                                                           "revoked_by")
              .prefetch_related("templates").order_by("granted_at", "pk"))
    # prefetch_related with iterator() needs a chunk size: the tiers come a chunk at a time.
    for grant in grants.iterator(chunk_size=500):
        yield (
            grant.pk, "team" if grant.team_id else "person",
            grant.team.name if grant.team else "", grant.person.username if grant.person else "",
            f"account {grant.account.name} ({grant.account.account_id or 'no id yet'})" if grant.account
            else "whole client",
            " ".join(sorted(t.tier for t in grant.templates.all())),
            grant.reason, grant.granted_by.username, _iso(grant.granted_at), _iso(grant.expires_at),
            _iso(grant.revoked_at), grant.revoked_by.username if grant.revoked_by else "", grant.revoke_reason,
        )


def client_use_rows(*, client: Client) -> Iterator[Sequence[Any]]:
    yield USE_CSV_HEADER
    uses = link_uses(client=client).order_by("used_at", "pk").values_list(
        "used_at", "person__username", "account_role__account__client__name", "account_role__account__name",
        "account_role__account__account_id", "account_role__display_name", "account_role_id", "grant_id",
        "client_ip",
    )
    for used_at, person, client_name, account, aws_id, link, link_id, grant_id, ip in uses.iterator(chunk_size=2000):
        yield (_iso(used_at), person, client_name, account, aws_id or "", link, link_id, grant_id or "", ip or "")
