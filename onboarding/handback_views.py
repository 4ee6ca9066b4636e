"""Hand-back pages: the pre-checks, the manager's choices and reason, then the workers take over
(the steps appear on the account page). Managers only, with re-authentication."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from onboarding import handback, selectors
from onboarding.models import AwsAccount, Client
from portal.people.http import AuthenticatedRequest
from portal.people.permissions import MANAGER, capability_required
from portal.web.form_errors import service_errors_to_form
from portal.web.reauth import reauthentication_required

ROLE_CHOICES = (
    ("delete", "Delete Switchyard's roles in the account"),
    ("keep", "Keep them: the client deletes or reuses them (they go on trusting our main account until then)"),
)


class HandbackForm(forms.Form):
    confirmations = forms.MultipleChoiceField(
        label="Confirmed with the client (AWS cannot check these in advance)",
        choices=handback.AWS_REQUIREMENTS,
        widget=forms.CheckboxSelectMultiple,
        required=False,  # the service says which are missing, next to this field
    )
    roles = forms.ChoiceField(label="Switchyard's roles in the account", choices=ROLE_CHOICES,
                              widget=forms.RadioSelect)
    reason = forms.CharField(max_length=1000, widget=forms.Textarea(attrs={"rows": 3}),
                             help_text="Why the account is handed back: kept in the audit log.")

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        problems = handback.input_errors(reason=cleaned.get("reason", ""), confirmed=cleaned.get("confirmations", []))
        for name, found in problems.items():
            if name not in self.errors:  # a blank reason is already "required"
                self.add_error(name, found)
        return cleaned


def _handback_page(
    request: AuthenticatedRequest, *, account: AwsAccount | None = None, client: Client | None = None
) -> HttpResponse:
    form = HandbackForm(request.POST if request.method == "POST" else None)
    if request.method == "POST":
        if form.is_valid():
            try:
                started = handback.handback_start(
                    actor=request.user,
                    account=account,
                    client=client,
                    reason=form.cleaned_data["reason"],
                    delete_roles=form.cleaned_data["roles"] == "delete",
                    confirmed=form.cleaned_data["confirmations"],
                    request=request,
                )
            except ValidationError as error:
                service_errors_to_form(form, error)
            else:
                names = ", ".join(a.name for a in started)
                messages.success(request, f"The hand-back of {names} has started: follow its steps below.")
                return redirect(account.get_absolute_url() if account else started[0].client.get_absolute_url())
        # Sent back with errors: no AWS call; the Organization is checked again when it is sent.
        plan = handback.handback_plan(account=account, client=client, ask_aws=False)
        status = 400
    else:
        plan = handback.handback_plan(account=account, client=client)
        status = 200
    return render(request, "onboarding/handback.html",
                  {"form": form, "plan": plan, "account": account, "client": plan.client}, status=status)


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def account_handback(request: AuthenticatedRequest, account_id: int) -> HttpResponse:
    account = selectors.account_for_viewer(viewer=request.user, account_id=account_id)
    return _handback_page(request, account=account)


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
@reauthentication_required
def client_handback(request: AuthenticatedRequest, client_id: int) -> HttpResponse:
    client = selectors.client_for_viewer(viewer=request.user, client_id=client_id)
    return _handback_page(request, client=client)
