"""Billing's AWS seam: Cost Explorer ``GetCostAndUsage`` in the management account.

One public function, :func:`month_costs`, through the portal's client factory. It returns plain
frozen dataclasses with ``Decimal`` amounts (never float: AWS sends amounts as strings) and raises
:class:`portal.aws.errors.AwsError` for anything AWS refused, with Cost Explorer's own codes
(:data:`portal.aws.messages.COST_EXPLORER_ERRORS`) explained first (its ``LimitExceededException``
is a request-rate limit, retryable, unlike IAM's quota of the same name).

Every request costs $0.01: ``MonthCosts.requests`` says how many were made, pages included.

No Django import at module level.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Final

from portal.aws.clients import ClientFactory, ce_client

if TYPE_CHECKING:  # boto3-stubs, a dev dependency
    from mypy_boto3_ce import CostExplorerClient
    from mypy_boto3_ce.type_defs import GetCostAndUsageRequestTypeDef, GroupTypeDef
from portal.aws.errors import translating
from portal.aws.messages import COST_EXPLORER_ERRORS

UNBLENDED: Final = "UnblendedCost"
NET_UNBLENDED: Final = "NetUnblendedCost"
AMORTIZED: Final = "AmortizedCost"
LINKED_ACCOUNT: Final = "LINKED_ACCOUNT"
RECORD_TYPE: Final = "RECORD_TYPE"
SERVICE: Final = "SERVICE"

@dataclass
class RequestCounter:
    """How many Cost Explorer requests were sent (each is charged), counted even when one fails."""

    requests: int = 0


@dataclass(frozen=True)
class Amounts:
    unblended: Decimal
    net_unblended: Decimal
    amortized: Decimal | None
    currency: str


@dataclass(frozen=True)
class AccountCost:
    """One group of the answer: a linked account and a record type (or a service)."""

    account_id: str
    key: str  # the record type ("Usage", "Credit", "Refund", "Tax", ...) or the service name
    amounts: Amounts


@dataclass(frozen=True)
class MonthCosts:
    month: date
    estimated: bool
    by_record_type: tuple[AccountCost, ...]
    by_service: tuple[AccountCost, ...]
    requests: int


def month_bounds(month: date) -> tuple[date, date]:
    """The first day of ``month`` and of the month after (Cost Explorer's End is exclusive)."""
    start = month.replace(day=1)
    end = date(start.year + 1, 1, 1) if start.month == 12 else date(start.year, start.month + 1, 1)
    return start, end


def _amount(metrics: dict[str, Any], name: str) -> tuple[Decimal, str] | None:
    value = metrics.get(name)
    if value is None:
        return None
    return Decimal(str(value.get("Amount") or "0")), str(value.get("Unit") or "USD")


def _groups(
    ce: CostExplorerClient, request: GetCostAndUsageRequestTypeDef, counter: RequestCounter
) -> Iterator[tuple[bool, GroupTypeDef]]:
    token: str | None = None
    while True:
        counter.requests += 1
        page = ce.get_cost_and_usage(**request, **({"NextPageToken": token} if token else {}))
        for period in page.get("ResultsByTime", []):
            for group in period.get("Groups", []):
                yield bool(period.get("Estimated", False)), group
            if not period.get("Groups") and period.get("Estimated"):
                yield True, {}
        token = page.get("NextPageToken")
        if not token:
            return


def _costs(ce: CostExplorerClient, *, month: date, key: str, metrics: list[str], counter: RequestCounter,
           estimated: list[bool]) -> tuple[AccountCost, ...]:
    start, end = month_bounds(month)
    request: GetCostAndUsageRequestTypeDef = {
        "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()},
        "Granularity": "MONTHLY",
        "Metrics": metrics,
        "GroupBy": [{"Type": "DIMENSION", "Key": LINKED_ACCOUNT}, {"Type": "DIMENSION", "Key": key}],
    }
    costs = []
    for period_estimated, group in _groups(ce, request, counter):
        estimated[0] = estimated[0] or period_estimated
        if not group:
            continue
        keys = list(group.get("Keys", []))
        if len(keys) != 2:
            continue
        raw = group.get("Metrics", {})
        unblended = _amount(raw, UNBLENDED) or (Decimal("0"), "USD")
        net = _amount(raw, NET_UNBLENDED) or unblended
        amortized = _amount(raw, AMORTIZED)
        costs.append(AccountCost(
            account_id=str(keys[0]), key=str(keys[1]),
            amounts=Amounts(unblended=unblended[0], net_unblended=net[0],
                            amortized=amortized[0] if amortized else None, currency=unblended[1]),
        ))
    return tuple(costs)


@translating(COST_EXPLORER_ERRORS)
def month_costs(
    *, clients: ClientFactory, month: date, amortized: bool = False, counter: RequestCounter | None = None
) -> MonthCosts:
    """What consolidated billing charged each linked account in ``month``: by record type (usage,
    credits, refunds, tax, support, fees: separate lines), and by AWS service.

    Two ``GetCostAndUsage`` questions (MONTHLY, grouped by LINKED_ACCOUNT and RECORD_TYPE, then by
    LINKED_ACCOUNT and SERVICE), every page of each; ``estimated`` is True when AWS says any part of
    the month is still an estimate. Raises ``AwsError``; ``counter`` (when given) has counted the
    requests sent before it, the failed one included."""
    ce = ce_client(clients)
    metrics = [UNBLENDED, NET_UNBLENDED] + ([AMORTIZED] if amortized else [])
    counter = counter if counter is not None else RequestCounter()
    estimated = [False]
    by_record_type = _costs(ce, month=month, key=RECORD_TYPE, metrics=metrics, counter=counter, estimated=estimated)
    by_service = _costs(ce, month=month, key=SERVICE, metrics=metrics, counter=counter, estimated=estimated)
    return MonthCosts(month=month_bounds(month)[0], estimated=estimated[0], by_record_type=by_record_type,
                      by_service=by_service, requests=counter.requests)
