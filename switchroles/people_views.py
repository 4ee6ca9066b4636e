"""People management for managers: add a person (a temporary password shown once; MFA enrolment
is forced at their first sign-in by ``RequireMfaMiddleware``), change their IAM user name,
capabilities and teams. There is no self sign-up."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import Prefetch, Q, QuerySet
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods

from portal.people.http import AuthenticatedRequest
from portal.people.models import User
from portal.people.permissions import MANAGER, capability_required
from portal.web.form_errors import service_errors_to_form
from portal.web.reauth import reauthentication_required
from switchroles import leavers, services
from switchroles.forms import PersonForm
from switchroles.models import TeamMembership
from switchroles.services import CAPABILITY_NAMES


def people_managed() -> QuerySet[User]:
    """The people a manager may see and change: everyone but superusers (those belong to the
    administrators, through the Django admin)."""
    return User.objects.filter(is_superuser=False).prefetch_related(
        "groups",
        Prefetch("memberships", queryset=TeamMembership.objects.filter(removed_at__isnull=True)
                 .select_related("team"), to_attr="open_memberships"),
    ).order_by("username")


@require_GET
@capability_required(MANAGER)
def people_list(request: AuthenticatedRequest) -> HttpResponse:
    query = request.GET.get("q", "").replace("\x00", "").strip()[:100]  # PostgreSQL refuses NUL in text
    people = people_managed()
    if query:
        people = people.filter(
            Q(username__icontains=query) | Q(iam_username__icontains=query) | Q(first_name__icontains=query)
            | Q(last_name__icontains=query) | Q(email__icontains=query)
        )
    page = Paginator(people, 50).get_page(request.GET.get("page"))
    return render(request, "people/person_list.html", {"page": page, "q": query})


@never_cache
@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def person_new(request: AuthenticatedRequest) -> HttpResponse:
    form = PersonForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic(durable=True):
                person, password = services.person_create(
                    created_by=request.user,
                    username=data["username"], first_name=data["first_name"], last_name=data["last_name"],
                    email=data["email"], iam_username=data["iam_username"], capabilities=data["capabilities"],
                    teams=data["teams"], request=request,
                )
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            # Shown once, in this response only: not stored in clear, not in a message or a log.
            response = render(request, "people/person_created.html", {"person": person, "password": password})
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "people/person_form.html", {"form": form, "person": None})


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def person_edit(request: AuthenticatedRequest, person_id: int) -> HttpResponse:
    person = get_object_or_404(people_managed(), pk=person_id)
    initial = {
        "username": person.username, "first_name": person.first_name, "last_name": person.last_name,
        "email": person.email, "iam_username": person.iam_username,
        "capabilities": [g.name for g in person.groups.all() if g.name in CAPABILITY_NAMES],
        "teams": [m.team for m in person.open_memberships],  # type: ignore[attr-defined]
    }
    form = PersonForm(request.POST or None, initial=initial, person=person)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        # A mover: a change of teams shows the access gained and lost, and saves only once confirmed.
        move = leavers.mover_preview(person=person, teams=data["teams"])
        if move.changes_teams and request.POST.get("confirm_move") != "yes":
            return render(request, "people/person_move_confirm.html", {"form": form, "person": person, "move": move})
        try:
            with transaction.atomic(durable=True):
                services.person_update(
                    person=person, updated_by=request.user,
                    first_name=data["first_name"], last_name=data["last_name"], email=data["email"],
                    iam_username=data["iam_username"], capabilities=data["capabilities"], teams=data["teams"],
                    request=request,
                )
                if move.changes_teams:
                    leavers.person_move_record(person=person, moved_by=request.user,
                                               preview=move, request=request)
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            messages.success(request, f"{person.username} updated.")
            return redirect("switchroles:people_list")
    return render(request, "people/person_form.html", {"form": form, "person": person})
