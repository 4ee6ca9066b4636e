"""Billing's writes: fetching a month from Cost Explorer into the database, and clients' markups.

Cost Explorer charges $0.01 per request, so fetches are rationed: a month AWS has finalised is never
fetched again, and all fetches together stay within ``SWITCHYARD_BILLING_MAX_REQUESTS_PER_DAY`` in
any 24 hours (scheduled and on-demand alike).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.db.models import Sum
from django.http import HttpRequest
from django.utils import timezone

from billing.models import ClientBillingTerms, CostFetch, CostLine
from onboarding.models import Client
from portal import aws
from portal.audit import audit_record
from portal.aws import AwsError, ClientFactory, default_client_factory
from portal.models import User
from portal.notifications import notify
from portal.permissions import FINANCE, MANAGER

logger = logging.getLogger(__name__)

# One month is two questions (by record type, by service), more when AWS pages its answer.
REQUESTS_PER_MONTH = 2
HISTORY_MONTHS = 12


class FetchRefused(Exception):
    """A fetch that Switchyard will not make (the month is final, or today's requests are used up),
    with what to tell the person who asked."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def month_start(value: date) -> date:
    return value.replace(day=1)


def previous_month(month: date) -> date:
    return (month_start(month) - timedelta(days=1)).replace(day=1)


def current_month(now: datetime | None = None) -> date:
    return month_start(timezone.localdate(now or timezone.now(), timezone=timezone.get_fixed_timezone(0)))


def month_is_final(month: date) -> bool:
    """True once a fetch after the month ended found AWS no longer estimating it."""
    return CostFetch.objects.filter(month=month_start(month), status=CostFetch.Status.SUCCEEDED,
                                    estimated=False).exists()


def requests_in_last_day(now: datetime | None = None) -> int:
    since = (now or timezone.now()) - timedelta(hours=24)
    return int(CostFetch.objects.filter(started_at__gte=since).aggregate(n=Sum("requests"))["n"] or 0)


def _refusal(month: date, now: datetime) -> str | None:
    if month > current_month(now):
        return "This month has not started yet: there is nothing to fetch."
    if month_is_final(month):
        return f"AWS has finalised {month:%B %Y}: its costs are kept and never fetched again."
    used, allowed = requests_in_last_day(now), settings.SWITCHYARD_BILLING_MAX_REQUESTS_PER_DAY
    if used + REQUESTS_PER_MONTH > allowed:
        return (f"Switchyard made {used} Cost Explorer requests in the last 24 hours (at most {allowed}, "
                "$0.01 each). Try again later; the scheduled fetch will catch up.")
    return None


def cost_month_fetch(
    *,
    month: date,
    actor: User | None = None,
    clients: ClientFactory | None = None,
    now: datetime | None = None,
) -> CostFetch:
    """Fetch ``month`` from Cost Explorer and replace its cost lines with AWS's answer.

    Raises ``FetchRefused`` without calling AWS when the month is final, has not started, or the
    day's request budget is spent. Otherwise always returns the ``CostFetch`` row: SUCCEEDED (the
    month's lines replaced in one transaction; ``estimated`` until AWS finalises a month that has
    ended) or FAILED (the lines of the previous fetch kept, ``error_*`` saying why). Each outcome
    writes one audit event; the request count is kept either way.
    """
    now = now or timezone.now()
    month = month_start(month)
    with transaction.atomic(durable=True):
        # The month's fetches locked (PostgreSQL): two workers fetching one month decide one after the other.
        CostFetch.objects.select_for_update().filter(month=month).exists()
        refusal = _refusal(month, now)
        if refusal is not None:
            raise FetchRefused(refusal)
        fetch = CostFetch(month=month, started_at=now, requested_by=actor, requests=REQUESTS_PER_MONTH)
        fetch.full_clean()
        fetch.save()
    counter = aws.RequestCounter()
    try:
        costs = aws.month_costs(clients=clients or default_client_factory(), month=month,
                                amortized=settings.SWITCHYARD_BILLING_AMORTIZED, counter=counter)
    except AwsError as error:
        return _fetch_failed(fetch, error, counter.requests)
    return _fetch_succeeded(fetch, costs, now=now)


def _fetch_failed(fetch: CostFetch, error: AwsError, requests: int) -> CostFetch:
    with transaction.atomic(durable=True):
        fetch.status = CostFetch.Status.FAILED
        fetch.finished_at = timezone.now()
        fetch.requests = requests
        fetch.error_code = error.code[:100]
        fetch.error_message = error.plain_message
        fetch.error_retryable = error.retryable
        fetch.save(update_fields=["status", "finished_at", "requests", "error_code", "error_message",
                                  "error_retryable"])
        audit_record(action="billing.month.fetch_failed", actor=fetch.requested_by, target=fetch,
                     details={"month": f"{fetch.month:%Y-%m}", "code": error.code, "message": error.raw_message,
                              "requests": requests})
    logger.warning("billing.fetch.failed", extra={"month": str(fetch.month), "code": error.code})
    return fetch


def _lines(fetch: CostFetch, costs: aws.MonthCosts) -> list[CostLine]:
    lines = []
    for kind, group in (("record_type", costs.by_record_type), ("service", costs.by_service)):
        for cost in group:
            lines.append(CostLine(
                fetch=fetch, month=fetch.month, aws_account_id=cost.account_id,
                record_type=cost.key if kind == "record_type" else "", service=cost.key if kind == "service" else "",
                unblended_cost=cost.amounts.unblended, net_unblended_cost=cost.amounts.net_unblended,
                amortized_cost=cost.amounts.amortized, currency=cost.amounts.currency[:8],
            ))
    return lines


def _fetch_succeeded(fetch: CostFetch, costs: aws.MonthCosts, *, now: datetime) -> CostFetch:
    _, month_end = aws.month_bounds(fetch.month)
    # AWS may call a month final that has not ended (nothing can be charged to it any more?): it has
    # not ended, so it is still month-to-date.
    ended = month_end <= timezone.localdate(now, timezone=timezone.get_fixed_timezone(0))
    with transaction.atomic(durable=True):
        CostLine.objects.filter(month=fetch.month).delete()
        lines = CostLine.objects.bulk_create(_lines(fetch, costs), batch_size=1000)
        fetch.status = CostFetch.Status.SUCCEEDED
        fetch.finished_at = timezone.now()
        fetch.requests = costs.requests
        fetch.estimated = costs.estimated or not ended
        fetch.save(update_fields=["status", "finished_at", "requests", "estimated"])
        audit_record(action="billing.month.fetched", actor=fetch.requested_by, target=fetch,
                     details={"month": f"{fetch.month:%Y-%m}", "estimated": fetch.estimated,
                              "lines": len(lines), "requests": costs.requests})
        cost_anomalies_notify(month=fetch.month)
    return fetch


def cost_anomalies_notify(*, month: date) -> int:
    """Tell finance and the managers, once per client and month (the notice's dedupe key), about
    each client the month's figures flag as an anomaly. Returns how many clients were flagged."""
    from billing.selectors import month_statement

    flagged = [client for client in month_statement(month=month).clients if client.anomaly is not None]
    if not flagged:
        return 0
    readers = list(User.objects.filter(is_active=True, groups__name__in=[FINANCE, MANAGER]).distinct())
    for client in flagged:
        anomaly = client.anomaly
        assert anomaly is not None  # noqa: S101 (filtered above)
        notify(
            event="cost.anomaly", recipients=readers, dedupe_key=f"cost.anomaly:{client.client.pk}:{month:%Y-%m}",
            subject=f"{client.client.name}: {month:%B %Y} runs {anomaly.percent_above:.0f}% above its usual cost",
            body=(f"{client.client.name}'s AWS cost for {month:%B %Y} is {client.aws_cost} {client.currency}, "
                  f"{anomaly.percent_above:.0f}% above the average of its previous {anomaly.months} months "
                  f"({anomaly.baseline:.2f}). See {settings.SWITCHYARD_PORTAL_URL}/billing/{month:%Y-%m}/."),
        )
    return len(flagged)


def stopped_months() -> set[date]:
    """Months whose last fetch failed in a way retrying cannot fix: the schedule leaves them alone
    until a person has fixed the cause and asks again (on demand)."""
    stopped = set()
    seen: set[date] = set()
    for month, status, retryable in CostFetch.objects.order_by("-started_at", "-pk").values_list(
            "month", "status", "error_retryable"):
        if month in seen:
            continue
        seen.add(month)
        if status == CostFetch.Status.FAILED and not retryable:
            stopped.add(month)
    return stopped


def months_due(*, now: datetime | None = None) -> list[date]:
    """What the schedule fetches, most useful first: this month, last month until AWS finalises
    it, then any of the last 12 months never fetched (so the charts fill in); never a month whose
    last fetch failed for good (see :func:`stopped_months`)."""
    this = current_month(now)
    due = [this]
    last = previous_month(this)
    if not month_is_final(last):
        due.append(last)
    fetched = set(CostFetch.objects.filter(status=CostFetch.Status.SUCCEEDED).values_list("month", flat=True))
    month = last
    for _ in range(HISTORY_MONTHS - 2):
        month = previous_month(month)
        if month not in fetched:
            due.append(month)
    stopped = stopped_months()
    return [month for month in due if month not in stopped]


@dataclass(frozen=True)
class ScheduledFetch:
    fetched: tuple[CostFetch, ...]
    refused: tuple[tuple[date, str], ...]


def cost_months_fetch_due(*, clients: ClientFactory | None = None, now: datetime | None = None) -> ScheduledFetch:
    """The scheduled fetch: every month in :func:`months_due` until the day's budget is spent.
    Never raises for AWS: a failed month is recorded on its ``CostFetch`` row."""
    clients = clients or default_client_factory()
    fetched: list[CostFetch] = []
    refused: list[tuple[date, str]] = []
    for month in months_due(now=now):
        try:
            fetched.append(cost_month_fetch(month=month, clients=clients, now=now))
        except FetchRefused as refusal:
            refused.append((month, refusal.message))
    return ScheduledFetch(tuple(fetched), tuple(refused))


def cost_month_refetch_request(*, month: date, actor: User, request: HttpRequest | None = None) -> None:
    """A person asked for ``month`` to be fetched again now. Raises ``FetchRefused`` (nothing
    queued, nothing written) when it would be refused; otherwise records the request and queues
    the fetch for a worker once the transaction commits."""
    from billing.tasks import billing_month_fetch

    month = month_start(month)
    refusal = _refusal(month, timezone.now())
    if refusal is not None:
        raise FetchRefused(refusal)
    with transaction.atomic(durable=True):
        audit_record(action="billing.month.refetch_requested", actor=actor, target_label=f"{month:%Y-%m}",
                     details={"month": f"{month:%Y-%m}"}, request=request)
        transaction.on_commit(lambda: billing_month_fetch.delay(month.isoformat(), actor.pk))


def billing_terms_set(
    *, client: Client, markup_percent: Decimal, actor: User, request: HttpRequest | None = None
) -> ClientBillingTerms:
    """Set the percentage finance adds to (negative: takes off) AWS's cost for ``client``.
    Raises ``ValidationError`` (nothing saved) for a value outside −100…1000 or with more than two
    decimals. Writes one audit event with the old and new values; setting the same value writes none."""
    with transaction.atomic(durable=True):
        terms = ClientBillingTerms.objects.select_for_update().filter(client=client).first()
        old = terms.markup_percent if terms is not None else Decimal("0")
        terms = terms or ClientBillingTerms(client=client)
        terms.markup_percent = markup_percent
        terms.updated_by = actor
        terms.full_clean()
        if terms.pk is not None and old == markup_percent:
            return terms
        terms.save()
        audit_record(action="billing.markup.set", actor=actor, target=client, request=request,
                     details={"from_percent": str(old), "to_percent": str(markup_percent)})
    return terms

