"""The directory (/links/, /go/<id>/, exports) and the managers' grant, team and enforcement pages.

Every lookup of something a person asked for by id goes through a selector scoped to them: an id
they may not use answers 404 whether or not it exists.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import transaction
from django.db.models import prefetch_related_objects
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.html import escape
from django.utils.safestring import SafeString
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST
from django.views.decorators.vary import vary_on_headers

from portal.aws import default_client_factory, mfa_device_of
from portal.people.http import AuthenticatedRequest
from portal.people.models import User
from portal.people.permissions import AUDITOR, MANAGER, capability_required
from portal.web.form_errors import service_errors_to_form
from portal.web.reauth import reauthentication_required
from switchroles import selectors, services
from switchroles.access_selectors import aws_refusal_for_person, directory_refusals_mark
from switchroles.export_forms import ExportForm
from switchroles.forms import GrantForm, RevokeForm, TeamForm, TeamMemberForm
from switchroles.links import (
    AESR_SYNC_MAX_CHARS,
    DEFAULT_PROFILE_PREFIX,
    SWITCH_ROLE_ENDPOINT,
    aesr_config,
    aws_cli_config,
)
from switchroles.models import AccountRole, Team
from switchroles.tasks import enforcement_drift_check

GRANT_STATUSES = {"in_force": "In force", "revoked": "Revoked", "expired": "Expired", "all": "All"}


# --- the directory -----------------------------------------------------------------------------------


# Up to this many links every client is open; beyond, clients are collapsed until opened or filtered
# (each opened client's rows are made by directory.js from the page's index, or by the server for
# ?client=<slug> without JavaScript).
SMALL_DIRECTORY_LINKS = 40
QUERY_MAX_CHARS = 200
CLIENTS_PER_BATCH = 25


def _client_sections(directory: selectors.Directory, *, open_all: bool,
                     opened: str) -> list[list[tuple[Any, ...]]]:
    """Per client: slug, name, "<n> links", whether it is open, and its links (a tuple each: the
    page has hundreds of clients, and the template reads a tuple's parts faster than attributes),
    in batches of ``CLIENTS_PER_BATCH``: the page sets aside each batch off screen as one block
    (content-visibility), so the browser tracks a few dozen blocks on every frame, not every client.

    Escaping is most of what a template variable costs, and the template writes each slug four
    times: the slug is escaped here once (the template leaves escaped text as it is), and the count,
    a number and a word, needs none."""
    sections = [(escape(group.client_slug), group.client_name,
                 SafeString(f"{len(group.links)} link{'' if len(group.links) == 1 else 's'}"),
                 open_all or group.client_slug == opened, group.links) for group in directory.clients]
    return [sections[start:start + CLIENTS_PER_BATCH] for start in range(0, len(sections), CLIENTS_PER_BATCH)]


def _directory_index(directory: selectors.Directory) -> dict[str, Any]:
    """What directory.js filters and draws rows from, built once: the clients, the reasons AWS
    refuses links, and per link its id, client (position), account name and ID, tier, display
    name, colour, favourite flag, problem and refusal (1 + its position in ``refusals``, 0: none)."""
    clients = [[group.client_slug, group.client_name] for group in directory.clients]
    position = {group.client_id: number for number, group in enumerate(directory.clients)}
    refusals: dict[str, int] = {}
    for link in directory.links:
        if link.refused:
            refusals.setdefault(link.refused, len(refusals) + 1)
    # Tuples of plain values: the garbage collector stops tracking them, so thousands of them do
    # not make the next full collection longer (see make bench).
    links = [(link.role_id, position[link.client_id], link.account_name, link.account_id, link.template_name,
              link.display_name, link.color, int(link.is_favourite), link.problem, refusals.get(link.refused, 0))
             for link in directory.links]
    return {"clients": clients, "refusals": list(refusals), "links": links}


_ROW_TEMPLATE = selectors.DirectoryLink(0, 0, "", "", "", "", "", "", "/", "", "", "")


@login_required
@require_GET
def directory(request: AuthenticatedRequest) -> HttpResponse:
    person = request.user
    # The page header asks about capabilities several times; one query answers them all.
    prefetch_related_objects([person], "groups")
    directory = selectors.directory_of_person(person=person)
    aws_refuses = directory_refusals_mark(person=person, links=directory.links)
    query = request.GET.get("q", "")[:QUERY_MAX_CHARS].strip()
    words = selectors.filter_words(query)
    opened = request.GET.get("client", "")
    open_all = len(directory.links) <= SMALL_DIRECTORY_LINKS
    context = {
        "directory": directory,
        "query": query,
        "results": [link for link in directory.links if link.matches(words)] if words else None,
        "client_batches": _client_sections(directory, open_all=open_all, opened=opened),
        "index": _directory_index(directory),
        "row_template": _ROW_TEMPLATE,
        "links_url": reverse("switchroles:directory"),
        "can_export_cli": bool(person.iam_username),
        "iam_username": person.iam_username,
        "main_account_id": settings.SWITCHYARD_MAIN_ACCOUNT_ID,
        # Unbound, for its fields only: this page offers "one client" without listing hundreds of
        # them (the export asks which on its next page).
        "export_form": ExportForm(clients=[]),
        "aws_refuses": aws_refuses,
    }
    return render(request, "switchroles/directory.html", context)


@login_required
@require_GET
def directory_aws_status(request: AuthenticatedRequest) -> HttpResponse:
    """The directory's "AWS refuses these links" notice, loaded after the page (htmx) so the
    directory itself keeps its fixed query count."""
    return render(request, "switchroles/_aws_refuses.html",
                  {"aws_refuses": aws_refusal_for_person(person=request.user)})


def _link_or_404(request: AuthenticatedRequest, role_id: int) -> AccountRole:
    role = selectors.link_of_person(person=request.user, role_id=role_id)
    if role is None:
        raise Http404("No such link for you.")
    return role


@never_cache
@login_required
@require_GET
def go(request: AuthenticatedRequest, role_id: int) -> HttpResponse:
    """Check the grant again, record the use, and send the browser to the console's Switch Role
    form: only ever to the URL ``switch_role_url`` builds from the role's validated fields. No
    ``next`` or other parameter is read."""
    person = request.user
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
def why(request: AuthenticatedRequest, role_id: int) -> HttpResponse:
    role = _link_or_404(request, role_id)
    context = {"role": role, "grants": selectors.grants_covering(person=request.user, account_role=role)}
    # From the directory (htmx) the answer is a table row, inserted under the link's own row.
    template = "switchroles/_why_row.html" if request.headers.get("HX-Request") else "switchroles/why.html"
    return render(request, template, context)


@vary_on_headers("HX-Request")
@login_required
@require_POST
def favourite(request: AuthenticatedRequest, role_id: int) -> HttpResponse:
    role = _link_or_404(request, role_id)
    is_favourite = services.favourite_toggle(person=request.user, account_role=role)
    if request.headers.get("HX-Request"):
        return render(request, "switchroles/_favourite.html", {"role_id": role.pk, "is_favourite": is_favourite})
    return redirect("switchroles:directory")


def _download(text: str, filename: str) -> HttpResponse:
    response = HttpResponse(text, content_type="text/plain; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{filename}"'
    response["Cache-Control"] = "no-store"
    return response


def _export_form_or_page(request: AuthenticatedRequest) -> tuple[ExportForm | None, HttpResponse | None]:
    """The export options from the query string, or the page showing what is wrong with them."""
    directory = selectors.directory_of_person(person=request.user)
    form = ExportForm(request.GET or None, clients=directory.clients)
    if request.GET and not form.is_valid():
        return None, render(request, "switchroles/export_options.html",
                            {"export_form": form, "can_export_cli": bool(request.user.iam_username)}, status=400)
    if not request.GET:
        form = ExportForm({"scope": "all", "prefix": DEFAULT_PROFILE_PREFIX}, clients=directory.clients)
        form.is_valid()
    if form.needs_a_client():
        return None, render(request, "switchroles/export_options.html",
                            {"export_form": form, "can_export_cli": bool(request.user.iam_username)})
    return form, None


@login_required
@require_GET
def export_extend_switch_roles(request: AuthenticatedRequest) -> HttpResponse:
    form, problem = _export_form_or_page(request)
    if form is None:
        return problem  # type: ignore[return-value]
    links = selectors.link_exports_of_person(person=request.user, **form.selection())
    main_account_id = settings.SWITCHYARD_MAIN_ACCOUNT_ID
    export = aesr_config(
        links, base_account_id=main_account_id or None,
        base_profile_name=getattr(settings, "SWITCHYARD_MAIN_ACCOUNT_ALIAS", "") or main_account_id or None,
    )
    if not export.fits_sync_storage and request.GET.get("anyway") != "1":
        return render(request, "switchroles/export_too_large.html", {
            "export": export, "limit": AESR_SYNC_MAX_CHARS, "export_form": form,
            "percent": round(100 * export.compressed_chars / AESR_SYNC_MAX_CHARS),
            "anyway_query": _with_query(request, anyway="1"),
        }, status=413)
    return _download(export.text, "switchyard-extend-switch-roles.txt")


def _with_query(request: HttpRequest, **values: str) -> str:
    query = request.GET.copy()
    for key, value in values.items():
        query[key] = value
    return query.urlencode()


@login_required
@require_GET
def export_aws_config(request: AuthenticatedRequest) -> HttpResponse:
    person = request.user
    if not person.iam_username:
        return render(request, "switchroles/export_needs_iam_user.html", status=409)
    form, problem = _export_form_or_page(request)
    if form is None:
        return problem  # type: ignore[return-value]
    links = selectors.link_exports_of_person(person=person, **form.selection())
    prefix = form.profile_prefix()
    mfa = mfa_device_of(clients=default_client_factory(), user_name=person.iam_username)
    text = aws_cli_config(
        links,
        source_profile=f"{prefix}main",
        main_account_id=settings.SWITCHYARD_MAIN_ACCOUNT_ID,
        mfa_serial=mfa.serial,
        mfa_note=mfa.note,
        session_name=person.iam_username,
        region=settings.AWS_REGION or None,
        prefix=prefix,
    )
    return _download(text, "switchyard-aws-config")


# --- grants ------------------------------------------------------------------------------------------


@require_GET
@capability_required(MANAGER, AUDITOR)
def grant_list(request: AuthenticatedRequest) -> HttpResponse:
    status = request.GET.get("status", "in_force")
    if status not in GRANT_STATUSES:
        status = "in_force"
    page = Paginator(selectors.grants_listed(status=status), 50).get_page(request.GET.get("page"))
    return render(request, "switchroles/grant_list.html", {"page": page, "status": status,
                                                           "statuses": GRANT_STATUSES})


@require_GET
@capability_required(MANAGER, AUDITOR)
def grant_detail(request: AuthenticatedRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(selectors.grants_listed(status="all"), pk=grant_id)
    return render(request, "switchroles/grant_detail.html", {"grant": grant, "uses": grant.uses.select_related(
        "person", "account_role", "account_role__account")[:20]})


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def grant_new(request: AuthenticatedRequest) -> HttpResponse:
    initial = {}
    for field, model in (("team", Team), ("person", User)):
        value = request.GET.get(field, "")
        if value.isascii() and value.isdigit() and model.objects.filter(pk=int(value)).exists():  # not "²"
            initial[field] = int(value)
    form = GrantForm(request.POST or None, initial=initial)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            with transaction.atomic(durable=True):
                grant = services.grant_create(
                    granted_by=request.user, team=data["team"], person=data["person"], client=data["client"],
                    account=data["account"], templates=data["templates"], reason=data["reason"],
                    expires_at=data["expires_at"], request=request,
                )
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            messages.success(request, "Access granted. AWS enforces it within a minute.")
            return redirect("switchroles:grant_detail", grant_id=grant.pk)
    return render(request, "switchroles/grant_form.html", {"form": form})


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def grant_revoke(request: AuthenticatedRequest, grant_id: int) -> HttpResponse:
    grant = get_object_or_404(selectors.grants_listed(status="all"), pk=grant_id)
    if grant.revoked_at is not None:
        messages.info(request, "This grant was already revoked.")
        return redirect("switchroles:grant_detail", grant_id=grant.pk)
    form = RevokeForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.grant_revoke(grant=grant, revoked_by=request.user, reason=form.cleaned_data["reason"],
                              request=request)
        messages.success(request, "Access revoked. It is gone from the directory now and from AWS within a minute.")
        return redirect("switchroles:grant_detail", grant_id=grant.pk)
    return render(request, "switchroles/grant_revoke.html", {"grant": grant, "form": form})


# --- teams -------------------------------------------------------------------------------------------


@require_GET
@capability_required(MANAGER, AUDITOR)
def team_list(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "switchroles/team_list.html", {"teams": selectors.teams_listed()})


@require_GET
@capability_required(MANAGER, AUDITOR)
def team_detail(request: AuthenticatedRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team.objects.select_related("enforced_principal"), pk=team_id)
    person = request.user
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
def team_new(request: AuthenticatedRequest) -> HttpResponse:
    form = TeamForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            team = services.team_create(name=form.cleaned_data["name"],
                                        iam_group_name=form.cleaned_data["iam_group_name"],
                                        created_by=request.user, request=request,
                                        notification_webhook_url=form.cleaned_data.get("notification_webhook_url")
                                        or "")
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            messages.success(request, f"Team {team.name} created.")
            return redirect("switchroles:team_detail", team_id=team.pk)
    return render(request, "switchroles/team_form.html", {"form": form})


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def team_member_add(request: AuthenticatedRequest, team_id: int) -> HttpResponse:
    team = get_object_or_404(Team.objects.select_related("enforced_principal"), pk=team_id)
    form = TeamMemberForm(request.POST, team=team)
    if form.is_valid():
        person = form.cleaned_data["person"]
        try:
            services.team_member_add(team=team, person=person, added_by=request.user, request=request)
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            messages.success(request, f"{person} joined {team.name}.")
            return redirect("switchroles:team_detail", team_id=team.pk)
    # The page again, with the reason under the field (e.g. an auditor: separation of duties).
    return render(request, "switchroles/team_detail.html", {
        "team": team,
        "members": selectors.team_members_now(team=team),
        "history": selectors.team_membership_history(team=team)[:50],
        "grants": selectors.grants_listed(status="in_force", team=team),
        "member_form": form,
    })


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def team_member_remove(request: AuthenticatedRequest, team_id: int, person_id: int) -> HttpResponse:
    team = get_object_or_404(Team, pk=team_id)
    membership = get_object_or_404(team.memberships.filter(removed_at__isnull=True), person_id=person_id)
    services.team_member_remove(team=team, person=membership.person, removed_by=request.user, request=request)
    messages.success(request, f"{membership.person} left {team.name}. Their team links are gone now; "
                              "AWS follows within a minute.")
    return redirect("switchroles:team_detail", team_id=team.pk)


# --- enforcement -------------------------------------------------------------------------------------


@require_GET
@capability_required(MANAGER, AUDITOR)
def enforcement(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "switchroles/enforcement.html", selectors.enforcement_overview())


@require_POST
@capability_required(MANAGER)
def enforcement_check(request: AuthenticatedRequest) -> HttpResponse:
    """Queue a drift check now (it first applies pending changes). Writes nothing itself."""
    transaction.on_commit(lambda: enforcement_drift_check.delay(), robust=True)
    messages.info(request, "A drift check is on its way; reload this page in a few seconds.")
    return HttpResponseRedirect(reverse("switchroles:enforcement"))
