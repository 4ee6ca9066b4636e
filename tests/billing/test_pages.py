"""The billing pages: who may enter, the markup form, fetching again on demand, charts within the CSP."""

from __future__ import annotations

import csv
import io
import re
from decimal import Decimal

import pytest
from django.test import Client as HttpClient
from django.urls import reverse

from billing import services
from billing.models import ClientBillingTerms, CostFetch
from portal.audit.models import AuditEvent
from portal.aws import Boto3ClientFactory
from portal.people.models import User
from tests.billing.conftest import Book, CountingFactory, ce_answer, queue
from tests.conftest import MakePerson

pytestmark = pytest.mark.django_db

LAST = services.previous_month(services.current_month())


def _billing_paths(book: Book) -> list[tuple[str, str]]:
    month, client = f"{LAST:%Y-%m}", book.acme.pk
    return [
        ("GET", reverse("billing:index")),
        ("GET", reverse("billing:month", kwargs={"month": month})),
        ("GET", reverse("billing:clients_csv", kwargs={"month": month})),
        ("GET", reverse("billing:accounts_csv", kwargs={"month": month})),
        ("GET", reverse("billing:invoice", kwargs={"month": month, "client_id": client})),
        ("GET", reverse("billing:invoice_csv", kwargs={"month": month, "client_id": client})),
        ("GET", reverse("billing:markup", kwargs={"client_id": client})),
        ("POST", reverse("billing:markup", kwargs={"client_id": client})),
        ("POST", reverse("billing:refetch", kwargs={"month": month})),
    ]


@pytest.mark.parametrize("groups", [("Engineer",), ("Auditor",), ("Engineer", "Auditor")])
def test_engineers_and_auditors_without_finance_get_403_on_every_billing_url(
    book: Book, make_person: MakePerson, signed_in: object, groups: tuple[str, ...]
) -> None:
    # Given a person without finance (nor manager)
    browser = signed_in(make_person("someone", *groups))  # type: ignore[operator]

    # When they ask for any billing URL, Then it is refused, and nothing is written
    for method, path in _billing_paths(book):
        response = browser.get(path) if method == "GET" else browser.post(path, {"markup_percent": "10"})
        assert response.status_code == 403, (method, path)
    assert not ClientBillingTerms.objects.exists() and not AuditEvent.objects.exists()


def test_finance_reads_everything_and_managers_read_but_do_not_set_markups(
    book: Book, finance_browser: HttpClient, manager: User, signed_in: object
) -> None:
    manager_browser = signed_in(manager)  # type: ignore[operator]
    for method, path in _billing_paths(book):
        if method == "GET":
            assert finance_browser.get(path).status_code == 200, path
    for _method, path in _billing_paths(book)[:6]:
        assert manager_browser.get(path).status_code == 200, path
    markup = reverse("billing:markup", kwargs={"client_id": book.acme.pk})
    assert manager_browser.get(markup).status_code == 403
    assert manager_browser.post(markup, {"markup_percent": "10"}).status_code == 403


def test_rows_that_do_not_exist_answer_404(book: Book, finance_browser: HttpClient) -> None:
    assert finance_browser.get("/billing/2026-13/").status_code == 404
    assert finance_browser.get(f"/billing/{services.current_month().year + 1}-01/").status_code == 404
    assert finance_browser.get(reverse("billing:invoice", kwargs={"month": LAST, "client_id": 999999})).status_code \
        == 404
    assert finance_browser.get(reverse("billing:markup", kwargs={"client_id": 999999})).status_code == 404


def test_a_markup_outside_the_range_is_refused_next_to_the_field_and_nothing_is_saved(
    book: Book, finance_browser: HttpClient
) -> None:
    # When finance enters a markup below −100 %
    response = finance_browser.post(reverse("billing:markup", kwargs={"client_id": book.acme.pk}),
                                    {"markup_percent": "-150"})

    # Then the form comes back with the message under the field, and nothing changed
    assert response.status_code == 200
    page = response.content.decode()
    assert re.search(r'id="id_markup_percent_errors".*greater than or equal to -100', page, re.S)
    assert not ClientBillingTerms.objects.exists() and not AuditEvent.objects.exists()


def test_finance_sets_a_markup_and_the_change_is_audited(book: Book, finance_browser: HttpClient,
                                                         finance: User) -> None:
    # When finance sets Acme's markup to 7.25 %
    response = finance_browser.post(
        reverse("billing:markup", kwargs={"client_id": book.acme.pk}) + f"?month={LAST:%Y-%m}",
        {"markup_percent": "7.25"},
    )

    # Then it is saved and recorded, with who and from what
    assert response.status_code == 302 and response["Location"] == reverse("billing:month", kwargs={"month": LAST})
    assert ClientBillingTerms.objects.get(client=book.acme).markup_percent == Decimal("7.25")
    event = AuditEvent.objects.get(action="billing.markup.set")
    assert event.actor == finance and event.details == {"from_percent": "0", "to_percent": "7.25"}


def test_a_manager_fetches_the_current_month_again_on_demand(
    cost_explorer: Boto3ClientFactory, book: Book, manager: User, signed_in: object,
    django_capture_on_commit_callbacks: object,
) -> None:
    # Given this month's answer queued in Cost Explorer
    this = services.current_month()
    queue(ce_answer(this, [("111111111111", "Usage", "8.00", "8.00")]), ce_answer(this, []))

    # When a manager asks for it to be fetched again (the worker runs it at once in tests)
    with django_capture_on_commit_callbacks(execute=True):  # type: ignore[operator]
        response = signed_in(manager).post(reverse("billing:refetch", kwargs={"month": this}))  # type: ignore[operator]

    # Then it was fetched, by them, and both the request and the fetch are in the audit log
    assert response.status_code == 302
    fetch = CostFetch.objects.get(month=this)
    assert fetch.status == CostFetch.Status.SUCCEEDED and fetch.requested_by == manager
    assert list(AuditEvent.objects.order_by("pk").values_list("action", flat=True)) == [
        "billing.month.refetch_requested", "billing.month.fetched"]


