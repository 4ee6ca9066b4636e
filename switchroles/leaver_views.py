"""Leavers (managers: one action, re-authenticated, with everything that will go shown first),
what happened after (AWS read back), and the separation-of-duties conflicts that already exist."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.people import duties
from portal.people.http import AuthenticatedRequest
from portal.people.permissions import AUDITOR, MANAGER, capability_required
from portal.web.form_errors import service_errors_to_form
from portal.web.reauth import reauthentication_required
from switchroles import leavers
from switchroles.duties import duty_conflicts
from switchroles.forms import LeaverForm
from switchroles.people_views import people_managed


@never_cache
@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def person_leave(request: AuthenticatedRequest, person_id: int) -> HttpResponse:
    person = get_object_or_404(people_managed(), pk=person_id)
    departure = person.departures.order_by("-left_at").first()
    if not person.is_active:
        return render(request, "people/person_leave.html", {"person": person, "departure": departure})
    form = LeaverForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            departure = leavers.person_leave(person=person, left_by=request.user,
                                             reason=form.cleaned_data["reason"], request=request)
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            messages.success(request, f"{person.username} has left: signed out, out of every team, grants revoked. "
                                      "Their IAM user is being taken out of Switchyard in AWS.")
            return redirect("switchroles:departure_detail", departure_id=departure.pk)
    return render(request, "people/person_leave.html", {
        "person": person, "form": form, "preview": leavers.leaver_preview(person=person), "departure": None,
    })


@require_GET
@capability_required(MANAGER, AUDITOR)
def departure_detail(request: AuthenticatedRequest, departure_id: int) -> HttpResponse:
    departure = get_object_or_404(leavers.departures_listed(), pk=departure_id)
    return render(request, "people/departure_detail.html", {"departure": departure})


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def departure_retry(request: AuthenticatedRequest, departure_id: int) -> HttpResponse:
    departure = get_object_or_404(leavers.departures_listed(), pk=departure_id)
    leavers.departure_aws_retry(departure=departure, requested_by=request.user,
                                request=request)
    messages.info(request, "Trying the removal in AWS again; reload in a few seconds.")
    return redirect("switchroles:departure_detail", departure_id=departure.pk)


@require_GET
@capability_required(MANAGER, AUDITOR)
def duty_conflicts_page(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "people/duty_conflicts.html", {
        "conflicts": duty_conflicts(),
        "auditors_hold_no_links": duties.auditors_hold_no_links(),
        "no_self_review": duties.no_self_review(),
        "departures": leavers.departures_listed()[:20],
        "settings_names": ("SWITCHYARD_SOD_AUDITORS_HOLD_NO_LINKS", "SWITCHYARD_SOD_NO_SELF_REVIEW"),
    })
