"""The benchmark's machinery on a tiny scale: the seeder writes what it planned (and a valid audit
chain), the SQL baselines return exactly the rows the product shows, and results are written in the
agreed shape. The timings themselves are ``make bench``'s business, not the tests'."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.exceptions import ValidationError
from django.core.management import call_command
from django.utils import timezone

from bench import databases, metrics, sql
from bench.onboarding import _waiting_for_a_slot
from bench.report import Result, read_results, table, write_results
from bench.seed import MANY, TEN, TINY, Scale, expected_links, plan, seed
from onboarding.models import AwsAccount, Client
from portal.audit import audit_verify_chain
from portal.audit.models import AuditChainHead, AuditEvent
from switchroles.models import AccountRole, Grant, TeamMembership
from switchroles.selectors import links_for_person

pytestmark = pytest.mark.django_db


def test_the_plan_gives_the_arranged_people_exactly_10_and_many_links() -> None:
    # given the plan at the full scale
    the_plan = plan(Scale(), now=timezone.now())

    # when the links each person may use are worked out from it
    links = expected_links(the_plan)

    # then the two arranged people have exactly 10 and 3,000, and the totals are the issue's
    assert len(links[TEN]) == 10
    assert len(links[MANY]) == 3000
    assert len(the_plan.grants) == 10_000
    assert the_plan.account_count == 3000
    assert {g.team is not None for g in the_plan.grants} == {True, False}
    assert {g.client is not None for g in the_plan.grants} == {True, False}
    assert any(g.revoked_at for g in the_plan.grants) and any(
        g.expires_at and g.expires_at < the_plan.now for g in the_plan.grants
    )


def test_the_seeder_writes_the_planned_rows() -> None:
    # when the tiny scale is seeded
    seeded = seed(TINY)

    # then every table holds what the scale asks for, every role active and activated
    assert Client.objects.count() == TINY.clients
    assert AwsAccount.objects.filter(state=AwsAccount.State.ACTIVE).count() == TINY.clients * TINY.accounts_per_client
    assert AccountRole.objects.filter(state=AccountRole.State.ACTIVE, activated_at__isnull=False).count() == (
        TINY.clients * TINY.accounts_per_client * 3
    )
    assert Grant.objects.count() == TINY.grants
    assert TeamMembership.objects.count() == len(seeded.plan.memberships)
    assert seeded.counts["people"] == TINY.people
    assert AuditEvent.objects.count() == TINY.audit_events


def test_the_seeded_audit_chain_verifies_and_its_head_is_the_last_event() -> None:
    # given a seeded database
    seed(TINY)

    # when the chain is verified, as manage.py audit_verify does
    report = audit_verify_chain()
    call_command("audit_verify", stdout=io.StringIO())

    # then it is intact and the head points at the newest event
    assert report.intact
    assert report.events_checked == TINY.audit_events
    head = AuditChainHead.objects.get(pk=1)
    newest = AuditEvent.objects.order_by("-sequence").first()
    assert newest is not None
    assert (head.last_sequence, head.last_digest) == (newest.sequence, newest.digest)


def test_the_selector_gives_the_arranged_people_the_planned_links() -> None:
    # given a seeded database
    seeded = seed(TINY)

    # when the directory's selector is asked for the two arranged people
    ten = set(links_for_person(person=seeded.ten).values_list("pk", flat=True))
    many = set(links_for_person(person=seeded.many).values_list("pk", flat=True))

    # then it finds exactly the planned links: 10, and the many-link person's number
    assert ten == seeded.role_ids_for(TEN)
    assert len(ten) == 10
    assert many == seeded.role_ids_for(MANY)
    assert len(many) == TINY.many_links


def test_the_directory_sql_returns_the_selectors_rows_in_the_same_order() -> None:
    # given a seeded database
    seeded = seed(TINY)

    # when the hand-written SQL runs for each person
    for person_id in seeded.person_ids:
        person = seeded.ten.__class__.objects.get(pk=person_id)
        rows = sql.directory_rows(person_id=person_id, now=timezone.now())

        # then it returns the selector's links, in the directory's order
        assert [row[0] for row in rows] == list(links_for_person(person=person).values_list("pk", flat=True))


def test_the_directory_sql_leaves_out_revoked_expired_and_former_team_grants() -> None:
    # given a seeded database where the 10-link person had a revoked, an expired grant and a former team
    seeded = seed(TINY)

    # when the SQL runs for them a moment before the seeding and now
    rows = sql.directory_rows(person_id=seeded.ten.pk, now=timezone.now())
    earlier = sql.directory_rows(person_id=seeded.ten.pk, now=seeded.plan.now - timedelta(days=60))

    # then now only the 10 links in force; 60 days ago the revoked, expired and former-team ones too
    assert len(rows) == 10
    assert len(earlier) > 10
    assert {row[0] for row in earlier} == {
        seeded.role_ids[link] for link in expected_links(seeded.plan, at=seeded.plan.now - timedelta(days=60))[TEN]
    }


def test_the_matrix_sql_writes_one_csv_row_per_person_link_and_grant() -> None:
    # given a seeded database
    seeded = seed(TINY)
    out = io.StringIO()

    # when the matrix floor runs
    written = sql.matrix_csv(now=timezone.now(), out=out)

    # then every person × link in force is there, through each grant that gives it
    lines = out.getvalue().splitlines()
    assert lines[0].split(",") == list(sql.MATRIX_COLUMNS)
    assert written == len(lines) - 1
    links = expected_links(seeded.plan)
    assert written >= sum(len(reach) for reach in links.values())
    pairs = {(line.split(",")[0], int(line.split(",")[6])) for line in lines[1:]}
    usernames = dict(seeded.ten.__class__.objects.values_list("pk", "username"))
    assert pairs == {
        (usernames[seeded.person_ids[person]], seeded.role_ids[link])
        for person, reach in links.items() for link in reach
    }


def test_results_are_written_with_value_target_unit_and_ok(tmp_path: Path) -> None:
    # given a met, a missed and an unmeasured metric
    results = [
        Result("directory_queries", target=10, unit="queries", value=7, checks={"equal_at_10_and_3000": True}),
        Result("directory_vs_sql", target=5, unit="x", value=6.5),
        Result("onboarding_vs_direct", target=1.5, unit="x", missing="the onboarding workflow is not there yet"),
    ]

    # when they are written and printed
    path = tmp_path / "results.json"
    write_results(results, path)
    printed = table(results)

    # then the file holds each with its value, target, unit and whether it is met
    data = json.loads(path.read_text())
    assert data["directory_queries"] == {
        "value": 7, "target": 10, "unit": "queries", "ok": True, "status": "ok",
        "checks": {"equal_at_10_and_3000": True},
    }
    assert (data["directory_vs_sql"]["ok"], data["directory_vs_sql"]["status"]) == (False, "MISSED")
    assert data["onboarding_vs_direct"]["value"] is None
    assert data["onboarding_vs_direct"]["status"] == "MISSING"
    assert "MISSED" in printed and "MISSING" in printed


def test_a_check_that_fails_misses_the_target_even_when_the_value_is_met() -> None:
    # given equal-looking figures but query counts that differ between 10 and 3,000 links
    result = Result("directory_queries", target=10, unit="queries", value=8, checks={"equal_at_10_and_3000": False})

    # then the metric is missed
    assert not result.ok
    assert result.status == "MISSED"


def test_benchmark_databases_are_named_per_run_next_to_the_configured_one() -> None:
    # when the benchmark derives its databases from a PostgreSQL URL, and without one
    pg = databases.bench_databases(base_url="postgres://u:p@db:5432/switchyard", suffixes=("bench", "bench_onboarding"),
                                   run_id=42)
    lite = databases.bench_databases(base_url=None, suffixes=("bench",), run_id=42)

    # then they sit next to it with the run's id, never the configured database itself
    assert [d.url for d in pg] == [
        "postgres://u:p@db:5432/switchyard_bench_42", "postgres://u:p@db:5432/switchyard_bench_onboarding_42",
    ]
    assert lite[0].vendor == "sqlite"
    assert lite[0].name.endswith("var/bench/bench_42.sqlite3")


def test_the_directory_metrics_read_the_real_page_and_check_its_links() -> None:
    # given a tiny seeded database
    seeded = seed(TINY)

    # when the directory metrics are measured once
    queries, ratio = metrics.directory(seeded, repeats=1)

    # then both were measured, and the page showed exactly the planned links with equal query counts
    assert queries.measured and ratio.measured
    assert queries.details["queries_10_links"] == queries.details["queries_3000_links"]
    assert ratio.checks == {"sql_rows_are_the_expected_links": True, "page_shows_the_expected_links": True}
    assert ratio.details["page_links_shown"] == TINY.many_links


def test_the_export_metrics_compare_the_real_csv_with_the_sql_rows() -> None:
    # given a tiny seeded database
    seeded = seed(TINY)

    # when the export metrics are measured once
    ratio, memory = metrics.matrix_export(seeded, repeats=1)

    # then both were measured, and the streamed CSV held exactly the SQL's rows and the planned access
    assert ratio.measured and memory.measured
    assert ratio.checks == {
        "row_counts_match": True, "same_person_link_grant_rows": True, "people_x_links_as_seeded": True,
    }
    assert ratio.details["rows_export"] > 0
    assert memory.value is not None and memory.value > 0


def test_a_refusal_only_for_creations_in_flight_means_wait_for_a_slot() -> None:
    # given the refusal onboarding_request gives when AWS's concurrent creations are in flight
    busy = ValidationError({"origin": [
        "5 accounts are being created already; AWS allows 5 at a time. Wait for one to finish."
    ]})
    # and one for another reason
    duplicate = ValidationError({"root_email": ["An account in the Organization already uses this address."]})

    # then only the first makes the benchmark wait and ask again
    assert _waiting_for_a_slot(busy)
    assert not _waiting_for_a_slot(duplicate)


def test_a_runs_results_read_back_with_a_suffix_keep_values_checks_and_notes(tmp_path: Path) -> None:
    # (how the SQLite run's figures join the PostgreSQL run's table)
    path = tmp_path / "results.json"
    write_results([
        Result("directory_vs_sql", target=3, unit="x", value=2.5, details={"summary": "page / SQL"},
               checks={"same rows": True}),
        Result("matrix_csv_vs_sql", target=3, unit="x", value=3.5),
        Result("billing_csv_vs_sql", target=3, unit="x", error="it broke"),
    ], path)

    read = {r.name: r for r in read_results(path, suffix="@sqlite")}

    assert set(read) == {"directory_vs_sql@sqlite", "matrix_csv_vs_sql@sqlite", "billing_csv_vs_sql@sqlite"}
    assert (read["directory_vs_sql@sqlite"].value, read["directory_vs_sql@sqlite"].status) == (2.5, "ok")
    assert read["directory_vs_sql@sqlite"].details["summary"] == "page / SQL"
    assert read["directory_vs_sql@sqlite"].checks == {"same rows": True}
    assert read["matrix_csv_vs_sql@sqlite"].status == "MISSED"
    assert (read["billing_csv_vs_sql@sqlite"].status, read["billing_csv_vs_sql@sqlite"].error) == ("ERROR", "it broke")
