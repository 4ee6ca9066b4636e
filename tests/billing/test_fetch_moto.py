"""Fetching a month from Cost Explorer (moto, with queued answers) and what finance then reads."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from billing import selectors, services
from billing.models import ClientBillingTerms, CostFetch, CostLine
from onboarding.models import AwsAccount, OnboardingStep
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from tests.billing.conftest import Book, CountingFactory, ce_answer, queue
from tests.factories import make_account

pytestmark = pytest.mark.django_db

LAST = services.previous_month(services.current_month())


def _csv(response: object) -> list[dict[str, str]]:
    body = b"".join(response.streaming_content).decode()  # type: ignore[attr-defined]
    return list(csv.DictReader(io.StringIO(body)))


def _fetch_last_month(cost_explorer: Boto3ClientFactory, record_types: list[tuple[str, str, str, str]],
                      services_: list[tuple[str, str, str, str]] | None = None) -> CostFetch:
    queue(ce_answer(LAST, record_types), ce_answer(LAST, services_ or []))
    return services.cost_month_fetch(month=LAST, clients=cost_explorer)


def test_a_clients_total_is_the_sum_of_its_accounts_lines(cost_explorer: Boto3ClientFactory, book: Book) -> None:
    # Given Cost Explorer's answer for last month: two Acme accounts and one Globex account
    _fetch_last_month(cost_explorer, [
        ("111111111111", "Usage", "120.1234567891", "118.00"),
        ("111111111111", "Tax", "12.01", "12.01"),
        ("111111111112", "Usage", "30.0000000009", "30.00"),
        ("222222222222", "Usage", "75.50", "75.50"),
    ])

    # When finance reads the month
    statement = selectors.month_statement(month=LAST)

    # Then each client's total is exactly the sum of its accounts' lines
    acme, globex = statement.clients
    assert acme.client == book.acme and globex.client == book.globex
    assert [a.aws_account_id for a in acme.accounts] == ["111111111111", "111111111112"]
    assert acme.aws_cost == sum((a.aws_cost for a in acme.accounts), Decimal(0)) == Decimal("162.1334567900")
    assert {line.record_type: line.aws_cost for line in acme.record_lines} == {
        "Usage": Decimal("150.1234567900"), "Tax": Decimal("12.0100000000")}
    assert globex.aws_cost == Decimal("75.50")
    assert statement.unassigned == []


def test_credits_and_refunds_are_lines_of_their_own_that_reduce_the_total(
    cost_explorer: Boto3ClientFactory, book: Book, finance_browser: HttpClient
) -> None:
    # Given usage, a credit and a refund on one Acme account
    _fetch_last_month(cost_explorer, [
        ("111111111111", "Usage", "200.00", "200.00"),
        ("111111111111", "Credit", "-50.00", "-50.00"),
        ("111111111111", "Refund", "-10.25", "-10.25"),
    ])

    # When finance reads the month and downloads its CSV
    acme = selectors.month_statement(month=LAST).clients[0]
    rows = _csv(finance_browser.get(reverse("billing:clients_csv", kwargs={"month": LAST})))

    # Then the credit and the refund are separate lines, and the total is what is left after them
    assert [(line.record_type, line.aws_cost) for line in acme.record_lines] == [
        ("Usage", Decimal("200.00")), ("Credit", Decimal("-50.00")), ("Refund", Decimal("-10.25"))]
    assert acme.charges == Decimal("200.00")
    assert acme.aws_cost == Decimal("139.75")
    assert [(r["record_type"], r["aws_cost"]) for r in rows] == [("Usage", "200.00"), ("Credit", "-50.00"),
                                                                ("Refund", "-10.25")]


def test_the_markup_is_applied_exactly_to_the_cent_with_the_currency_shown(
    cost_explorer: Boto3ClientFactory, book: Book, finance_browser: HttpClient
) -> None:
    # Given a 12.5 % markup for Acme and costs that floats would get wrong
    ClientBillingTerms.objects.create(client=book.acme, markup_percent=Decimal("12.5"))
    _fetch_last_month(cost_explorer, [
        ("111111111111", "Usage", "100.10", "100.10"),
        ("111111111112", "Usage", "0.20", "0.20"),
        ("111111111111", "Credit", "-0.05", "-0.05"),
    ])

    # When finance downloads the clients CSV and opens the page
    rows = _csv(finance_browser.get(reverse("billing:clients_csv", kwargs={"month": LAST})))
    page = finance_browser.get(reverse("billing:month", kwargs={"month": LAST})).content.decode()

    # Then 100.30 × 1.125 = 112.8375 → 112.84 and −0.05 × 1.125 = −0.05625 → −0.06, half up, in USD
    assert list(rows[0])[:9] == ["client_slug", "client", "month", "record_type", "aws_cost", "markup_percent",
                                 "amount_to_invoice", "currency", "estimated"]
    assert [(r["client_slug"], r["record_type"], r["aws_cost"], r["markup_percent"], r["amount_to_invoice"],
             r["currency"], r["month"], r["estimated"]) for r in rows] == [
        ("acme", "Usage", "100.30", "12.50", "112.84", "USD", f"{LAST:%Y-%m}", "false"),
        ("acme", "Credit", "-0.05", "12.50", "-0.06", "USD", f"{LAST:%Y-%m}", "false"),
    ]
    acme = selectors.month_statement(month=LAST).clients[0]
    assert acme.amount_to_invoice == Decimal("112.78")
    assert acme.margin == Decimal("112.78") - Decimal("100.25")
    assert "112.84" in page and "112.78" in page and "USD" in page


def test_an_account_switchyard_does_not_know_is_listed_as_unassigned(
    cost_explorer: Boto3ClientFactory, book: Book, finance_browser: HttpClient
) -> None:
    # Given the bill has an account that no client owns
    _fetch_last_month(cost_explorer, [
        ("111111111111", "Usage", "10.00", "10.00"),
        ("999999999999", "Usage", "42.00", "42.00"),
    ], [("999999999999", "Amazon Elastic Compute Cloud - Compute", "42.00", "42.00")])

    # When finance reads the month
    statement = selectors.month_statement(month=LAST)
    page = finance_browser.get(reverse("billing:month", kwargs={"month": LAST})).content.decode()
    clients_rows = _csv(finance_browser.get(reverse("billing:clients_csv", kwargs={"month": LAST})))
    account_rows = _csv(finance_browser.get(reverse("billing:accounts_csv", kwargs={"month": LAST})))

    # Then it is unassigned: on the page, in the accounts CSV without a client, in no client's total
    assert [a.aws_account_id for a in statement.unassigned] == ["999999999999"]
    assert statement.unassigned_cost == Decimal("42.00")
    assert [c.aws_cost for c in statement.clients] == [Decimal("10.00")]
    assert 'data-account="999999999999"' in page and "not in Switchyard" in page
    assert {r["client_slug"] for r in clients_rows} == {"acme"}
    assert [(r["client_slug"], r["aws_account_id"], r["service"], r["aws_cost"]) for r in account_rows] == [
        ("", "999999999999", "Amazon Elastic Compute Cloud - Compute", "42.00")]


def test_a_second_fetch_of_a_finalised_month_makes_no_aws_call(cost_explorer: Boto3ClientFactory, book: Book) -> None:
    # Given last month fetched once, and AWS said it is final
    first = _fetch_last_month(cost_explorer, [("111111111111", "Usage", "10.00", "10.00")])
    assert first.status == CostFetch.Status.SUCCEEDED and not first.estimated

    # When it is asked for again, on a schedule or on demand
    forbidden = CountingFactory()
    with pytest.raises(services.FetchRefused) as refused:
        services.cost_month_fetch(month=LAST, clients=forbidden)

    # Then AWS is not asked, and the month's lines stay
    assert forbidden.calls == []
    assert "never fetched again" in refused.value.message
    assert LAST not in services.months_due()
    assert CostLine.objects.filter(month=LAST).count() == 1
    assert CostFetch.objects.count() == 1


def test_the_current_month_is_estimated_and_paged_answers_are_all_read(
    cost_explorer: Boto3ClientFactory, book: Book
) -> None:
    # Given this month's answer comes in two pages (AWS may even say "not estimated")
    this = services.current_month()
    queue(
        ce_answer(this, [("111111111111", "Usage", "5.00", "5.00")], token="page-2"),
        ce_answer(this, [("222222222222", "Usage", "7.00", "7.00")], estimated=False),
        ce_answer(this, []),
    )

    # When it is fetched
    fetch = services.cost_month_fetch(month=this, clients=cost_explorer)

    # Then both pages were read (three requests, counted), and the month is marked estimated
    assert fetch.requests == 3
    assert fetch.estimated
    statement = selectors.month_statement(month=this)
    assert statement.estimated and not statement.is_final
    assert [c.aws_cost for c in statement.clients] == [Decimal("5.00"), Decimal("7.00")]
    assert services.requests_in_last_day() == 3
    assert AuditEvent.objects.filter(action="billing.month.fetched").count() == 1


def test_a_handed_back_account_is_billed_to_its_client_up_to_the_month_it_left(
    cost_explorer: Boto3ClientFactory, book: Book
) -> None:
    # Given Acme's staging account left the Organization during last month
    staging = book.acme_staging
    staging.state = AwsAccount.State.HANDED_BACK
    staging.save(update_fields=["state"])
    left = LAST.replace(day=10)
    from datetime import UTC, datetime
    OnboardingStep.objects.create(account=staging, position=20, kind=OnboardingStep.Kind.LEAVE_ORGANIZATION,
                                  status=OnboardingStep.Status.SUCCEEDED,
                                  finished_at=datetime(left.year, left.month, left.day, 12, tzinfo=UTC))
    _fetch_last_month(cost_explorer, [("111111111112", "Usage", "9.00", "9.00")])
    this = services.current_month()
    queue(ce_answer(this, [("111111111112", "Usage", "1.00", "1.00")]), ce_answer(this, []))
    services.cost_month_fetch(month=this, clients=cost_explorer)

    # When finance reads both months
    last_month, this_month = selectors.month_statement(month=LAST), selectors.month_statement(month=this)

    # Then last month's costs are Acme's (with the day it left); after it, nobody's
    assert [(a.aws_account_id, a.left_on) for a in last_month.clients[0].accounts] == [("111111111112", left)]
    assert last_month.unassigned == []
    assert this_month.clients == []
    assert [a.aws_account_id for a in this_month.unassigned] == ["111111111112"]
    # (the clients CSV, which sums in the database, follows the same rule)
    assert [row[:4] for row in list(selectors.clients_csv_rows(month=LAST))[1:]] == [
        ("acme", "Acme Retail", f"{LAST:%Y-%m}", "Usage")]
    assert list(selectors.clients_csv_rows(month=this))[1:] == []


def test_an_aws_refusal_is_recorded_in_plain_words_and_keeps_the_previous_figures(
    cost_explorer: Boto3ClientFactory, book: Book, finance_browser: HttpClient
) -> None:
    # Given this month fetched once, then Cost Explorer refuses
    from botocore.stub import Stubber

    this = services.current_month()
    queue(ce_answer(this, [("111111111111", "Usage", "5.00", "5.00")]), ce_answer(this, []))
    services.cost_month_fetch(month=this, clients=cost_explorer)
    ce = cost_explorer.client("ce")
    with Stubber(ce) as stub:
        stub.add_client_error("get_cost_and_usage", "AccessDeniedException", "User is not authorized", 400)

        # When it is fetched again
        failed = services.cost_month_fetch(month=this, clients=cost_explorer)

    # Then the failure says what to do, the earlier lines stay, and the page shows both
    assert failed.status == CostFetch.Status.FAILED and failed.error_code == "AccessDeniedException"
    assert "ce:GetCostAndUsage" in failed.error_message
    assert failed.requests == 1
    assert CostLine.objects.filter(month=this).count() == 1
    page = finance_browser.get(reverse("billing:index")).content.decode()
    assert "ce:GetCostAndUsage" in page and "AccessDeniedException" in page and "5.00" in page
    assert AuditEvent.objects.filter(action="billing.month.fetch_failed").count() == 1


def test_no_fetch_once_the_days_requests_are_spent(book: Book, settings: object) -> None:
    # Given the day's Cost Explorer budget is used up
    from django.utils import timezone

    settings.SWITCHYARD_BILLING_MAX_REQUESTS_PER_DAY = 4  # type: ignore[attr-defined]
    CostFetch.objects.create(month=LAST, started_at=timezone.now(), status=CostFetch.Status.SUCCEEDED,
                             estimated=True, requests=3)

    # When the schedule runs
    forbidden = CountingFactory()
    outcome = services.cost_months_fetch_due(clients=forbidden)

    # Then nothing is sent, and each month says why
    assert forbidden.calls == [] and outcome.fetched == ()
    assert outcome.refused and all("in the last 24 hours" in message for _, message in outcome.refused)


def test_a_client_far_above_its_previous_months_is_flagged(cost_explorer: Boto3ClientFactory, book: Book,
                                                           finance_browser: HttpClient) -> None:
    # Given three months around 100 for Acme and 40 for Globex, then a month of 200 and 41
    month = services.current_month()
    for _ in range(3):
        month = services.previous_month(month)
        queue(ce_answer(month, [("111111111111", "Usage", "100.00", "100.00"), ("222222222222", "Usage", "40", "40")]),
              ce_answer(month, []))
        services.cost_month_fetch(month=month, clients=cost_explorer)
    this = services.current_month()
    queue(ce_answer(this, [("111111111111", "Usage", "200.00", "200.00"), ("222222222222", "Usage", "41", "41")]),
          ce_answer(this, []))
    services.cost_month_fetch(month=this, clients=cost_explorer)

    # When finance opens this month
    statement = selectors.month_statement(month=this)
    page = finance_browser.get(reverse("billing:index")).content.decode()

    # Then Acme (100 % above) is flagged and Globex (2.5 %) is not
    acme, globex = statement.clients
    assert acme.anomaly is not None and acme.anomaly.percent_above == Decimal("100")
    assert globex.anomaly is None
    assert "100 % above usual" in page


def test_a_new_account_is_attributed_without_fetching_again(cost_explorer: Boto3ClientFactory, book: Book) -> None:
    # Given an unknown account in last month's bill
    _fetch_last_month(cost_explorer, [("333333333333", "Usage", "3.00", "3.00")])
    assert selectors.month_statement(month=LAST).unassigned

    # When a manager adds it to Globex
    make_account(book.globex, "legacy", "333333333333", origin=AwsAccount.Origin.INVITED, root_email=None)

    # Then the month bills it to Globex
    statement = selectors.month_statement(month=LAST)
    assert statement.unassigned == [] and statement.clients[0].client == book.globex


def test_a_failure_retrying_cannot_fix_stops_the_schedule_for_that_month(book: Book) -> None:
    # Given this month's last fetch was refused for permissions (not retryable), last month's throttled
    from django.utils import timezone

    this, now = services.current_month(), timezone.now()
    CostFetch.objects.create(month=this, started_at=now, status=CostFetch.Status.FAILED, requests=1,
                             error_code="AccessDeniedException", error_retryable=False)
    CostFetch.objects.create(month=LAST, started_at=now, status=CostFetch.Status.FAILED, requests=1,
                             error_code="LimitExceededException", error_retryable=True)

    # When the schedule works out what to fetch
    due = services.months_due()

    # Then it leaves this month alone (a person must fix it first) and tries last month again
    assert this not in due and due[0] == LAST


def test_the_schedule_fetches_a_few_times_a_day_through_its_task(
    cost_explorer: Boto3ClientFactory, book: Book, settings: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given the beat entry, and Cost Explorer answering this month only
    from celery.schedules import crontab

    from billing.tasks import billing_fetch_due
    from portal.celery import app

    entry = app.conf.beat_schedule["billing-fetch"]
    assert entry["task"] == billing_fetch_due.name
    assert isinstance(entry["schedule"], crontab) and len(entry["schedule"].hour) == 4
    this = services.current_month()
    queue(ce_answer(this, [("111111111111", "Usage", "1.00", "1.00")], estimated=True), ce_answer(this, []))
    monkeypatch.setattr("billing.services.default_client_factory", lambda: cost_explorer)
    settings.SWITCHYARD_BILLING_MAX_REQUESTS_PER_DAY = 6  # type: ignore[attr-defined]

    # When the task runs
    billing_fetch_due.delay()

    # Then this month was fetched first, and the day's budget stopped the rest of the history
    fetched = list(CostFetch.objects.order_by("started_at", "pk").values_list("month", "status"))
    assert fetched[0] == (this, CostFetch.Status.SUCCEEDED)
    assert len(fetched) == 3 and services.requests_in_last_day() == 6


def test_cost_explorers_rate_limit_is_retried_later_unlike_an_iam_quota(
    cost_explorer: Boto3ClientFactory, book: Book
) -> None:
    # Given Cost Explorer answers LimitExceededException (its request-rate limit)
    from botocore.stub import Stubber

    ce = cost_explorer.client("ce")
    with Stubber(ce) as stub:
        stub.add_client_error("get_cost_and_usage", "LimitExceededException", "Rate exceeded", 400)

        # When this month is fetched
        failed = services.cost_month_fetch(month=services.current_month(), clients=cost_explorer)

    # Then the failure is retryable (the schedule tries again), in plain words
    assert failed.status == CostFetch.Status.FAILED and failed.error_retryable
    assert "request rate" in failed.error_message
    assert services.current_month() in services.months_due()


def test_an_anomaly_is_notified_to_finance_once_and_not_to_engineers(
    cost_explorer: Boto3ClientFactory, book: Book, make_person: Any, engineer: Any,
    django_capture_on_commit_callbacks: Any,
) -> None:
    # Given finance, and three months around 100 for Acme
    from portal.notifications.models import Notice

    fran = make_person("fran", "Finance")
    month = services.current_month()
    for _ in range(3):
        month = services.previous_month(month)
        queue(ce_answer(month, [("111111111111", "Usage", "100.00", "100.00")]), ce_answer(month, []))
        services.cost_month_fetch(month=month, clients=cost_explorer)
    assert not Notice.objects.filter(event="cost.anomaly").exists()

    # When this month's fetch finds 200, and the month is fetched again
    this = services.current_month()
    queue(ce_answer(this, [("111111111111", "Usage", "200.00", "200.00")]), ce_answer(this, []))
    with django_capture_on_commit_callbacks(execute=True):
        services.cost_month_fetch(month=this, clients=cost_explorer)
        services.cost_month_fetch(month=this, clients=cost_explorer)

    # Then finance got one notice about Acme, engineers none
    notices = list(Notice.objects.filter(event="cost.anomaly"))
    assert [(n.recipient, n.state) for n in notices] == [(fran, Notice.State.SENT)]
    assert "Acme" in notices[0].subject and "100% above" in notices[0].subject
