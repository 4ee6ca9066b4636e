"""A person's own API tokens (linked from the navigation): list with last use, create (after
re-authentication; the token is shown once), revoke. Each person sees only their own tokens."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.http import Http404, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from portal.api import tokens
from portal.api.token_forms import ApiTokenForm
from portal.people.http import AuthenticatedRequest
from portal.web.form_errors import service_errors_to_form
from portal.web.reauth import reauthentication_required


@login_required
@require_GET
def token_list(request: AuthenticatedRequest) -> HttpResponse:
    return render(request, "api/token_list.html", {
        "tokens": tokens.api_tokens_of_person(person=request.user), "now": timezone.now(),
    })


@never_cache
@require_http_methods(["GET", "POST"])
@login_required
@reauthentication_required
def token_new(request: AuthenticatedRequest) -> HttpResponse:
    form = ApiTokenForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        try:
            created = tokens.api_token_create(
                owner=request.user, name=form.cleaned_data["name"], scope=form.cleaned_data["scope"],
                lifetime_days=form.cleaned_data["lifetime_days"], request=request,
            )
        except ValidationError as exc:
            service_errors_to_form(form, exc)
        else:
            # Shown once, in this response only: stored hashed, never in a message or a log.
            response = render(request, "api/token_created.html", {"token": created.token, "secret": created.secret})
            response["Cache-Control"] = "no-store"
            return response
    return render(request, "api/token_new.html", {"form": form}, status=400 if form.is_bound else 200)


@require_POST
@login_required
def token_revoke(request: AuthenticatedRequest, token_id: int) -> HttpResponse:
    token = tokens.api_token_of_person(person=request.user, token_id=token_id)
    if token is None:
        raise Http404("No such token of yours.")
    tokens.api_token_revoke(token=token, revoked_by=request.user, request=request)
    messages.success(request, f"Token “{token.name}” revoked: it no longer works.")
    return redirect("api_tokens:list")
