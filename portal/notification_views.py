"""A person's notifications page: which notices they receive, and the notices sent to them (the
sandbox's outbox, visible in ``make run``; in production, a record of what was mailed)."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from portal import notifications
from portal.people.http import AuthenticatedRequest


@login_required
@require_http_methods(["GET", "POST"])
def notification_preferences(request: AuthenticatedRequest) -> HttpResponse:
    person = request.user
    if request.method == "POST":
        notifications.preferences_set(person=person, receive=request.POST.getlist("receive"), request=request)
        messages.success(request, "Your notification choices are saved.")
        return redirect("notification_preferences")
    page = Paginator(notifications.notices_of(person=person), 20).get_page(request.GET.get("page"))
    return render(request, "portal/notifications.html", {
        "preferences": [(event, label, on) for (event, on), label in zip(
            notifications.preferences_of(person=person).items(), notifications.EVENTS.values(), strict=True)],
        "page": page,
    })
