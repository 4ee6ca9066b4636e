"""Billing's reads: a month's statement per client, its CSV rows, and each client's history.

Finance and managers read every client (billing is the whole Organization's bill); the views check
the capability. Which client an account's costs belong to is decided here, from onboarding's
accounts: a handed-back account is billed to its client up to the month it left the Organization;
costs of accounts Switchyard does not know (or no longer manages) are listed as *unassigned*.

Amounts are ``Decimal`` throughout: AWS's amounts are summed exactly, then each invoice line is
rounded to the cent (half up) after the markup is applied.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.db.models import Min, OuterRef, Subquery, Sum
from django.utils import timezone

from billing.models import ClientBillingTerms, CostFetch, CostLine
from onboarding.models import AwsAccount, Client, OnboardingStep

CENT = Decimal("0.01")
HUNDRED = Decimal("100")
ZERO = Decimal("0")
# Usage first (what the client consumed), then what AWS adds or takes off, in a fixed order.
RECORD_TYPE_ORDER = ("Usage", "Tax", "Support", "Fee", "Credit", "Refund", "DiscountedUsage", "SavingsPlanCoveredUsage")
CLIENTS_CSV_COLUMNS = (
    "client_slug", "client", "month", "record_type", "aws_cost", "markup_percent", "amount_to_invoice", "currency",
    "estimated", "net_unblended_cost", "margin",
)
ACCOUNTS_CSV_COLUMNS = (
    "client_slug", "client", "month", "aws_account_id", "account", "service", "aws_cost", "net_unblended_cost",
    "currency", "estimated", "left_on",
)
INVOICE_CSV_COLUMNS = (
    "client_slug", "client", "month", "record_type", "aws_cost", "markup_percent", "amount_to_invoice", "currency",
    "estimated", "accounts",
)


# --- months (UTC) and the fetches made ------------------------------------------------------------


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


def cents(value: Decimal) -> Decimal:
    # "+ 0" turns a negative zero (a credit rounded away) into a plain zero.
    return value.quantize(CENT, rounding=ROUND_HALF_UP) + 0


def invoiced(aws_cost: Decimal, markup_percent: Decimal) -> Decimal:
    """What to invoice for ``aws_cost`` with ``markup_percent`` on top, to the cent (half up)."""
    return cents(aws_cost * (HUNDRED + markup_percent) / HUNDRED)


def plain(value: Decimal) -> str:
    """An amount as scripts read it: digits, a dot, two decimals; never an exponent."""
    return format(cents(value), "f")


def record_type_key(record_type: str) -> tuple[int, str]:
    try:
        return RECORD_TYPE_ORDER.index(record_type), record_type
    except ValueError:
        return len(RECORD_TYPE_ORDER), record_type


# --------------------------------------------------------------------------------------------------
# Who owns an account's costs in a month
# --------------------------------------------------------------------------------------------------


# What onboarding knows of an account id: (client id, account pk, name, state, day it left).
Known = tuple[int, int, str, str, "date | None"]


@dataclass(frozen=True)
class Owner:
    client_id: int
    account_pk: int
    account_name: str
    left_on: date | None  # the day a handed-back account left the Organization


def _left_on(value: datetime | None) -> date | None:
    return value.date() if value is not None else None


def account_owners() -> dict[str, Known]:
    """Every account id Switchyard knows: (client id, account pk, name, state, day it left)."""
    # Two plain queries (a correlated subquery per account costs more at thousands of accounts).
    left = dict(OnboardingStep.objects.filter(
        account__state=AwsAccount.State.HANDED_BACK, kind=OnboardingStep.Kind.LEAVE_ORGANIZATION,
        status=OnboardingStep.Status.SUCCEEDED,
    ).values_list("account_id", "finished_at"))
    rows = AwsAccount.objects.filter(account_id__isnull=False).values_list(
        "account_id", "client_id", "pk", "name", "state")
    return {str(account_id): (client_id, pk, name, str(state), _left_on(left.get(pk)))
            for account_id, client_id, pk, name, state in rows}


def owner_in(month: date, known: Known | None) -> Owner | None:
    """The client billed for an account's costs in ``month``: None (unassigned) for an unknown
    account, and for a handed-back one after the month it left."""
    if known is None:
        return None
    client_id, pk, name, state, left_on = known
    if state == AwsAccount.State.HANDED_BACK and left_on is not None and left_on.replace(day=1) < month:
        return None
    return Owner(client_id, pk, name, left_on if state == AwsAccount.State.HANDED_BACK else None)


# --------------------------------------------------------------------------------------------------
# The month's statement
# --------------------------------------------------------------------------------------------------


@dataclass
class RecordLine:
    record_type: str
    aws_cost: Decimal
    net_cost: Decimal
    amount_to_invoice: Decimal = ZERO

    @property
    def margin(self) -> Decimal:
        return self.amount_to_invoice - cents(self.aws_cost)


@dataclass
class AccountMonth:
    aws_account_id: str
    name: str  # "" when Switchyard does not know the account
    account_pk: int | None
    left_on: date | None
    lines: dict[str, RecordLine] = field(default_factory=dict)
    currency: str = "USD"

    @property
    def aws_cost(self) -> Decimal:
        return sum((line.aws_cost for line in self.lines.values()), ZERO)

    @property
    def net_cost(self) -> Decimal:
        return sum((line.net_cost for line in self.lines.values()), ZERO)

    @property
    def record_lines(self) -> list[RecordLine]:
        return [self.lines[k] for k in sorted(self.lines, key=record_type_key)]


@dataclass
class Anomaly:
    baseline: Decimal  # the average of the previous months
    months: int
    percent_above: Decimal


@dataclass
class ClientMonth:
    client: Client
    markup_percent: Decimal
    accounts: list[AccountMonth] = field(default_factory=list)
    lines: dict[str, RecordLine] = field(default_factory=dict)
    currency: str = "USD"
    anomaly: Anomaly | None = None

    @property
    def record_lines(self) -> list[RecordLine]:
        return [self.lines[k] for k in sorted(self.lines, key=record_type_key)]

    @property
    def aws_cost(self) -> Decimal:
        """All record types together: credits and refunds (negative) reduce it."""
        return sum((line.aws_cost for line in self.lines.values()), ZERO)

    @property
    def net_cost(self) -> Decimal:
        return sum((line.net_cost for line in self.lines.values()), ZERO)

    @property
    def charges(self) -> Decimal:
        """What AWS charged before credits and refunds."""
        return sum((line.aws_cost for line in self.lines.values() if line.aws_cost > 0), ZERO)

    @property
    def amount_to_invoice(self) -> Decimal:
        return sum((line.amount_to_invoice for line in self.lines.values()), ZERO)

    @property
    def margin(self) -> Decimal:
        return sum((line.margin for line in self.lines.values()), ZERO)


@dataclass
class MonthStatement:
    month: date
    fetch: CostFetch | None  # the fetch whose lines these are (None: never fetched)
    last_attempt: CostFetch | None
    clients: list[ClientMonth]
    unassigned: list[AccountMonth]
    requests_last_day: int
    max_requests_per_day: int
    anomaly_percent: int

    @property
    def estimated(self) -> bool:
        return self.fetch is None or self.fetch.estimated

    @property
    def is_final(self) -> bool:
        return self.fetch is not None and not self.fetch.estimated

    @property
    def aws_cost(self) -> Decimal:
        return sum((c.aws_cost for c in self.clients), ZERO) + sum((a.aws_cost for a in self.unassigned), ZERO)

    @property
    def amount_to_invoice(self) -> Decimal:
        return sum((c.amount_to_invoice for c in self.clients), ZERO)

    @property
    def unassigned_cost(self) -> Decimal:
        return sum((a.aws_cost for a in self.unassigned), ZERO)

    @property
    def previous(self) -> date:
        return previous_month(self.month)

    @property
    def next(self) -> date | None:
        following = date(self.month.year + (self.month.month // 12), self.month.month % 12 + 1, 1)
        return following if following <= current_month() else None


NO_MARKUP = Decimal("0.00")


def markups() -> dict[int, Decimal]:
    """Each client's markup percentage, to two places (clients without terms: 0.00)."""
    return {client_id: percent.quantize(CENT)
            for client_id, percent in ClientBillingTerms.objects.values_list("client_id", "markup_percent")}


