"""The billing benchmark's machinery on the tiny scale: its seed, and a floor that returns exactly
the rows of the clients CSV (the timing is ``make bench``'s business)."""

from __future__ import annotations

import io

import pytest

from bench import billing
from bench.seed import TINY, seed
from billing.models import CostLine
from onboarding.models import AwsAccount

pytestmark = pytest.mark.django_db


def test_the_billing_floor_and_the_export_agree_row_for_row() -> None:
    # Given the tiny scale seeded, with last month's costs
    seed(TINY)

    # When the billing export is measured against its floor
    (result,) = billing.billing_export(repeats=1)

    # Then it measured, and the export and the floor hold the same rows, one per client × record type
    assert result.value is not None and result.value > 0
    assert result.checks == {"row_counts_match": True, "same_client_record_type_cost_rows": True,
                             "every_client_billed": True}
    assert result.details["rows_export"] == TINY.clients * 3  # Usage, Tax, and a Credit on one account each
    accounts = AwsAccount.objects.count()
    assert CostLine.objects.values("aws_account_id").distinct().count() == accounts + billing.UNKNOWN_ACCOUNTS
    assert len(billing.clients_csv_floor(month=CostLine.objects.first().month, out=io.StringIO())) == TINY.clients * 3  # type: ignore[union-attr]
