"""The sandbox has money: 12 months of plausible costs for the demo accounts, in moto's Cost Explorer.

moto answers ``GetCostAndUsage`` with what is queued at ``<endpoint>/moto-api/static/ce/cost-and-usage-results``
(a FIFO: the first request with a given body takes the next answer and keeps returning it). So the
answers are queued in exactly the order ``billing.services.cost_month_fetch`` asks (per month: by
record type, then by service), and each month is fetched right after its answers are queued: the
view, the charts and the CSV are populated on first start, and later scheduled fetches of the same
month get the same answer.

The demo accounts' ids are known before the workers create them: the sandbox's moto derives them
from the root e-mail (``portal.sandbox_aws``). One account in the bill is not in Switchyard, so the
"unassigned" list has something to show. Refuses to run outside the sandbox.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

import requests
from django.conf import settings
from django.utils import timezone

from billing.models import CostFetch
from billing.services import FetchRefused, cost_month_fetch, current_month, month_is_final, previous_month
from portal.aws import ClientFactory, month_bounds
from portal.sandbox import require_sandbox
from portal.sandbox_aws import account_id_for_email

logger = logging.getLogger(__name__)

MONTHS = 12
UNASSIGNED_ACCOUNT_ID = "210987654321"  # "shared services": in the bill, not in Switchyard
CENT = Decimal("0.01")
MOTO_IN_PROCESS = "http://motoapi.amazonaws.com"


@dataclass(frozen=True)
class DemoAccount:
    account_id: str
    monthly_usage: Decimal  # a typical month's usage
    services: tuple[tuple[str, Decimal], ...]  # share of usage per service


_PRODUCTION = (("Amazon Elastic Compute Cloud - Compute", Decimal("0.46")),
               ("Amazon Relational Database Service", Decimal("0.27")),
               ("Amazon Simple Storage Service", Decimal("0.09")),
               ("AWS Data Transfer", Decimal("0.08")),
               ("AmazonCloudWatch", Decimal("0.10")))
_STAGING = (("Amazon Elastic Compute Cloud - Compute", Decimal("0.62")),
            ("Amazon Relational Database Service", Decimal("0.25")),
            ("Amazon Simple Storage Service", Decimal("0.13")))


def demo_accounts() -> list[DemoAccount]:
    from onboarding.sandbox import DEMO_CLIENTS
    from onboarding.selectors import suggested_root_email

    usage = {"production": Decimal("1480"), "staging": Decimal("260")}
    accounts = []
    for slug, names in ((slug, [name for name, _ in accounts_]) for slug, accounts_ in DEMO_CLIENTS.values()):
        for name in names:
            email = suggested_root_email(client_slug=slug, account_name=name)
            scale = Decimal("0.6") if slug == "globex" else Decimal("1")
            accounts.append(DemoAccount(account_id_for_email(email), usage.get(name, Decimal("300")) * scale,
                                        _PRODUCTION if name == "production" else _STAGING))
    accounts.append(DemoAccount(UNASSIGNED_ACCOUNT_ID, Decimal("95"), _STAGING))
    return accounts


def _wobble(account_id: str, month: date) -> Decimal:
    """A repeatable factor between 0.85 and 1.15 for an account's month."""
    digest = hashlib.sha256(f"{account_id}:{month:%Y-%m}".encode()).digest()
    return Decimal("0.85") + Decimal(digest[0]) / Decimal(255) * Decimal("0.30")


def _metrics(amount: Decimal) -> dict[str, Any]:
    value = str(amount.quantize(Decimal("0.0000000001")))
    return {"UnblendedCost": {"Amount": value, "Unit": "USD"}, "NetUnblendedCost": {"Amount": value, "Unit": "USD"}}


def _answer(month: date, groups: list[tuple[str, str, Decimal]], *, estimated: bool) -> dict[str, Any]:
    start, end = month_bounds(month)
    return {
        "ResultsByTime": [{
            "TimePeriod": {"Start": start.isoformat(), "End": end.isoformat()}, "Total": {},
            "Groups": [{"Keys": [account, key], "Metrics": _metrics(amount)} for account, key, amount in groups],
            "Estimated": estimated,
        }],
        "DimensionValueAttributes": [],
    }


def month_answers(month: date, *, today: date) -> tuple[dict[str, Any], dict[str, Any]]:
    """Cost Explorer's two answers for ``month``: by record type, by service. The current month is
    month-to-date and estimated; the previous month runs high for Globex (an anomaly to see)."""
    this = current_month()
    estimated = month >= this
    elapsed = Decimal(today.day) / Decimal(31) if month == this else Decimal(1)
    by_record: list[tuple[str, str, Decimal]] = []
    by_service: list[tuple[str, str, Decimal]] = []
    for index, account in enumerate(demo_accounts()):
        usage = (account.monthly_usage * _wobble(account.account_id, month) * elapsed).quantize(CENT)
        if month == previous_month(this) and index == 2:  # Globex production
            usage = (usage * Decimal("1.7")).quantize(CENT)
        lines = [("Usage", usage), ("Tax", (usage * Decimal("0.08")).quantize(CENT))]
        if account.monthly_usage >= 800:
            lines.append(("Support", (usage * Decimal("0.10")).quantize(CENT)))
        if month.month % 4 == 0 and month != this and account.account_id != UNASSIGNED_ACCOUNT_ID:
            lines.append(("Credit", Decimal("-100.00")))
        if month.month == 6 and index == 0:
            lines.append(("Refund", Decimal("-42.17")))
        by_record += [(account.account_id, kind, amount) for kind, amount in lines if amount]
        total = sum((amount for _, amount in lines), Decimal(0))
        for service, share in account.services:
            by_service.append((account.account_id, service, (total * share).quantize(CENT)))
    return _answer(month, by_record, estimated=estimated), _answer(month, by_service, estimated=estimated)


def _queue(answers: list[dict[str, Any]]) -> None:
    # The sandbox's moto server; without an endpoint, moto in-process (tests), which answers there.
    endpoint = settings.AWS_ENDPOINT_URL.rstrip("/") or MOTO_IN_PROCESS
    response = requests.post(f"{endpoint}/moto-api/static/ce/cost-and-usage-results",
                             json={"results": answers, "account_id": settings.SWITCHYARD_MAIN_ACCOUNT_ID}, timeout=10)
    response.raise_for_status()


def sandbox_costs_ensure(*, clients: ClientFactory, aws_started_empty: bool = True) -> list[CostFetch]:
    """Queue and fetch the demo costs of the last 12 months: each month never fetched, and, when
    moto started empty (it forgot the answers it had bound), each month not final yet, so later
    scheduled fetches of it get the same answer again. A final month is never queued nor fetched
    again; with moto still running, a month already fetched keeps the answer moto bound to it."""
    require_sandbox()
    fetched_months = set(CostFetch.objects.filter(status=CostFetch.Status.SUCCEEDED).values_list("month", flat=True))
    today = timezone.localdate()
    fetched = []
    month = current_month()
    months = []
    for _ in range(MONTHS):
        months.append(month)
        month = previous_month(month)
    for month in reversed(months):
        if month_is_final(month) or (month in fetched_months and not aws_started_empty):
            continue
        _queue(list(month_answers(month, today=today)))
        try:
            fetched.append(cost_month_fetch(month=month, clients=clients))
        except FetchRefused as refusal:
            logger.warning("sandbox.costs.refused", extra={"month": str(month), "reason": refusal.message})
    return fetched
