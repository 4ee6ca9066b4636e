from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

from portal import selectors
from portal.health import health_report
from portal.people.http import AuthenticatedRequest


@login_required
@require_GET
def home(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "portal/home.html", selectors.home_summary(user=request.user))


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    report = health_report()
    return JsonResponse(report, status=200 if report["ok"] else 503)
