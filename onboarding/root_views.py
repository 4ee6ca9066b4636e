"""Root-access pages: the Organization's features (managers), every account's root posture (managers
and auditors), and on an account: check now, remove root credentials (managers, re-authentication)."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from onboarding import root_selectors, root_services, selectors
from portal import aws
from portal.aws import AwsError, default_client_factory
from portal.permissions import AUDITOR, MANAGER, capability_required
from portal.reauth import reauthentication_required


def _features_context() -> dict[str, object]:
    try:
        features: aws.RootFeatures | None = aws.root_features(clients=default_client_factory())
        error: AwsError | None = None
    except AwsError as exc:
        features, error = None, exc
    return {"features": features, "aws_error": error, "permissions": aws.WORKER_PERMISSIONS,
            "policy": aws.worker_policy_json()}


@require_GET
@capability_required(MANAGER)
def root_access(request: HttpRequest) -> HttpResponse:
    return render(request, "onboarding/root_access.html", _features_context())


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def root_access_enable(request: HttpRequest) -> HttpResponse:
    if request.method == "GET":
        return redirect("onboarding:root_access")
    try:
        root_services.root_features_enable(actor=request.user, request=request)  # type: ignore[arg-type]
    except ValidationError as error:
        context = {**_features_context(), "enable_errors": error.messages}
        return render(request, "onboarding/root_access.html", context, status=400)
    messages.success(request, "Centralized root access is on for the Organization.")
    return redirect("onboarding:root_access")


@require_GET
@capability_required(MANAGER, AUDITOR)
def root_posture_list(request: HttpRequest) -> HttpResponse:
    listing = root_selectors.root_posture_list(viewer=request.user, sort=request.GET.get("sort", "password"))
    return render(request, "onboarding/root_posture_list.html", {"listing": listing})


@require_POST
@capability_required(MANAGER)
def account_root_check(request: HttpRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    try:
        root_services.root_posture_check_request(account=account, actor=request.user, request=request)  # type: ignore[arg-type]
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
    else:
        messages.info(request, "Switchyard is looking at the root user now; reload in a few seconds.")
    return redirect(account)


class RootRemovalForm(forms.Form):
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Why the root credentials are removed: kept in the audit log.")

    def add_service_errors(self, error: ValidationError) -> None:
        if hasattr(error, "error_dict"):
            for name, problems in error.message_dict.items():
                self.add_error(name if name in self.fields else None, problems)
        else:
            self.add_error(None, error.messages)


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def account_root_remove(request: HttpRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    form = RootRemovalForm(request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            root_services.root_removal_request(account=account, actor=request.user,  # type: ignore[arg-type]
                                               reason=form.cleaned_data["reason"], request=request)
        except ValidationError as error:
            form.add_service_errors(error)
        else:
            messages.success(request, "The workers are removing the root credentials: follow the steps below.")
            return redirect(account)
    status = 400 if request.method == "POST" else 200
    return render(request, "onboarding/root_remove.html",
                  {"form": form, "account": account, "posture": root_selectors.posture_of(account)}, status=status)
