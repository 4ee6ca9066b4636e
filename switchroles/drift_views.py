"""The drift page: managers and auditors read it; managers ask for a check or a repair (POST only,
each queued for the workers and audited)."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET, require_POST

from onboarding.root_selectors import accounts_with_root_credentials
from portal.models import User
from portal.permissions import AUDITOR, MANAGER, capability_required
from switchroles import drift, drift_run
from switchroles.models import RoleDriftFinding


def _person(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


@require_GET
@capability_required(MANAGER, AUDITOR)
def drift_page(request: HttpRequest) -> HttpResponse:
    overview = drift.drift_overview()
    now = timezone.now()
    for finding in overview.role_findings:
        finding.can_repair = drift.finding_repairable(finding, now=now)  # type: ignore[attr-defined]
    root_findings = list(accounts_with_root_credentials())
    running = drift_run.drift_run_latest()
    progress = drift_run.drift_run_progress(run=running) if running is not None else None
    return render(request, "switchroles/drift.html",
                  {"overview": overview, "root_findings": root_findings, "drift_progress": progress})


@require_POST
@capability_required(MANAGER)
def drift_check_now(request: HttpRequest) -> HttpResponse:
    drift.drift_check_request(actor=_person(request), request=request)
    messages.info(request, "A drift check is on its way: it looks into every active account, so give it a minute, "
                           "then reload this page.")
    return redirect("switchroles:drift")


@require_POST
@capability_required(MANAGER)
def drift_repair(request: HttpRequest, finding_id: int) -> HttpResponse:
    finding = get_object_or_404(RoleDriftFinding, pk=finding_id)
    try:
        drift.drift_repair_request(finding=finding, actor=_person(request), request=request)
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Switchyard is re-applying its version of {finding.role_name or finding.account}.")
    return redirect("switchroles:drift")


@require_POST
@capability_required(MANAGER)
def drift_repair_main_account(request: HttpRequest) -> HttpResponse:
    drift.main_account_repair_request(actor=_person(request), request=request)
    messages.success(request, "Switchyard is rewriting the main account's policies from the grants, then checks "
                              "them again.")
    return redirect("switchroles:drift")
