"""A leaver's API tokens end with them: the leaver action (``switchroles.leavers``) runs this step
with its own, registered at start-up by ``portal.apps`` (the API depends on switchroles, never the
other way round)."""

from __future__ import annotations

from django.db.models import QuerySet
from django.http import HttpRequest
from django.utils import timezone

from portal.api.models import ApiToken
from portal.api.tokens import api_token_revoke, api_tokens_of_person
from portal.people.models import User
from switchroles.leavers import LeaverStep, leaver_step_register


def _tokens_in_force(person: User) -> QuerySet[ApiToken]:
    return api_tokens_of_person(person=person).filter(revoked_at__isnull=True, expires_at__gt=timezone.now())


def _line(token: ApiToken) -> str:
    return f"API token {token.name} ({token.prefix}…, {token.get_scope_display().lower()})"


def _preview(person: User) -> list[str]:
    return [_line(token) for token in _tokens_in_force(person)]


def _revoke(*, person: User, left_by: User, reason: str, request: HttpRequest | None) -> list[str]:
    revoked = []
    for token in _tokens_in_force(person):
        api_token_revoke(token=token, revoked_by=left_by, request=request)
        revoked.append(_line(token))
    return revoked


def register() -> None:
    leaver_step_register(LeaverStep("api_tokens", "API tokens", _preview, _revoke))
