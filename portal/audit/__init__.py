"""The audit log: append-only, HMAC-chained events.

``audit_record`` is the only writer. Each event's digest covers its own content and the previous
event's digest, keyed with a key derived from ``SWITCHYARD_ENCRYPTION_KEY``, so a row cannot be
edited, removed or forged without ``audit_verify`` naming it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from django.conf import settings
from django.db import models, transaction
from django.http import HttpRequest
from django.utils import timezone

from portal.audit.models import AuditChainHead, AuditEvent
from portal.people.models import User

logger = logging.getLogger(__name__)

GENESIS_DIGEST = "0" * 64


def _chain_key() -> bytes:
    return hashlib.sha256(b"switchyard-audit-chain:" + settings.SWITCHYARD_ENCRYPTION_KEY.encode()).digest()


def compute_digest(
    *,
    previous_digest: str,
    sequence: int,
    occurred_at: datetime,
    actor_id: int | None,
    actor_label: str,
    action: str,
    target_type: str,
    target_id: str,
    target_label: str,
    details: dict[str, Any],
    client_ip: str | None,
) -> str:
    payload = json.dumps(
        [
            previous_digest,
            sequence,
            occurred_at.astimezone(UTC).isoformat(timespec="microseconds"),
            actor_id,
            actor_label,
            action,
            target_type,
            target_id,
            target_label,
            details,
            client_ip,
        ],
        sort_keys=True,
        separators=(",", ":"),
        default=str,
    )
    return hmac.new(_chain_key(), payload.encode(), hashlib.sha256).hexdigest()


def _event_digest(event: AuditEvent, previous_digest: str) -> str:
    return compute_digest(
        previous_digest=previous_digest,
        sequence=event.sequence,
        occurred_at=event.occurred_at,
        actor_id=event.actor_id,
        actor_label=event.actor_label,
        action=event.action,
        target_type=event.target_type,
        target_id=event.target_id,
        target_label=event.target_label,
        details=event.details,
        client_ip=event.client_ip,
    )


def client_ip_of(request: HttpRequest | None) -> str | None:
    if request is None:
        return None
    return request.META.get("REMOTE_ADDR") or None


def audit_record(
    *,
    action: str,
    actor: User | None = None,
    target: models.Model | None = None,
    target_label: str = "",
    details: dict[str, Any] | None = None,
    request: HttpRequest | None = None,
    client_ip: str | None = None,
    occurred_at: datetime | None = None,
) -> AuditEvent:
    """Append one event to the chain and return it.

    Runs in its own (nested) transaction with the chain head locked, so concurrent writers queue
    up and the chain stays linear. If the surrounding transaction rolls back, the event goes too:
    an event is only kept when the change it describes is.
    """
    if actor is None and request is not None and request.user.is_authenticated:
        actor = request.user
    # A change made through the API names the token it was made with (portal.api.authentication).
    api_token = getattr(request, "api_token", None)
    if api_token is not None:
        details = {**(details or {}), "api_token": api_token.audit_label}
    # Round-trip through JSON so the digest is computed over exactly what the database returns.
    clean_details = json.loads(json.dumps(details or {}, default=str))
    with transaction.atomic():
        head, _ = AuditChainHead.objects.select_for_update().get_or_create(pk=1)
        event = AuditEvent(
            sequence=head.last_sequence + 1,
            occurred_at=occurred_at or timezone.now(),
            actor=actor,
            actor_label=(actor.get_username() if actor else "system"),
            action=action,
            target_type=(target._meta.label_lower if target is not None else ""),
            target_id=(str(target.pk) if target is not None else ""),
            target_label=(target_label or (str(target) if target is not None else ""))[:255],
            details=clean_details,
            client_ip=client_ip or client_ip_of(request),
            previous_digest=head.last_digest,
        )
        event.digest = _event_digest(event, head.last_digest)
        event.save()
        head.last_sequence = event.sequence
        head.last_digest = event.digest
        head.save(update_fields=["last_sequence", "last_digest"])
    logger.info("audit.%s", action, extra={"sequence": event.sequence, "target": event.target_id})
    return event


@dataclass(frozen=True)
class ChainReport:
    intact: bool
    events_checked: int
    first_bad_sequence: int | None = None
    problem: str = ""


def _events_in_order() -> Iterator[AuditEvent]:
    return AuditEvent.objects.order_by("sequence").iterator(chunk_size=2000)


def audit_verify_chain() -> ChainReport:
    """Walk the whole chain in order. Reports the first event that was edited (digest mismatch),
    follows a deleted one (sequence gap or broken link) or was inserted (digest mismatch or
    sequence out of place), and a chain whose newest events were cut off (head mismatch)."""
    previous_digest = GENESIS_DIGEST
    expected_sequence = 1
    checked = 0
    for event in _events_in_order():
        checked += 1
        if event.sequence != expected_sequence:
            return ChainReport(
                False, checked, event.sequence,
                f"event #{event.sequence} follows #{expected_sequence - 1}: "
                f"event #{expected_sequence} is missing",
            )
        if event.previous_digest != previous_digest:
            return ChainReport(False, checked, event.sequence,
                               f"event #{event.sequence} does not link to the event before it")
        if not hmac.compare_digest(event.digest, _event_digest(event, previous_digest)):
            return ChainReport(False, checked, event.sequence,
                               f"event #{event.sequence} ({event.action}) was altered or forged")
        previous_digest = event.digest
        expected_sequence += 1
    head = AuditChainHead.objects.filter(pk=1).first()
    if head is not None and head.last_sequence != expected_sequence - 1:
        return ChainReport(False, checked, expected_sequence,
                           f"the chain ends at #{expected_sequence - 1} but #{head.last_sequence} was written")
    return ChainReport(True, checked)