def test_asking_again_for_a_finalised_month_says_why_and_calls_nobody(
    book: Book, finance_browser: HttpClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Given last month is final
    from django.utils import timezone

    CostFetch.objects.create(month=LAST, started_at=timezone.now(), status=CostFetch.Status.SUCCEEDED,
                             estimated=False, requests=2)
    forbidden = CountingFactory()
    monkeypatch.setattr("billing.services.default_client_factory", forbidden)

    # When finance asks for it again
    response = finance_browser.post(reverse("billing:refetch", kwargs={"month": LAST}), follow=True)

    # Then nothing is fetched and the page says why
    assert forbidden.calls == [] and CostFetch.objects.count() == 1
    assert "never fetched again" in response.content.decode()
    assert not AuditEvent.objects.exists()


def test_the_charts_are_svg_within_the_content_security_policy(
    cost_explorer: Boto3ClientFactory, book: Book, finance_browser: HttpClient
) -> None:
    # Given last month's costs
    queue(ce_answer(LAST, [("111111111111", "Usage", "80.00", "80.00"), ("222222222222", "Usage", "20.00", "20.00")]),
          ce_answer(LAST, []))
    services.cost_month_fetch(month=LAST, clients=cost_explorer)

    # When finance opens the month and Acme's invoice summary
    month_page = finance_browser.get(reverse("billing:month", kwargs={"month": LAST}))
    invoice_page = finance_browser.get(reverse("billing:invoice", kwargs={"month": LAST, "client_id": book.acme.pk}))

    # Then each has its chart as inline SVG: one bar per client / per month, no inline style or script
    csp = month_page["Content-Security-Policy"]
    assert "style-src 'self'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    for response, chart_id, bars in ((month_page, "top-clients-chart", 2), (invoice_page, "client-history-chart", 12)):
        html = response.content.decode()
        svg = re.search(rf'<svg [^>]*id="{chart_id}".*?</svg>', html, re.S)
        assert svg is not None
        assert svg.group(0).count("<rect ") == bars
        assert not re.search(r"<style|<script(?! src)|\sstyle=|\son\w+=", html)
    assert "acme: 80.00 USD" in month_page.content.decode()


def test_exports_guard_against_formulas_in_client_names(cost_explorer: Boto3ClientFactory, book: Book,
                                                        finance_browser: HttpClient) -> None:
    # Given a client whose name a spreadsheet would run
    book.acme.name = '=HYPERLINK("http://evil.example","x")'
    book.acme.save(update_fields=["name"])
    queue(ce_answer(LAST, [("111111111111", "Usage", "1.00", "1.00")]), ce_answer(LAST, []))
    services.cost_month_fetch(month=LAST, clients=cost_explorer)

    # When finance exports the month and the client's invoice
    month_csv = finance_browser.get(reverse("billing:clients_csv", kwargs={"month": LAST}))
    invoice_csv = finance_browser.get(reverse("billing:invoice_csv", kwargs={"month": LAST, "client_id": book.acme.pk}))

    # Then the name is text, and the amounts stay numbers
    exported = []
    for response in (month_csv, invoice_csv):
        assert response["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO(b"".join(response.streaming_content).decode())))
        assert rows[1][1] == '\'=HYPERLINK("http://evil.example","x")'
        assert rows[1][4] == "1.00"
        exported.append(rows)
    assert [row[3] for row in exported[1][1:]] == ["Usage", "Total"]


def test_the_month_page_and_export_cost_the_same_queries_for_2_or_20_clients(
    cost_explorer: Boto3ClientFactory, book: Book, finance_browser: HttpClient
) -> None:
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from onboarding.models import Client
    from tests.factories import make_account

    def queries(path: str) -> int:
        with CaptureQueriesContext(connection) as captured:
            response = finance_browser.get(path)
            if response.streaming:
                b"".join(response.streaming_content)
        assert response.status_code == 200
        return len(captured)

    page = reverse("billing:month", kwargs={"month": LAST})
    export = reverse("billing:clients_csv", kwargs={"month": LAST})
    queue(ce_answer(LAST, [("111111111111", "Usage", "1.00", "1.00"), ("222222222222", "Usage", "2.00", "2.00")]),
          ce_answer(LAST, []))
    services.cost_month_fetch(month=LAST, clients=cost_explorer)
    few = queries(page), queries(export)

    # Given 18 more clients with an account and costs each
    from billing.models import CostLine

    fetch = CostFetch.objects.get(month=LAST)
    for i in range(18):
        client = Client.objects.create(name=f"Client {i:02d}", slug=f"client-{i:02d}")
        make_account(client, "production", f"{300000000000 + i:012d}")
        CostLine.objects.create(fetch=fetch, month=LAST, aws_account_id=f"{300000000000 + i:012d}",
                                record_type="Usage", unblended_cost=Decimal("3"), net_unblended_cost=Decimal("3"))
        ClientBillingTerms.objects.create(client=client, markup_percent=Decimal("5"))

    # Then the page and the export make as many queries as before
    assert (queries(page), queries(export)) == few
    # (of the page's, about half are the navigation's capability checks, one per menu entry)
    assert few[0] <= 30 and few[1] <= 10, few
