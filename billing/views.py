"""Billing (/billing/): each client's monthly AWS cost, ready to invoice.

Finance and managers read every page and export; finance alone sets markups; finance and managers
may ask for a month to be fetched again. Everyone else gets 403.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal

from django.contrib import messages
from django.http import Http404, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from billing import selectors, services
from billing.charts import bar_chart
from billing.converters import MonthConverter
from billing.forms import MarkupForm
from billing.models import ClientBillingTerms
from onboarding.models import Client
from portal.people.http import AuthenticatedRequest
from portal.people.permissions import FINANCE, MANAGER, capability_required
from portal.web.downloads import streamed_csv

READERS = (FINANCE, MANAGER)
MONTH_RE = re.compile(MonthConverter.regex)
TOP_CLIENTS = 10


def _month(value: str) -> date:
    try:
        month = date.fromisoformat(f"{value}-01")
    except ValueError as exc:
        raise Http404("No such month.") from exc
    if month > selectors.current_month():
        raise Http404("That month has not started yet.")
    return month


def _top_clients_chart(statement: selectors.MonthStatement) -> object:
    top = sorted(statement.clients, key=lambda c: c.aws_cost, reverse=True)[:TOP_CLIENTS]
    flagged = frozenset(c.client.slug for c in top if c.anomaly)
    return bar_chart(
        f"Top clients, {statement.month:%B %Y}",
        [(c.client.slug, c.aws_cost, selectors.plain(c.aws_cost)) for c in top],
        flagged=flagged,
    )


@require_GET
@capability_required(*READERS)
def index(request: AuthenticatedRequest) -> HttpResponse:
    """The current month (month-to-date, estimated)."""
    return _month_page(request, selectors.current_month())


@require_GET
@capability_required(*READERS)
def month(request: AuthenticatedRequest, month: str) -> HttpResponse:
    return _month_page(request, _month(month))


def _month_page(request: AuthenticatedRequest, month: date) -> HttpResponse:
    statement = selectors.month_statement(month=month)
    return render(request, "billing/month.html", {
        "statement": statement, "chart": _top_clients_chart(statement) if statement.clients else None,
        "months": selectors.last_months(selectors.current_month(), 13)[::-1],
        "can_set_markup": request.user.is_finance,
    })


@require_GET
@capability_required(*READERS)
def clients_csv(request: AuthenticatedRequest, month: str) -> HttpResponseBase:
    chosen = _month(month)
    return streamed_csv(selectors.clients_csv_rows(month=chosen), f"switchyard-billing-{chosen:%Y-%m}-clients.csv")


@require_GET
@capability_required(*READERS)
def accounts_csv(request: AuthenticatedRequest, month: str) -> HttpResponseBase:
    chosen = _month(month)
    return streamed_csv(selectors.accounts_csv_rows(month=chosen),
                         f"switchyard-billing-{chosen:%Y-%m}-accounts.csv")


@require_POST
@capability_required(*READERS)
def refetch(request: AuthenticatedRequest, month: str) -> HttpResponse:
    chosen = _month(month)
    try:
        services.cost_month_refetch_request(month=chosen, actor=request.user, request=request)
    except services.FetchRefused as refusal:
        messages.error(request, refusal.message)
    else:
        messages.success(request, f"Switchyard is fetching {chosen:%B %Y} from Cost Explorer again.")
    return redirect("billing:month", month=chosen)


@require_GET
@capability_required(*READERS)
def invoice(request: AuthenticatedRequest, month: str, client_id: int) -> HttpResponse:
    """The printable invoice summary of one client, with its last 12 months as a chart."""
    chosen = _month(month)
    client = get_object_or_404(Client, pk=client_id)
    statement = selectors.client_month(month=chosen, client=client)
    history = selectors.client_history(client=client, month=chosen)
    chart = bar_chart(
        f"{client.name}: AWS cost, last 12 months",
        [(f"{m:%Y-%m}", total, selectors.plain(total)) for m, total in history],
        currency=statement.currency if statement else "USD",
        flagged=frozenset({f"{chosen:%Y-%m}"}) if statement and statement.anomaly else frozenset(),
        links={f"{m:%Y-%m}": reverse("billing:invoice", kwargs={"month": m, "client_id": client.pk})
               for m, _ in history},
        shown={f"{m:%Y-%m}": f"{m:%b %y}" for m, _ in history},
    )
    return render(request, "billing/invoice.html", {
        "client": client, "month": chosen, "statement": statement, "chart": chart, "history": history,
        "estimated": selectors.month_estimated(chosen),
    })


@require_GET
@capability_required(*READERS)
def invoice_csv(request: AuthenticatedRequest, month: str, client_id: int) -> HttpResponseBase:
    chosen = _month(month)
    client = get_object_or_404(Client, pk=client_id)
    return streamed_csv(selectors.invoice_csv_rows(month=chosen, client=client),
                         f"switchyard-invoice-{client.slug}-{chosen:%Y-%m}.csv")


@require_http_methods(["GET", "POST"])
@capability_required(FINANCE)
def markup(request: AuthenticatedRequest, client_id: int) -> HttpResponse:
    """Finance sets the client's markup (negative: a discount); the change is audited."""
    client = get_object_or_404(Client, pk=client_id)
    terms = ClientBillingTerms.objects.filter(client=client).first() or ClientBillingTerms(client=client)
    back = _month_or_none(request.GET.get("month", ""))  # the month page to go back to
    form = MarkupForm(request.POST or None, instance=terms)
    if request.method == "POST" and form.is_valid():
        percent: Decimal = form.cleaned_data["markup_percent"]
        services.billing_terms_set(client=client, markup_percent=percent, actor=request.user,
                                   request=request)
        messages.success(request, f"{client.name}: markup set to {percent} %.")
        return redirect("billing:month", month=back) if back else redirect("billing:index")
    return render(request, "billing/markup.html", {"client": client, "form": form, "month": back})


def _month_or_none(value: str) -> date | None:
    try:
        return _month(value) if MONTH_RE.fullmatch(value) else None
    except Http404:
        return None
