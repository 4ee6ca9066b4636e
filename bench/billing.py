"""The billing export against its floor: the month's clients CSV (``/billing/<YYYY-MM>/clients.csv``)
for every seeded client and account ÷ one raw SQL query + ``csv.writer`` over the same rows.

The costs are seeded here, after ``bench.seed`` (its clients and accounts): last month, finalised,
per account a Usage and a Tax line, a Credit on every third account, three service lines, a markup
for every other client, and a few accounts in the bill that Switchyard does not know.
"""

from __future__ import annotations

import csv
import io
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth.hashers import make_password
from django.contrib.auth.models import Group
from django.db import connection, transaction
from django.urls import reverse
from django.utils import timezone

from bench.metrics import fetch, paired_median_seconds, signed_in
from bench.report import Result
from bench.seed import BATCH, _enrol_totp
from billing.models import ClientBillingTerms, CostFetch, CostLine
from billing.selectors import CLIENTS_CSV_COLUMNS, current_month, previous_month
from onboarding.models import AwsAccount, Client
from portal.people.models import User
from portal.people.permissions import FINANCE

UNKNOWN_ACCOUNTS = 10
SERVICES = ("Amazon Elastic Compute Cloud - Compute", "Amazon Relational Database Service",
            "Amazon Simple Storage Service")
CENT = Decimal("0.01")


def seed_costs() -> tuple[User, Any, int]:
    """Last month's costs for every seeded account; the finance person who reads them."""
    month = previous_month(current_month())
    now = timezone.now()
    with transaction.atomic():
        finance = User.objects.create(username="bench-finance", email="bench-finance@example.com",
                                      iam_username="bench-finance", first_name="Fran", password=make_password(None))
        finance.groups.add(Group.objects.get(name=FINANCE))
        _enrol_totp(finance)
        fetch_row = CostFetch.objects.create(month=month, started_at=now, finished_at=now, estimated=False,
                                             status=CostFetch.Status.SUCCEEDED, requests=2)
        account_ids = list(AwsAccount.objects.order_by("pk").values_list("account_id", flat=True))
        account_ids += [f"{900000000000 + i:012d}" for i in range(UNKNOWN_ACCOUNTS)]
        lines = []
        for index, account_id in enumerate(account_ids):
            usage = Decimal(100 + index % 997) + Decimal(index % 100) / 100
            record = [("Usage", usage), ("Tax", (usage * Decimal("0.08")).quantize(CENT))]
            if index % 3 == 0:
                record.append(("Credit", Decimal("-25.00")))
            for kind, amount in record:
                lines.append(CostLine(fetch=fetch_row, month=month, aws_account_id=account_id or "", record_type=kind,
                                      unblended_cost=amount, net_unblended_cost=amount, currency="USD"))
            for position, service in enumerate(SERVICES):
                share = (usage * Decimal((5, 3, 2)[position]) / 10).quantize(CENT)
                lines.append(CostLine(fetch=fetch_row, month=month, aws_account_id=account_id or "", service=service,
                                      unblended_cost=share, net_unblended_cost=share, currency="USD"))
        CostLine.objects.bulk_create(lines, batch_size=BATCH)
        ClientBillingTerms.objects.bulk_create([
            ClientBillingTerms(client_id=pk, markup_percent=Decimal("7.50"), updated_by=finance)
            for pk in Client.objects.order_by("pk").values_list("pk", flat=True)[::2]
        ], batch_size=BATCH)
    return finance, month, len(lines)


def clients_sql() -> str:
    """Each client's cost per record type in the month: one query (parameter: the month)."""
    line, account = CostLine._meta.db_table, AwsAccount._meta.db_table
    client, terms = Client._meta.db_table, ClientBillingTerms._meta.db_table
    return f"""
        SELECT c.slug, c.name, l.record_type, SUM(l.unblended_cost), COALESCE(t.markup_percent, 0),
               MIN(l.currency), SUM(l.net_unblended_cost)
        FROM {line} l
        JOIN {account} a ON a.account_id = l.aws_account_id
        JOIN {client} c ON c.id = a.client_id
        LEFT JOIN {terms} t ON t.client_id = c.id
        WHERE l.month = %s AND l.service = ''
        GROUP BY c.id, c.slug, c.name, l.record_type, t.markup_percent
        ORDER BY c.name, l.record_type
    """  # noqa: S608 - table names from the models


def clients_csv_floor(*, month: Any, out: Any) -> list[tuple[str, str, str]]:
    """The floor: the query, the markup in Decimal, every row through ``csv.writer``. Returns the
    (client slug, record type, aws cost) of each row."""
    writer = csv.writer(out)
    writer.writerow(CLIENTS_CSV_COLUMNS)
    label = f"{month:%Y-%m}"
    written = []
    with connection.cursor() as cursor:
        cursor.execute(clients_sql(), [month])
        for slug, name, record_type, cost, percent, currency, net in cursor.fetchall():
            cost, percent = Decimal(str(cost)).quantize(CENT, ROUND_HALF_UP), Decimal(str(percent)).quantize(CENT)
            amount = (cost * (100 + percent) / 100).quantize(CENT, ROUND_HALF_UP)
            writer.writerow((slug, name, label, record_type, cost, percent, amount, currency, "false",
                             Decimal(str(net)).quantize(CENT, ROUND_HALF_UP), amount - cost))
            written.append((slug, record_type, str(cost)))
    return written


def billing_export(*, repeats: int) -> list[Result]:
    ratio = Result("billing_csv_vs_sql", target=3, unit="x")
    finance, month, line_count = seed_costs()
    path = reverse("billing:clients_csv", kwargs={"month": month})
    client = signed_in(finance)

    def export() -> None:
        fetched = fetch(client, path)
        if fetched.status != 200:
            raise RuntimeError(f"GET {path} as finance answered {fetched.status}")

    def floor() -> None:
        clients_csv_floor(month=month, out=io.StringIO())

    first = fetch(client, path, keep=True)
    reader = csv.DictReader(io.StringIO((first.body or b"").decode("utf-8")))
    exported = [(row["client_slug"], row["record_type"], row["aws_cost"]) for row in reader]
    baseline = clients_csv_floor(month=month, out=io.StringIO())
    (export_seconds, export_times), (sql_seconds, sql_times) = paired_median_seconds(export, floor, repeats=repeats)
    ratio.value = export_seconds / sql_seconds
    ratio.details = {
        "rows_export": len(exported), "rows_sql": len(baseline), "cost_lines": line_count,
        "export_s": export_seconds, "sql_csv_s": sql_seconds,
        "export_times_s": export_times, "sql_csv_times_s": sql_times,
        "summary": f"export {export_seconds * 1000:.0f} ms / SQL+csv {sql_seconds * 1000:.0f} ms "
                   f"({len(exported)} rows)",
    }
    ratio.checks = {
        "row_counts_match": len(exported) == len(baseline),
        "same_client_record_type_cost_rows": sorted(exported) == sorted(baseline),
        "every_client_billed": len({slug for slug, _, _ in exported}) == Client.objects.count(),
    }
    return [ratio]
