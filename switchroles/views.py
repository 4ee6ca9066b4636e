"""The directory (/links/, /go/<id>/, exports) and the managers' grant, team and enforcement pages.

Every lookup of something a person asked for by id goes through a selector scoped to them: an id
they may not use answers 404 whether or not it exists.
"""

from __future__ import annotations

from typing import Any

from allauth.account.decorators import reauthentication_required
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.forms import Form
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from portal.models import User
from portal.permissions import AUDITOR, MANAGER, capability_required
from switchroles import rendering, selectors, services
from switchroles.access_selectors import aws_refusal_by_name, aws_refusal_for_person
from switchroles.forms import GrantForm, RevokeForm, TeamForm, TeamMemberForm
from switchroles.links import SWITCH_ROLE_ENDPOINT, aws_cli_config, extend_switch_roles_config
from switchroles.models import Team

MAIN_SOURCE_PROFILE = "switchyard-main"
GRANT_STATUSES = {"in_force": "In force", "revoked": "Revoked", "expired": "Expired", "all": "All"}


def _person(request: HttpRequest) -> User:
    return request.user  # type: ignore[return-value]


def form_errors_from(form: Form, error: ValidationError) -> None:
    """Put a service's ValidationError next to the form's fields (or on the form)."""
    if hasattr(error, "error_dict"):
        for field, problems in error.message_dict.items():
            form.add_error(field if field in form.fields else None, problems)
    else:
        form.add_error(None, error.messages)


# --- the directory -----------------------------------------------------------------------------------


# Where the view puts the client sections into the rendered page (an HTML comment: no text from the
# database can produce one, it is escaped).
CLIENT_SECTIONS_SLOT = "<!-- client sections -->"


