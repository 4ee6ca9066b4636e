"""Role templates: managers list, add and edit them."""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.people.http import AuthenticatedRequest
from portal.people.permissions import AUDITOR, MANAGER, capability_required
from portal.web.form_errors import service_errors_to_form, service_outcome_message
from portal.web.reauth import reauthentication_required
from switchroles.models import RoleTemplate, RolloutAccount
from switchroles.rollout import rollout_account_retry, rollout_progress
from switchroles.template_forms import RoleTemplateForm
from switchroles.template_services import role_template_create, role_template_update


@require_GET
@capability_required(MANAGER)
def template_list(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "roletemplates/list.html", {"templates": RoleTemplate.objects.order_by("pk")})


def _save(request: AuthenticatedRequest, form: RoleTemplateForm, template: RoleTemplate | None) -> RoleTemplate | None:
    try:
        if template is None:
            return role_template_create(actor=request.user, request=request, **form.template_fields())
        return role_template_update(template=template, actor=request.user, request=request,
                                    **form.template_fields())
    except ValidationError as error:
        service_errors_to_form(form, error)
        return None


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required  # a template decides what every account's role may do
def template_new(request: AuthenticatedRequest) -> HttpResponse:
    form = RoleTemplateForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, None)
        if saved is not None:
            messages.success(request, f"Role template {saved.name} was added.")
            return redirect("roletemplates:list")
    status = 400 if request.method == "POST" else 200
    return render(request, "roletemplates/form.html", {"form": form, "template": None}, status=status)


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required  # an edit is rolled out to every account that has the role
def template_edit(request: AuthenticatedRequest, template_id: int) -> HttpResponse:
    template = get_object_or_404(RoleTemplate, pk=template_id)
    form = RoleTemplateForm(request.POST if request.method == "POST" else None, instance=template)
    if request.method == "POST" and form.is_valid():
        saved = _save(request, form, template)
        if saved is not None:
            messages.success(request, f"Role template {saved.name} is at revision {saved.revision}; it is being "
                                      "rolled out to every account that has the role.")
            return redirect("switchroles:template_rollout", template_id=saved.pk)
    status = 400 if request.method == "POST" else 200
    return render(request, "roletemplates/form.html",
                  {"form": form, "template": template, "progress": rollout_progress(template=template)},
                  status=status)


@require_GET
@capability_required(MANAGER, AUDITOR)
def template_rollout(request: AuthenticatedRequest, template_id: int) -> HttpResponse:
    """Where the template's latest roll-out stands; polled by htmx while it runs."""
    template = get_object_or_404(RoleTemplate, pk=template_id)
    context = {"template": template, "progress": rollout_progress(template=template)}
    if request.headers.get("HX-Request"):
        return render(request, "roletemplates/rollout_progress.html", context)
    return render(request, "roletemplates/rollout.html", context)


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def rollout_account_retry_view(request: AuthenticatedRequest, template_id: int, part_id: int) -> HttpResponse:
    part = get_object_or_404(RolloutAccount.objects.filter(rollout__template_id=template_id), pk=part_id)
    service_outcome_message(
        request,
        lambda: rollout_account_retry(part=part, actor=request.user, request=request),
        "That account will be tried again.",
    )
    return redirect("switchroles:template_rollout", template_id=template_id)
