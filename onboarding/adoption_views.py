"""Pages for bringing existing accounts in: adopt the Organization's members, adopt or invite many
at once, and one page of a batch's progress. Managers act (re-authenticated); auditors read batches."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods

from onboarding import adoption, selectors
from onboarding.adoption_forms import AdoptForm, BulkForm
from onboarding.models import AwsAccount
from portal.aws import AwsError
from portal.permissions import AUDITOR, MANAGER, capability_required
from portal.reauth import reauthentication_required


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required(allow_get=True)
def adopt(request: HttpRequest) -> HttpResponse:
    search = request.GET.get("q", "")[:100]
    try:
        members = adoption.unmanaged_members(search=search)
        unreadable = ""
    except AwsError as error:
        members, unreadable = [], f"{error.plain_message} (AWS said: {error.code})"
    form = AdoptForm(request.POST or None, members=members)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        client_name = data["client"].name if data["client"] else data["client_name"]
        rows = [adoption.Row(account_id=member_id, client_name=client_name,
                             account_name=form.members_by_id[member_id].name[:50], line=n)
                for n, member_id in enumerate(data["members"], start=1)]
        try:
            batch = adoption.bulk_request(
                actor=request.user, origin=AwsAccount.Origin.ADOPTED, rows=rows,  # type: ignore[arg-type]
                templates=list(data["templates"]), reason=data["reason"],
                existing_roles=data["existing_roles"] or "report", access_role_name=data["access_role_name"],
                request=request,
            )
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            messages.success(request, f"Adoption of {len(rows)} account{'s' if len(rows) != 1 else ''} has started.")
            return redirect(batch)
    status = 400 if request.method == "POST" else 200
    return render(request, "onboarding/adopt.html",
                  {"form": form, "members": members, "search": search, "unreadable": unreadable}, status=status)


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required(allow_get=True)
def bulk(request: HttpRequest) -> HttpResponse:
    form = BulkForm(request.POST or None, request.FILES or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            rows = adoption.bulk_rows(data["rows"])
            batch = adoption.bulk_request(
                actor=request.user, origin=data["origin"], rows=rows,  # type: ignore[arg-type]
                templates=list(data["templates"]), reason=data["reason"],
                existing_roles=data["existing_roles"] or "report", access_role_name=data["access_role_name"],
                request=request,
            )
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            messages.success(request, f"{batch}: {len(rows)} account{'s' if len(rows) != 1 else ''} on their way.")
            return redirect(batch)
    status = 400 if request.method == "POST" else 200
    return render(request, "onboarding/bulk.html", {"form": form}, status=status)


@require_GET
@capability_required(MANAGER, AUDITOR)
def batch_detail(request: HttpRequest, batch_id: int) -> HttpResponse:
    batch = selectors.batch_for_viewer(viewer=request.user, batch_id=batch_id)
    accounts = selectors.batch_accounts(batch=batch)
    return render(request, "onboarding/batch_detail.html", {
        "batch": batch, "accounts": accounts, "counts": selectors.batch_counts(accounts=accounts),
    })
