"""Personal API tokens: created (shown once), looked up on every call, revoked.

A token is ``sy_<prefix>_<secret>``: the prefix (not secret) finds the row, the SHA-256 of the
whole token is what is stored and compared. Nothing else about the secret is kept or logged.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from portal.api.models import ApiToken
from portal.audit import audit_record
from portal.people.models import User

TOKEN_PATTERN = re.compile(r"sy_([a-z0-9]{12})_([A-Za-z0-9_-]{43})")
# last_used_at is written at most this often per token, so a busy script does not write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class NewToken:
    token: ApiToken
    secret: str  # the whole bearer value: shown once, never stored


@transaction.atomic(durable=True)
def api_token_create(
    *, owner: User, name: str, scope: str, lifetime_days: int, request: HttpRequest | None = None
) -> NewToken:
    """Create a token for ``owner`` valid for ``lifetime_days`` (1–90) from now. Returns the row
    and the bearer value, which exists only in this return value. Raises ``ValidationError``
    (nothing saved) for a blank name, an unknown scope or a lifetime out of range. Audited
    (``api_token.created``)."""
    errors: dict[str, str] = {}
    if not (name or "").strip():
        errors["name"] = "Say what the token is for."
    if scope not in ApiToken.Scope.values:
        errors["scope"] = "Choose read or read-write."
    if not 1 <= lifetime_days <= ApiToken.MAX_LIFETIME_DAYS:
        errors["lifetime_days"] = f"A token lasts 1 to {ApiToken.MAX_LIFETIME_DAYS} days."
    if errors:
        raise ValidationError(errors)
    now = timezone.now()
    prefix = "".join(secrets.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(12))
    secret = f"sy_{prefix}_{secrets.token_urlsafe(32)}"
    token = ApiToken(owner=owner, name=name.strip(), scope=scope, prefix=prefix, secret_hash=_digest(secret),
                     created_at=now, expires_at=now + timedelta(days=lifetime_days))
    token.full_clean()
    token.save()
    audit_record(action="api_token.created", actor=owner, target=token, request=request,
                 details={"api_token": token.audit_label, "expires_at": token.expires_at.isoformat()})
    return NewToken(token=token, secret=secret)


@transaction.atomic
def api_token_revoke(*, token: ApiToken, revoked_by: User, request: HttpRequest | None = None) -> ApiToken:
    """Revoke ``token`` now: its next call answers 401. Idempotent (a revoked token is returned
    unchanged, no second event). Audited (``api_token.revoked``)."""
    locked = ApiToken.objects.select_for_update().get(pk=token.pk)
    if locked.revoked_at is not None:
        return locked
    locked.revoked_at = timezone.now()
    locked.save(update_fields=["revoked_at"])
    audit_record(action="api_token.revoked", actor=revoked_by, target=locked, request=request,
                 details={"api_token": locked.audit_label})
    return locked


def api_tokens_of_person(*, person: User) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(owner=person).order_by("-created_at", "-pk")


def api_token_of_person(*, person: User, token_id: int) -> ApiToken | None:
    return api_tokens_of_person(person=person).filter(pk=token_id).first()


def api_token_for_bearer(value: str, *, now: datetime | None = None) -> ApiToken | None:
    """The token in force that ``value`` is, with its owner, or None (malformed, unknown, wrong
    secret, expired, revoked, or an owner who was deactivated). Notes the use (at most once a
    minute per token)."""
    match = TOKEN_PATTERN.fullmatch(value)
    if match is None:
        return None
    # The owner's capabilities are read here, on every call: a removed one counts at once.
    token = ApiToken.objects.select_related("owner").prefetch_related("owner__groups").filter(
        prefix=match.group(1)).first()
    if token is None or not hmac.compare_digest(token.secret_hash, _digest(value)):
        return None
    moment = now or timezone.now()
    if not token.in_force_at(moment) or not token.owner.is_active:
        return None
    if token.last_used_at is None or moment - token.last_used_at >= LAST_USED_RESOLUTION:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=moment)
        token.last_used_at = moment
    return token