@login_required
@require_GET
def directory(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    # The page header asks about capabilities several times; one query answers them all.
    prefetch_related_objects([person], "groups")
    directory = selectors.directory_of_person(person=person)
    # Per-link URLs are these prefixes + id: reversing thousands of URLs costs more than the query.
    urls = {"go": reverse("switchroles:go", args=[0])[:-2], "links": reverse("switchroles:directory")}
    page = render_to_string(
        "switchroles/directory.html",
        {"directory": directory, "can_export_cli": bool(person.iam_username), "urls": urls,
         "aws_refuses": aws_refusal_by_name(person=person) if directory.links else "",
         "client_sections_slot": mark_safe(CLIENT_SECTIONS_SLOT)},  # noqa: S308 - a constant
        request,
    )
    # The client sections (megabytes for a person with thousands of links) join the page here: passed
    # through the template's nested blocks they would be copied a dozen times (see make bench).
    before, _, after = page.partition(CLIENT_SECTIONS_SLOT)
    return HttpResponse([before, rendering.client_sections(directory.clients, urls["go"], urls["links"]), after])


@login_required
@require_GET
def directory_aws_status(request: HttpRequest) -> HttpResponse:
    """The directory's "AWS refuses these links" notice, loaded after the page (htmx) so the
    directory itself keeps its fixed query count."""
    return render(request, "switchroles/_aws_refuses.html",
                  {"aws_refuses": aws_refusal_for_person(person=_person(request))})


def _link_or_404(request: HttpRequest, role_id: int) -> Any:
    role = selectors.link_of_person(person=_person(request), role_id=role_id)
    if role is None:
        raise Http404("No such link for you.")
    return role


@never_cache
@login_required
@require_GET
def go(request: HttpRequest, role_id: int) -> HttpResponse:
    """Check the grant again, record the use, and send the browser to the console's Switch Role
    form: only ever to the URL ``switch_role_url`` builds from the role's validated fields. No
    ``next`` or other parameter is read."""
    person = _person(request)
    role = selectors.link_of_person(person=person, role_id=role_id)
    if role is None:
        return render(request, "switchroles/link_refused.html", status=404)
    try:
        url = role.switch_role_url
    except ValueError as exc:
        return render(request, "switchroles/link_invalid.html", {"role": role, "problem": str(exc)}, status=409)
    if not url.startswith(SWITCH_ROLE_ENDPOINT + "?"):  # switch_role_url guarantees it; never trust less
        return render(request, "switchroles/link_invalid.html",
                      {"role": role, "problem": "The link does not point at the AWS console."}, status=409)
    grants = list(selectors.grants_covering(person=person, account_role=role))
    services.link_use_record(person=person, account_role=role, grants=grants, request=request)
    return HttpResponseRedirect(url)


@vary_on_headers("HX-Request")
@login_required
@require_GET
def why(request: HttpRequest, role_id: int) -> HttpResponse:
    role = _link_or_404(request, role_id)
    context = {"role": role, "grants": selectors.grants_covering(person=_person(request), account_role=role)}
    # From the directory (htmx) the answer is a table row, inserted under the link's own row.
    template = "switchroles/_why_row.html" if request.headers.get("HX-Request") else "switchroles/why.html"
    return render(request, template, context)


@vary_on_headers("HX-Request")
@login_required
@require_POST
def favourite(request: HttpRequest, role_id: int) -> HttpResponse:
    role = _link_or_404(request, role_id)
    is_favourite = services.favourite_toggle(person=_person(request), account_role=role)
    if request.headers.get("HX-Request"):
        return render(request, "switchroles/_favourite.html",
                      {"role": role, "is_favourite": is_favourite, "links_url": reverse("switchroles:directory")})
    return redirect("switchroles:directory")


def _download(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


@login_required
@require_GET
def export_extend_switch_roles(request: HttpRequest) -> HttpResponse:
    links = selectors.link_exports_of_person(person=_person(request))
    return _download(extend_switch_roles_config(links), "switchyard-extend-switch-roles.txt")


@login_required
@require_GET
def export_aws_config(request: HttpRequest) -> HttpResponse:
    person = _person(request)
    if not person.iam_username:
        return render(request, "switchroles/export_needs_iam_user.html", status=409)
    links = selectors.link_exports_of_person(person=person)
    text = aws_cli_config(
        links,
        source_profile=MAIN_SOURCE_PROFILE,
        mfa_serial=f"arn:aws:iam::{settings.SWITCHYARD_MAIN_ACCOUNT_ID}:mfa/{person.iam_username}",
        session_name=person.iam_username,
    )
    return _download(text, "switchyard-aws-config")


# --- grants ------------------------------------------------------------------------------------------


@require_GET
@capability_required(MANAGER, AUDITOR)
def grant_list(request: HttpRequest) -> HttpResponse:
    status = request.GET.get("status", "in_force")
    if status not in GRANT_STATUSES:
        status = "in_force"
    page = Paginator(selectors.grants_listed(status=status), 50).get_page(request.GET.get("page"))
    return render(request, "switchroles/grant_list.html", {"page": page, "status": status,
                                                           "statuses": GRANT_STATUSES})


@require_GET
@capability_required(MANAGER, AUDITOR)
def grant_detail(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(selectors.grants_listed(status="all"), pk=grant_id)
    return render(request, "switchroles/grant_detail.html", {"grant": grant, "uses": grant.uses.select_related(
        "person", "account_role", "account_role__account")[:20]})


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def grant_new(request: HttpRequest) -> HttpResponse:
    initial = {}
    for field, model in (("team", Team), ("person", User)):
        value = request.GET.get(field, "")
        if value.isascii() and value.isdigit() and model.objects.filter(pk=int(value)).exists():  # not "²"
            initial[field] = int(value)
    form = GrantForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic():
                grant = services.grant_create(
                    granted_by=_person(request), team=data["team"], person=data["person"], client=data["client"],
                    account=data["account"], templates=data["templates"], reason=data["reason"],
                    expires_at=data["expires_at"], request=request,
                )
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, "Access granted. AWS enforces it within a minute.")
            return redirect("switchroles:grant_detail", grant_id=grant.pk)
    return render(request, "switchroles/grant_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def grant_revoke(request: HttpRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(selectors.grants_listed(status="all"), pk=grant_id)
    if grant.revoked_at is not None:
        messages.info(request, "This grant was already revoked.")
        return redirect("switchroles:grant_detail", grant_id=grant.pk)
    form = RevokeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.grant_revoke(grant=grant, revoked_by=_person(request), reason=form.cleaned_data["reason"],
                              request=request)
        messages.success(request, "Access revoked. It is gone from the directory now and from AWS within a minute.")
        return redirect("switchroles:grant_detail", grant_id=grant.pk)
    return render(request, "switchroles/grant_revoke.html", {"grant": grant, "form": form})


# --- teams -------------------------------------------------------------------------------------------


@require_GET
@capability_required(MANAGER, AUDITOR)
def team_list(request: HttpRequest) -> HttpResponse:
    return render(request, "switchroles/team_list.html", {"teams": selectors.teams_listed()})


@require_GET
@capability_required(MANAGER, AUDITOR)
def team_detail(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team.objects.select_related("enforced_principal"), pk=team_id)
    person = _person(request)
    return render(request, "switchroles/team_detail.html", {
        "team": team,
        "members": selectors.team_members_now(team=team),
        "history": selectors.team_membership_history(team=team)[:50],
        "grants": selectors.grants_listed(status="in_force", team=team),
        "member_form": TeamMemberForm(team=team) if person.is_manager else None,
    })


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def team_new(request: HttpRequest) -> HttpResponse:
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(name=form.cleaned_data["name"],
                                        iam_group_name=form.cleaned_data["iam_group_name"],
                                        created_by=_person(request), request=request)
        except ValidationError as exc:
            form_errors_from(form, exc)
        else:
            messages.success(request, f"Team {team.name} created.")
            return redirect("switchroles:team_detail", team_id=team.pk)
    return render(request, "switchroles/team_form.html", {"form": form})


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def team_member_add(request: HttpRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id)
    form = TeamMemberForm(request.POST, team=team)
    if form.is_valid():
        person = form.cleaned_data["person"]
        services.team_member_add(team=team, person=person, added_by=_person(request), request=request)
        messages.success(request, f"{person} joined {team.name}.")
    else:
        messages.error(request, "Choose a person who is not in the team yet.")
    return redirect("switchroles:team_detail", team_id=team.pk)


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def team_member_remove(request: HttpRequest, team_id: int, person_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id)
    membership = get_object_or_404(team.memberships.filter(removed_at__isnull=True), person_id=person_id)
    services.team_member_remove(team=team, person=membership.person, removed_by=_person(request), request=request)
    messages.success(request, f"{membership.person} left {team.name}. Their team links are gone now; "
                              "AWS follows within a minute.")
    return redirect("switchroles:team_detail", team_id=team.pk)


# --- enforcement -------------------------------------------------------------------------------------


@require_GET
@capability_required(MANAGER, AUDITOR)
def enforcement(request: HttpRequest) -> HttpResponse:
    return render(request, "switchroles/enforcement.html", selectors.enforcement_overview())


@require_POST
@capability_required(MANAGER)
def enforcement_check(request: HttpRequest) -> HttpResponse:
    """Queue a drift check now (it first applies pending changes). Writes nothing itself."""
    from switchroles.tasks import enforcement_drift_check

    transaction.on_commit(lambda: enforcement_drift_check.delay(), robust=True)
    messages.info(request, "A drift check is on its way; reload this page in a few seconds.")
    return HttpResponseRedirect(reverse("switchroles:enforcement"))
