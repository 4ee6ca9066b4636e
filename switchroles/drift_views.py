"""The drift page: managers and auditors read it; managers ask for a check or a repair (POST only,
each queued for the workers and audited)."""

from __future__ import annotations

import csv
from collections.abc import Callable
from typing import Any

from django.contrib import messages
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from portal.people.http import AuthenticatedRequest
from portal.people.permissions import AUDITOR, MANAGER, capability_required
from portal.web.form_errors import service_outcome_message
from portal.web.reauth import reauthentication_required
from switchroles import access_checks, access_selectors, drift, drift_run
from switchroles.models import AccessFinding, RoleDriftFinding
from switchroles.trust_rollout import trust_rollout_start

#: What the apps above switchroles show on the drift page, by name in the page's context: onboarding
#: adds ``root_findings`` (accounts whose root user holds a credential) and ``root_progress`` (the
#: daily root-posture run). Filled from their AppConfig.ready(), since switchroles does not import them.
_page_findings: dict[str, Callable[[], Any]] = {}


def drift_page_findings_register(name: str, reader: Callable[[], Any]) -> None:
    """Show what ``reader()`` returns on the drift page as ``name`` (registering a name again replaces it)."""
    _page_findings[name] = reader


@require_GET
@capability_required(MANAGER, AUDITOR)
def drift_page(request: AuthenticatedRequest) -> HttpResponse:
    overview = drift.drift_overview()
    now = timezone.now()
    for finding in overview.role_findings:
        finding.can_repair = drift.finding_repairable(finding, now=now)  # type: ignore[attr-defined]
    kind = request.GET.get("finding", "")
    if kind not in AccessFinding.Kind.values:
        kind = ""
    findings = list(access_selectors.open_access_findings(kind=kind)[:ACCESS_FINDINGS_SHOWN])
    running = drift_run.drift_run_latest()
    return render(request, "switchroles/drift.html", {
        "overview": overview,
        **{name: reader() for name, reader in _page_findings.items()},
        "drift_progress": drift_run.drift_run_progress(run=running) if running is not None else None,
        "access_check": access_selectors.latest_access_check(),
        "access_findings": findings,
        "access_findings_open": access_selectors.open_access_findings_count(),
        "access_finding_kind": kind,
        "access_finding_kinds": AccessFinding.Kind.choices,
        "access_findings_shown": ACCESS_FINDINGS_SHOWN,
    })


ACCESS_FINDINGS_SHOWN = 500
ACCESS_CSV_HEADER = ("kind", "principal_type", "principal", "principal_arn", "person", "client", "account",
                     "aws_account_id", "role_arn", "policy", "statement", "detail", "opened_at", "statement_json")


@require_POST
@capability_required(MANAGER)
def access_check_now(request: AuthenticatedRequest) -> HttpResponse:
    access_checks.effective_access_check_request(actor=request.user, request=request)
    messages.info(request, "An effective-access check is on its way: it reads the main account's IAM once and "
                           "compares it with the grants. Reload this page in a minute.")
    return redirect("switchroles:drift")


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def trust_rollout(request: AuthenticatedRequest) -> HttpResponse:
    rollouts = trust_rollout_start(actor=request.user, request=request)
    accounts = sum(r.accounts.count() for r in rollouts)
    messages.success(request, f"Rolling the console roles' trust out: {len(rollouts)} template"
                              f"{'s' if len(rollouts) != 1 else ''}, {accounts} role{'s' if accounts != 1 else ''}.")
    return redirect("switchroles:drift")


@require_GET
@capability_required(MANAGER, AUDITOR)
def access_findings_csv(request: AuthenticatedRequest) -> HttpResponse:
    """Every open effective-access finding, one row each."""
    response = HttpResponse(content_type="text/csv; charset=utf-8")
    stamp = f"{timezone.now():%Y%m%dT%H%MZ}"
    response["Content-Disposition"] = f'attachment; filename="switchyard-effective-access-{stamp}.csv"'
    writer = csv.writer(response)
    writer.writerow(ACCESS_CSV_HEADER)
    for finding in access_selectors.open_access_findings().iterator(chunk_size=2000):
        writer.writerow(access_finding_row(finding))
    return response


def access_finding_row(finding: AccessFinding) -> list[str]:
    account = finding.account
    return [
        finding.get_kind_display(), finding.principal_type, finding.principal_name, finding.principal_arn,
        finding.person.get_username() if finding.person else "", account.client.name if account else "",
        account.name if account else "", (account.account_id or "") if account else "", finding.role_arn,
        finding.policy, finding.statement, finding.detail, finding.opened_at.isoformat(), finding.statement_json,
    ]


@require_POST
@capability_required(MANAGER)
def drift_check_now(request: AuthenticatedRequest) -> HttpResponse:
    drift.drift_check_request(actor=request.user, request=request)
    messages.info(request, "A drift check is on its way: it looks into every active account, so give it a minute, "
                           "then reload this page.")
    return redirect("switchroles:drift")


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def drift_repair(request: AuthenticatedRequest, finding_id: int) -> HttpResponse:
    finding = get_object_or_404(RoleDriftFinding, pk=finding_id)
    service_outcome_message(
        request,
        lambda: drift.drift_repair_request(finding=finding, actor=request.user, request=request),
        f"Switchyard is re-applying its version of {finding.role_name or finding.account}.",
    )
    return redirect("switchroles:drift")


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def drift_repair_main_account(request: AuthenticatedRequest) -> HttpResponse:
    drift.main_account_repair_request(actor=request.user, request=request)
    messages.success(request, "Switchyard is rewriting the main account's policies from the grants, then checks "
                              "them again.")
    return redirect("switchroles:drift")
