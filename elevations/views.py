"""Pages of client contacts (their own client only: anything else answers 404) and of elevations."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import SetPasswordForm
from django.contrib.auth.tokens import default_token_generator
from django.core.exceptions import PermissionDenied, ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.utils import timezone
from django.utils.encoding import force_str
from django.utils.http import urlsafe_base64_decode
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from elevations import selectors, services
from elevations.forms import ApprovalPolicyForm, ContactInviteForm, DecisionForm, ElevationRequestForm
from elevations.models import ApprovalPolicy, ClientContact, ElevationRequest
from onboarding.models import Client
from portal.evidence.pack import evidence_pack_response
from portal.people.http import AuthenticatedRequest
from portal.people.models import User
from portal.people.permissions import ENGINEER, MANAGER, capability_required, user_has_capability
from portal.web.downloads import streamed_csv
from portal.web.form_errors import service_errors_to_form, service_outcome_message
from portal.web.reauth import reauthentication_required
from switchroles.models import AccountRole

PAGE_SIZE = 50


def contact_required(view: Callable[..., HttpResponseBase]) -> Callable[..., HttpResponseBase]:
    """Only a client contact enters (with their ``ClientContact`` as ``contact``); to anyone
    else these pages do not exist (404)."""

    @wraps(view)
    def wrapper(request: AuthenticatedRequest, *args: Any, **kwargs: Any) -> HttpResponseBase:
        contact = selectors.contact_of(user=request.user)
        if contact is None:
            raise Http404("No such page.")
        return view(request, contact, *args, **kwargs)

    return login_required(wrapper)


# --- the client contact's own pages ------------------------------------------------------------------

@require_GET
@contact_required
def client_index(request: AuthenticatedRequest, contact: ClientContact) -> HttpResponse:
    client = contact.client
    return render(request, "elevations/client_index.html", {
        "client": client, "accounts": selectors.client_accounts(client=client),
        "roles": selectors.client_roles(client=client), "reach": selectors.client_who_can_reach(client=client),
        "uses": selectors.client_link_uses(client=client)[:20],
        "elevations": selectors.client_elevations(client=client)[:20], "now": timezone.now(),
        "findings": selectors.client_access_findings(client=client)[:200],
    })


@require_GET
@contact_required
def client_evidence(request: AuthenticatedRequest, contact: ClientContact) -> HttpResponseBase:
    return evidence_pack_response(client=contact.client, generated_by=request.user)


@require_GET
@contact_required
def client_log(request: AuthenticatedRequest, contact: ClientContact) -> HttpResponse:
    rows = list(selectors.client_log_rows(client=contact.client))[1:]
    page = Paginator(rows, PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "elevations/client_log.html", {"client": contact.client, "page": page})


@require_GET
@contact_required
def client_log_csv(request: AuthenticatedRequest, contact: ClientContact) -> HttpResponseBase:
    stamp = timezone.now().strftime("%Y%m%dT%H%MZ")
    return streamed_csv(selectors.client_log_rows(client=contact.client),
                         f"switchyard-{contact.client.slug}-log-{stamp}.csv")


# --- managers: contacts and approval policy of a client ------------------------------------------------

@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
def client_contacts(request: AuthenticatedRequest, client_id: int) -> HttpResponse:
    client = get_object_or_404(Client, pk=client_id)
    policy = ApprovalPolicy.objects.filter(client=client).first()
    invite = ContactInviteForm(request.POST if request.POST.get("form") == "invite" else None)
    policy_form = ApprovalPolicyForm(request.POST if request.POST.get("form") == "policy" else None,
                                     initial={"approvers": policy.approvers if policy else "manager"})
    user = request.user
    if request.method == "POST" and invite.is_bound and invite.is_valid():
        try:
            contact = services.contact_invite(invited_by=user, client=client, request=request, **invite.cleaned_data)
        except ValidationError as error:
            service_errors_to_form(invite, error)
        else:
            messages.success(request, f"Invitation sent to {contact.user.email}.")
            return redirect("elevations:client_contacts", client_id=client.pk)
    if request.method == "POST" and policy_form.is_bound and policy_form.is_valid():
        try:
            services.approval_policy_set(client=client, approvers=policy_form.cleaned_data["approvers"],
                                         updated_by=user, request=request)
        except ValidationError as error:
            service_errors_to_form(policy_form, error)
        else:
            messages.success(request, "Approvers saved.")
            return redirect("elevations:client_contacts", client_id=client.pk)
    return render(request, "elevations/client_contacts.html", {
        "client": client, "contacts": selectors.contacts_of_client(client=client), "invite": invite,
        "policy_form": policy_form, "policy": policy,
    })


@require_http_methods(["GET", "POST"])
def contact_accept(request: HttpRequest, uidb64: str, token: str) -> HttpResponse:
    """The invitation link: set a password (once), then enrol an authenticator."""
    try:
        user = User.objects.get(pk=int(force_str(urlsafe_base64_decode(uidb64))), client_contact__isnull=False)
    except (ValueError, TypeError, OverflowError, User.DoesNotExist):
        user = None
    if user is None or not default_token_generator.check_token(user, token):
        # A link that was used, has expired or never existed: nothing to act on (and nothing for a
        # POST to change).
        return render(request, "elevations/contact_accept.html", {"invalid": True}, status=404)
    form = SetPasswordForm(user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        services.contact_accept(user=user, password=form.cleaned_data["new_password1"], request=request)
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        return redirect("mfa_activate_totp")
    return render(request, "elevations/contact_accept.html", {"form": form, "person": user})


# --- elevations -----------------------------------------------------------------------------------------

@require_GET
@login_required
def elevation_list(request: AuthenticatedRequest) -> HttpResponse:
    user = request.user
    elevations = selectors.elevations_visible_to(person=user).order_by("-requested_at", "-pk")
    page = Paginator(elevations, PAGE_SIZE).get_page(request.GET.get("page"))
    facts = selectors.decider_facts(decider=user)
    for elevation in page:
        elevation.can_decide = selectors.decider_role(  # type: ignore[attr-defined]
            request=elevation, decider=user, facts=facts) is not None
    return render(request, "elevations/list.html", {"page": page})


@require_http_methods(["GET", "POST"])
@login_required
def elevation_new(request: AuthenticatedRequest) -> HttpResponse:
    """Anyone signed in sees the page; only an engineer or manager has accounts to choose from
    (the roles next to what they already reach), and the service refuses anyone else."""
    user = request.user
    may_ask = user_has_capability(user, ENGINEER, MANAGER) and selectors.contact_of(user=user) is None
    if request.method == "POST" and not may_ask:
        raise PermissionDenied("Only engineers and managers ask for elevations.")
    targets = selectors.elevation_targets(person=user) if may_ask else AccountRole.objects.none()
    form = ElevationRequestForm(request.POST or None, targets=targets)
    if request.method == "POST" and form.is_valid():
        role = form.cleaned_data["role"]
        try:
            elevation = services.elevation_request(
                requester=user, account=role.account, template=role.template,
                duration=form.cleaned_data["duration"], reason=form.cleaned_data["reason"], request=request,
            )
        except ValidationError as error:
            service_errors_to_form(form, error)
        else:
            messages.success(request, "Request sent to its approvers.")
            return redirect("elevations:detail", request_id=elevation.pk)
    return render(request, "elevations/new.html", {"form": form, "may_ask": may_ask})


@require_GET
@login_required
def elevation_detail(request: AuthenticatedRequest, request_id: int) -> HttpResponse:
    user = request.user
    elevation = selectors.elevation_of(person=user, request_id=request_id)
    if elevation is None:
        raise Http404("No such request.")
    return render(request, "elevations/detail.html", {
        "elevation": elevation, "decisions": elevation.decisions.select_related("decider"),
        "can_decide": elevation.is_open and selectors.decider_role(request=elevation, decider=user) is not None,
        "can_end": elevation.state in ("pending", "active") and (elevation.requester_id == user.pk),
        "can_emergency": elevation.is_open and elevation.requester_id == user.pk and user.is_manager,
        "form": DecisionForm(), "now": timezone.now(),
    })


def _visible_or_404(request: AuthenticatedRequest, request_id: int) -> ElevationRequest:
    elevation = selectors.elevation_of(person=request.user, request_id=request_id)
    if elevation is None:
        raise Http404("No such request.")
    return elevation


@require_POST
@login_required
@reauthentication_required
def elevation_decide(request: AuthenticatedRequest, request_id: int) -> HttpResponse:
    elevation = _visible_or_404(request, request_id)
    form = DecisionForm(request.POST)
    if not form.is_valid():
        messages.error(request, "Choose approve or decline.")
        return redirect("elevations:detail", request_id=elevation.pk)
    service_outcome_message(
        request,
        lambda: services.elevation_decide(request=elevation, decider=request.user,
                                          approve=form.cleaned_data["decision"] == "approve",
                                          reason=form.cleaned_data["reason"], http_request=request),
        "Your answer is recorded.",
    )
    return redirect("elevations:detail", request_id=elevation.pk)


@require_POST
@login_required
def elevation_end(request: AuthenticatedRequest, request_id: int) -> HttpResponse:
    elevation = _visible_or_404(request, request_id)
    service_outcome_message(
        request,
        lambda: services.elevation_end(request=elevation, ended_by=request.user,
                                       reason=request.POST.get("reason", "")[:1000], http_request=request),
        "Elevation ended.",
    )
    return redirect("elevations:detail", request_id=elevation.pk)


@require_POST
@login_required
@reauthentication_required
def elevation_emergency(request: AuthenticatedRequest, request_id: int) -> HttpResponse:
    """Break-glass: a manager approves their own request (the service refuses anyone else)."""
    elevation = _visible_or_404(request, request_id)
    service_outcome_message(
        request,
        lambda: services.elevation_emergency_approve(request=elevation, manager=request.user,
                                                     reason=request.POST.get("reason", "")[:1000],
                                                     http_request=request),
        "Emergency approval recorded; the client's contacts are told.", level=messages.WARNING,
    )
    return redirect("elevations:detail", request_id=elevation.pk)