def _record_rows(month: date) -> Iterator[tuple[str, str, Decimal, Decimal, str]]:
    return CostLine.objects.filter(month=month, service="").values_list(
        "aws_account_id", "record_type", "unblended_cost", "net_unblended_cost", "currency"
    ).order_by().iterator(chunk_size=5000)


def client_totals_by_month(*, months: Sequence[date], client_ids: Iterable[int] | None = None,
                           owners: dict[str, Known] | None = None) -> dict[int, dict[date, Decimal]]:
    """Each client's AWS cost (all record types) per month, for the charts and the anomaly check."""
    owners = owners if owners is not None else account_owners()
    wanted = set(client_ids) if client_ids is not None else None
    totals: dict[int, dict[date, Decimal]] = defaultdict(dict)
    rows = (CostLine.objects.filter(month__in=list(months), service="").values("month", "aws_account_id")
            .annotate(total=Sum("unblended_cost")).order_by().values_list("month", "aws_account_id", "total"))
    for month, account_id, total in rows:
        owner = owner_in(month, owners.get(account_id))
        if owner is None or (wanted is not None and owner.client_id not in wanted):
            continue
        per_month = totals[owner.client_id]
        per_month[month] = per_month.get(month, ZERO) + total
    return totals


def _months_before(month: date, count: int) -> list[date]:
    months = []
    for _ in range(count):
        month = previous_month(month)
        months.append(month)
    return months


