"""Clients and their accounts. Managers onboard and act; auditors read; everyone else gets 403."""

from __future__ import annotations

import json

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from onboarding import root_selectors, root_services, selectors, services, workflow
from onboarding.forms import OnboardingForm
from onboarding.models import AwsAccount, Client
from portal.aws import access_role_cloudformation_template
from portal.permissions import AUDITOR, MANAGER, capability_required
from portal.reauth import reauthentication_required

ACCESS_ROLE_TEMPLATE_FILENAME = "switchyard-access-role.yaml"


@require_GET
@capability_required(MANAGER, AUDITOR)
def client_list(request: HttpRequest) -> HttpResponse:
    clients = selectors.clients_for_viewer(viewer=request.user)
    return render(request, "onboarding/client_list.html", {"clients": clients})


@require_GET
@capability_required(MANAGER, AUDITOR)
def client_detail(request: HttpRequest, client_id: int) -> HttpResponse:
    client = selectors.client_for_viewer(viewer=request.user, client_id=client_id)
    accounts = selectors.accounts_of_client(client=client)
    return render(request, "onboarding/client_detail.html", {"client": client, "accounts": accounts})


def _form_context(form: OnboardingForm) -> dict[str, object]:
    slugs = {str(client.pk): client.slug for client in Client.objects.only("pk", "slug")}
    return {"form": form, "mailbox": settings.SWITCHYARD_ACCOUNT_MAILBOX, "client_slugs": json.dumps(slugs)}


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required(allow_get=True)
def client_new(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        initial: dict[str, object] = {}
        asked = request.GET.get("client", "")
        # isdigit() alone takes "²" and other digits int() refuses.
        chosen = Client.objects.filter(pk=int(asked)).first() if asked.isascii() and asked.isdigit() else None
        if chosen is not None:
            initial = {"client": chosen, "root_email": selectors.suggested_root_email(client_slug=chosen.slug)}
        return render(request, "onboarding/client_new.html", _form_context(OnboardingForm(initial=initial)))
    form = OnboardingForm(request.POST)
    if form.is_valid():
        data = form.cleaned_data
        try:
            account = services.onboarding_request(
                actor=request.user,  # type: ignore[arg-type]
                client=data["client"],
                client_name=data["client_name"],
                client_slug=data["client_slug"],
                origin=data["origin"],
                account_name=data["account_name"],
                root_email=data["root_email"],
                account_id=data["account_id"],
                templates=list(data["templates"]),
                reason=data["reason"],
                request=request,
                root_credentials=bool(data.get("root_credentials")),
            )
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            messages.success(request, f"Onboarding of {account} has started.")
            return redirect(account)
    return render(request, "onboarding/client_new.html", _form_context(form), status=400)


def _account_context(request: HttpRequest, account: AwsAccount) -> dict[str, object]:
    steps = list(account.steps.all())
    for step in steps:
        step.next_action = workflow.next_action_for(step, account)  # type: ignore[attr-defined]
    user = request.user
    current = next((s for s in steps if s.status != s.Status.SUCCEEDED), None)
    return {
        "account": account,
        "steps": steps,
        "roles": list(account.roles.all()),
        "existing_roles": list(account.existing_roles_found.select_related("account__client")),
        "current_step": current,
        "can_act": user.is_manager,  # type: ignore[union-attr]
        "can_cancel": user.is_manager and services.account_cancellable(account, steps),  # type: ignore[union-attr]
        "can_hand_back": user.is_manager and account.state == AwsAccount.State.ACTIVE,  # type: ignore[union-attr]
        "can_change_access_role": user.is_manager and account.account_id  # type: ignore[union-attr]
        and account.state not in AwsAccount.FINAL_STATES and account.state != AwsAccount.State.HANDING_BACK,
        "show_access_role": account.origin == AwsAccount.Origin.INVITED and current is not None
        and current.kind == current.Kind.AWAIT_ACCESS_ROLE,
        "main_account_id": settings.SWITCHYARD_MAIN_ACCOUNT_ID,
        "access_role_filename": ACCESS_ROLE_TEMPLATE_FILENAME,
        "root_posture": root_selectors.posture_of(account),
        "can_remove_root": user.is_manager and root_services.root_removal_allowed(account),  # type: ignore[union-attr]
    }


@require_GET
@capability_required(MANAGER, AUDITOR)
def account_detail(request: HttpRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    return render(request, "onboarding/account_detail.html", _account_context(request, account))


@require_GET
@capability_required(MANAGER, AUDITOR)
def account_progress(request: HttpRequest, account_id: int) -> HttpResponse:
    """The live part of the account page, polled by htmx while the account is being onboarded."""
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    return render(request, "onboarding/_progress.html", _account_context(request, account))


def access_role_template_for(account: AwsAccount) -> str:
    """The CloudFormation template an invited account's client deploys (the download, and what
    ``sandbox_client`` deploys): the account's access role name, trusting Switchyard's workers."""
    return access_role_cloudformation_template(
        main_account_id=settings.SWITCHYARD_MAIN_ACCOUNT_ID,
        principal_arn=settings.SWITCHYARD_WORKER_PRINCIPAL_ARN,
        role_name=account.access_role,
    )


@require_GET
@capability_required(MANAGER)
def access_role_template(request: HttpRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    if account.origin != AwsAccount.Origin.INVITED:
        return HttpResponse("Only invited accounts need this template.", status=404, content_type="text/plain")
    body = access_role_template_for(account)
    response = HttpResponse(body, content_type="application/x-yaml; charset=utf-8")
    response["Content-Disposition"] = f'attachment; filename="{ACCESS_ROLE_TEMPLATE_FILENAME}"'
    return response


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def step_retry(request: HttpRequest, account_id: int, step_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    step = selectors.step_of_account(account=account, step_id=step_id)
    try:
        services.onboarding_step_retry(step=step, actor=request.user, request=request)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"“{step.get_kind_display()}” will run again.")
    return redirect(account)


@require_POST
@capability_required(MANAGER)
@reauthentication_required
def account_cancel(request: HttpRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    try:
        services.onboarding_cancel(account=account, actor=request.user, request=request)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, f"Onboarding of {account} was cancelled.")
    return redirect(account)


@require_POST
@capability_required(MANAGER)
def access_verify(request: HttpRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    try:
        services.access_role_verify_now(account=account, actor=request.user, request=request)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Switchyard is checking the access role now.")
    return redirect(account)


@require_POST
@capability_required(MANAGER)
@reauthentication_required  # which role Switchyard assumes in the client's account
def access_role_change(request: HttpRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    try:
        services.access_role_set(account=account, role_name=request.POST.get("access_role_name", "")[:100],
                                 actor=request.user, request=request)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.success(request, "Switchyard will use the new access role from the next step on.")
    return redirect(account)
