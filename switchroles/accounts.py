"""The clients and AWS accounts that switchroles' rows point at.

They are onboarding's, and onboarding sits above switchroles: it provisions and retires roles as it
takes an account through its life, so switchroles never imports it. Switchroles' tables already
point at those two through foreign keys; these functions reach the models through those keys.
Annotations name them under ``TYPE_CHECKING`` (never imported at run time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from django.db.models import QuerySet

from switchroles.models import Grant

if TYPE_CHECKING:
    from onboarding.models import AwsAccount, Client


def account_model() -> type[AwsAccount]:
    """``onboarding.models.AwsAccount``, through ``Grant.account``."""
    return cast("type[AwsAccount]", Grant.account.field.related_model)


def client_model() -> type[Client]:
    """``onboarding.models.Client``, through ``Grant.client``."""
    return cast("type[Client]", Grant.client.field.related_model)


def active_accounts() -> QuerySet[AwsAccount]:
    """The accounts in use: ACTIVE, with their AWS account id known."""
    accounts = account_model()
    return accounts.objects.filter(state=accounts.State.ACTIVE, account_id__isnull=False)


def ended_account_states() -> tuple[str, ...]:
    """An account in one of these states left Switchyard (handed back) or never became one."""
    state = account_model().State
    return (state.HANDED_BACK, state.CANCELLED, state.DECLINED, state.EXPIRED)
