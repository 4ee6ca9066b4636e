from __future__ import annotations

from django.core.paginator import Paginator
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from portal.audit_selectors import audit_events_filtered
from portal.models import AuditChainCheck
from portal.permissions import AUDITOR, MANAGER, capability_required


@require_GET
@capability_required(AUDITOR, MANAGER)
def events(request: HttpRequest) -> HttpResponse:
    filters = {k: request.GET.get(k, "")[:100] for k in ("action", "actor", "target_type", "target_id")}
    page = Paginator(audit_events_filtered(**filters), 50).get_page(request.GET.get("page"))
    return render(
        request,
        "portal/audit_events.html",
        {"page": page, "filters": filters, "last_chain_check": AuditChainCheck.objects.first()},
    )
