"""Finance signs in (password + TOTP), opens last month's billing, sees the chart, and downloads
the clients CSV, whose rows are the ones on the page."""

from __future__ import annotations

import csv
import os
from decimal import Decimal
from pathlib import Path

import pyotp
import pytest
from moto import mock_aws
from playwright.sync_api import ConsoleMessage, Page, expect

from billing import services
from billing.models import ClientBillingTerms
from portal.aws import Boto3ClientFactory
from tests.billing.conftest import ce_answer, make_account, queue
from tests.conftest import PASSWORD, MakePerson

pytestmark = [pytest.mark.e2e, pytest.mark.django_db(transaction=True)]


def test_finance_opens_last_month_sees_the_chart_and_downloads_the_csv(
    live_server: object, page: Page, make_person: MakePerson, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    settings: object,
) -> None:
    # given: two clients, an unknown account, a markup, and last month fetched from (moto's) Cost Explorer
    from onboarding.models import Client

    finance = make_person("fiona", "Finance", first_name="Fiona")
    acme = Client.objects.create(name="Acme Retail", slug="acme")
    globex = Client.objects.create(name="Globex Logistics", slug="globex")
    make_account(acme, "production", "111111111111")
    make_account(globex, "production", "222222222222")
    ClientBillingTerms.objects.create(client=acme, markup_percent=Decimal("15"))
    last = services.previous_month(services.current_month())
    for name in [n for n in os.environ if n.startswith("AWS_ENDPOINT_URL")]:
        monkeypatch.delenv(name)
    with mock_aws():
        queue(ce_answer(last, [("111111111111", "Usage", "1234.56", "1234.56"),
                               ("111111111111", "Credit", "-100.00", "-100.00"),
                               ("222222222222", "Usage", "432.10", "432.10"),
                               ("999999999999", "Usage", "5.00", "5.00")]),
              ce_answer(last, []))
        services.cost_month_fetch(month=last, clients=Boto3ClientFactory(region_name="us-east-1"))
    csp_errors: list[str] = []
    page.on("console", lambda message: csp_errors.append(message.text)
            if isinstance(message, ConsoleMessage) and "Content Security Policy" in message.text else None)
    base = live_server.url  # type: ignore[attr-defined]

    # when: finance signs in with a password and a code
    page.goto(f"{base}/accounts/login/")
    page.get_by_label("Username or email").fill("fiona")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign In").click()
    expect(page).to_have_url(f"{base}/accounts/2fa/authenticate/")
    page.get_by_label("Code").fill(pyotp.TOTP(finance.totp_secret).now())  # type: ignore[attr-defined]
    page.get_by_role("button", name="Sign In").click()
    expect(page.get_by_role("heading", name="Hello, Fiona")).to_be_visible()

    # … opens billing, then last month
    page.get_by_role("link", name="Billing", exact=True).click()
    page.get_by_role("navigation", name="Month").get_by_role("link", name=f"{last:%b %Y}").click()
    expect(page).to_have_url(f"{base}/billing/{last:%Y-%m}/")
    expect(page.get_by_role("heading", name=f"Billing: {last:%B %Y}")).to_be_visible()

    # then: the chart of top clients is drawn, one bar per client, with no CSP complaint
    chart = page.locator("svg#top-clients-chart")
    expect(chart).to_be_visible()
    expect(chart.locator("rect")).to_have_count(2)
    assert chart.bounding_box()["height"] > 100  # type: ignore[index]
    expect(page.locator("#billing-unassigned")).to_contain_text("999999999999")

    # … and the CSV downloaded from the page holds exactly the page's rows
    with page.expect_download() as download_info:
        page.get_by_role("link", name="Clients CSV").click()
    download = download_info.value
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    with saved.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    shown = []
    for row in page.locator("#billing-clients tr.record-line").all():
        cells = row.locator("td").all_inner_texts()
        shown.append((row.get_attribute("data-client"), row.get_attribute("data-record-type"), cells[2], cells[3],
                      cells[4], cells[6]))
    assert [(r["client_slug"], r["record_type"], r["aws_cost"], r["markup_percent"], r["amount_to_invoice"],
             r["currency"]) for r in rows] == shown
    assert shown == [("acme", "Usage", "1234.56", "15.00", "1419.74", "USD"),
                     ("acme", "Credit", "-100.00", "15.00", "-115.00", "USD"),
                     ("globex", "Usage", "432.10", "0.00", "432.10", "USD")]
    assert {r["month"] for r in rows} == {f"{last:%Y-%m}"} and {r["estimated"] for r in rows} == {"false"}
    assert csp_errors == []