def anomaly_of(total: Decimal, history: Iterable[Decimal], *, percent: int) -> Anomaly | None:
    """Flag ``total`` when it runs more than ``percent`` % above the average of ``history``."""
    previous = list(history)
    if not previous:
        return None
    baseline = sum(previous, ZERO) / len(previous)
    if baseline <= 0 or total <= baseline * (HUNDRED + percent) / HUNDRED:
        return None
    return Anomaly(baseline=baseline, months=len(previous), percent_above=(total - baseline) * HUNDRED / baseline)


def month_statement(*, month: date) -> MonthStatement:
    """The month as fetched: per client its lines by record type (markup applied), its accounts,
    an anomaly flag; the accounts nobody is billed for; and how the fetching stands."""
    fetch = CostFetch.objects.filter(month=month, status=CostFetch.Status.SUCCEEDED).first()
    last_attempt = CostFetch.objects.filter(month=month).first()
    owners = account_owners()
    percent_of = markups()
    clients = {c.pk: c for c in Client.objects.all()}
    by_client: dict[int, ClientMonth] = {}
    accounts: dict[str, AccountMonth] = {}
    unassigned: dict[str, AccountMonth] = {}
    for account_id, record_type, unblended, net, currency in _record_rows(month):
        owner = owner_in(month, owners.get(account_id))
        if owner is None:
            known = owners.get(account_id)
            entry = unassigned.setdefault(account_id, AccountMonth(account_id, known[2] if known else "",
                                                                    known[1] if known else None,
                                                                    known[4] if known else None, currency=currency))
        else:
            statement = by_client.get(owner.client_id)
            if statement is None:
                statement = by_client[owner.client_id] = ClientMonth(
                    client=clients[owner.client_id], markup_percent=percent_of.get(owner.client_id, NO_MARKUP),
                    currency=currency,
                )
            found = accounts.get(account_id)
            if found is None:
                found = accounts[account_id] = AccountMonth(account_id, owner.account_name, owner.account_pk,
                                                            owner.left_on, currency=currency)
                statement.accounts.append(found)
            entry = found
            line = statement.lines.setdefault(record_type, RecordLine(record_type, ZERO, ZERO))
            line.aws_cost += unblended
            line.net_cost += net
        account_line = entry.lines.setdefault(record_type, RecordLine(record_type, ZERO, ZERO))
        account_line.aws_cost += unblended
        account_line.net_cost += net
    for statement in by_client.values():
        for line in statement.lines.values():
            line.amount_to_invoice = invoiced(line.aws_cost, statement.markup_percent)
        statement.accounts.sort(key=lambda a: (a.name, a.aws_account_id))
    percent = settings.SWITCHYARD_BILLING_ANOMALY_PERCENT
    history = client_totals_by_month(months=_months_before(month, settings.SWITCHYARD_BILLING_ANOMALY_BASELINE_MONTHS),
                                     client_ids=by_client, owners=owners)
    for client_id, statement in by_client.items():
        statement.anomaly = anomaly_of(statement.aws_cost, history.get(client_id, {}).values(), percent=percent)
    return MonthStatement(
        month=month, fetch=fetch, last_attempt=last_attempt,
        clients=sorted(by_client.values(), key=lambda c: c.client.name),
        unassigned=sorted(unassigned.values(), key=lambda a: a.aws_account_id),
        requests_last_day=requests_in_last_day(),
        max_requests_per_day=settings.SWITCHYARD_BILLING_MAX_REQUESTS_PER_DAY, anomaly_percent=percent,
    )


def client_month(*, month: date, client: Client) -> ClientMonth | None:
    statement = month_statement(month=month)
    return next((c for c in statement.clients if c.client.pk == client.pk), None)


def month_estimated(month: date) -> bool:
    fetch = CostFetch.objects.filter(month=month, status=CostFetch.Status.SUCCEEDED).first()
    return fetch is None or fetch.estimated


# --------------------------------------------------------------------------------------------------
# CSV rows (streamed by the views through the exports' formula guard)
# --------------------------------------------------------------------------------------------------


def _billed_client(month: date) -> Subquery:
    """The client billed for a cost line's account in ``month``, in SQL (``owner_in``'s rule: none
    for an unknown account, nor for one handed back before the month)."""
    left_before = OnboardingStep.objects.filter(
        kind=OnboardingStep.Kind.LEAVE_ORGANIZATION, status=OnboardingStep.Status.SUCCEEDED,
        finished_at__lt=datetime(month.year, month.month, 1, tzinfo=UTC),
    ).values("account_id")
    return Subquery(
        AwsAccount.objects.filter(account_id=OuterRef("aws_account_id"))
        .exclude(state=AwsAccount.State.HANDED_BACK, pk__in=left_before).values("client_id")[:1]
    )


def clients_csv_rows(*, month: date) -> Iterator[Sequence[Any]]:
    """One row per client × record type (header first). Amounts are ``Decimal`` to the cent, which
    csv writes as plain decimals with a dot (and the formula guard, which only looks at text, leaves
    a negative credit alone).

    The database sums each client's lines (one query, grouped by client and record type), so the
    export stays close to a hand-written query at thousands of accounts."""
    estimated = "true" if month_estimated(month) else "false"
    clients, names = {}, {}
    for pk, slug, name in Client.objects.values_list("pk", "slug", "name"):
        clients[pk], names[pk] = slug, name
    percent_of = markups()
    sums = (CostLine.objects.filter(month=month, service="").annotate(billed_client=_billed_client(month))
            .filter(billed_client__isnull=False).values("billed_client", "record_type")
            .annotate(cost=Sum("unblended_cost"), net=Sum("net_unblended_cost"), unit=Min("currency"))
            .order_by().values_list("billed_client", "record_type", "cost", "net", "unit"))
    yield CLIENTS_CSV_COLUMNS
    label = f"{month:%Y-%m}"
    for client_id, record_type, unblended, net, currency in sorted(
        sums, key=lambda row: (names[row[0]], record_type_key(row[1]))
    ):
        percent = percent_of.get(client_id, NO_MARKUP)
        amount = invoiced(unblended, percent)
        yield (clients[client_id], names[client_id], label, record_type, cents(unblended), percent,
               amount, currency, estimated, cents(net), amount - cents(unblended))


def accounts_csv_rows(*, month: date) -> Iterator[Sequence[Any]]:
    """One row per account × service (header first); unassigned accounts with empty client columns."""
    estimated = "true" if month_estimated(month) else "false"
    clients = {pk: (slug, name) for pk, slug, name in Client.objects.values_list("pk", "slug", "name")}
    owners = account_owners()
    label = f"{month:%Y-%m}"
    yield ACCOUNTS_CSV_COLUMNS
    rows = CostLine.objects.filter(month=month, record_type="").values_list(
        "aws_account_id", "service", "unblended_cost", "net_unblended_cost", "currency"
    ).order_by("aws_account_id", "service")
    for account_id, service, unblended, net, currency in rows.iterator(chunk_size=5000):
        known = owners.get(account_id)
        owner = owner_in(month, known)
        slug, name = clients[owner.client_id] if owner is not None else ("", "")
        left_on = known[4] if known is not None else None
        yield (slug, name, label, account_id, known[2] if known else "", service, cents(unblended), cents(net),
               currency, estimated, left_on.isoformat() if left_on else "")


def invoice_csv_rows(*, month: date, client: Client) -> Iterator[Sequence[Any]]:
    """The invoice summary of one client: one row per record type, then the total."""
    statement = client_month(month=month, client=client)
    estimated = "true" if month_estimated(month) else "false"
    label = f"{month:%Y-%m}"
    yield INVOICE_CSV_COLUMNS
    if statement is None:
        return
    ids = " ".join(a.aws_account_id for a in statement.accounts)
    percent = statement.markup_percent
    for line in statement.record_lines:
        yield (client.slug, client.name, label, line.record_type, cents(line.aws_cost), percent,
               cents(line.amount_to_invoice), statement.currency, estimated, ids)
    yield (client.slug, client.name, label, "Total", cents(statement.aws_cost), percent,
           cents(statement.amount_to_invoice), statement.currency, estimated, ids)


# --------------------------------------------------------------------------------------------------
# History for the charts
# --------------------------------------------------------------------------------------------------


def last_months(month: date, count: int = 12) -> list[date]:
    """``count`` months ending with ``month``, oldest first."""
    return list(reversed([month, *_months_before(month, count - 1)]))


def client_history(*, client: Client, month: date, count: int = 12) -> list[tuple[date, Decimal]]:
    months = last_months(month, count)
    totals = client_totals_by_month(months=months, client_ids=[client.pk]).get(client.pk, {})
    return [(m, totals.get(m, ZERO)) for m in months]


def months_with_costs() -> list[date]:
    return list(CostFetch.objects.filter(status=CostFetch.Status.SUCCEEDED).order_by("-month")
                .values_list("month", flat=True).distinct())
