"""The API's endpoints. Each reads like its page's view: the capability (``capabilities`` per
method, checked by ``portal.api.permissions``), the same selector or form and service, JSON.

Services are handed ``request._request`` (the Django request): their audit events then carry the
caller and name the token (``portal.audit.audit_record``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from django.core.paginator import EmptyPage, Paginator
from django.db import transaction
from django.db.models import Prefetch
from django.http import Http404, HttpRequest
from django.shortcuts import get_object_or_404
from django.urls import reverse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.exceptions import ParseError
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from elevations import selectors as elevation_selectors
from elevations import services as elevation_services
from elevations.forms import DecisionForm, ElevationRequestForm
from elevations.models import CLIENT_CONTACT, ElevationRequest
from onboarding import adoption
from onboarding import selectors as onboarding_selectors
from onboarding import services as onboarding_services
from onboarding.forms import OnboardingForm
from onboarding.models import AwsAccount, Client
from onboarding.root_selectors import root_credentials_for
from portal.api import serializers as s
from portal.api.errors import bad_request, form_errors, service_refusals, valid_data
from portal.api.inputs import form_data, tier_ids
from portal.api.permissions import ANYONE, ENGINEER, MANAGER, MANAGERS, READERS, ApiRequest, capabilities_of
from portal.audit.models import AuditEvent
from portal.aws import AwsError
from portal.evidence.forms import MatrixFilterForm
from portal.evidence.matrix import ROW_FIELDS, AccessMatrix, AccessRow
from portal.people.models import User
from switchroles import access_checks, access_selectors, drift, leavers
from switchroles import selectors as switchroles_selectors
from switchroles import services as switchroles_services
from switchroles.forms import GrantForm, LeaverForm, PersonForm, RevokeForm
from switchroles.models import AccessCheck, AccessFinding, DriftCheck, Grant, RoleDriftFinding, TeamMembership
from switchroles.people_views import people_managed
from switchroles.services import CAPABILITY_NAMES

ACCESS_PAGE_SIZE = 100
ERRORS = {400: s.ErrorsSerializer, 401: s.DetailSerializer, 403: s.DetailSerializer, 429: s.DetailSerializer}
NOT_FOUND = {404: s.DetailSerializer}



def paged_response(request: ApiRequest, paginator: Paginator[Any], number: int,
                   results: Callable[[Iterable[Any]], list[Any]]) -> Response:
    """One page of a paged list, with links to the pages beside it (the query kept); 404 past the end."""
    try:
        page = paginator.page(number)
    except EmptyPage as exc:
        raise Http404("There is no such page.") from exc

    def link(other_number: int) -> str:
        query = request.query_params.copy()
        query["page"] = str(other_number)
        url: str = request.build_absolute_uri(f"{request.path}?{query.urlencode()}")
        return url

    return Response({
        "count": paginator.count, "page": page.number, "pages": paginator.num_pages,
        "next": link(page.next_page_number()) if page.has_next() else None,
        "previous": link(page.previous_page_number()) if page.has_previous() else None,
        "results": results(page.object_list),
    })

class Endpoint(APIView):
    """Who may call each method: ``capabilities = {"GET": READERS, ...}`` (``ANYONE``: any token)."""

    capabilities: dict[str, tuple[str, ...]] = {}
    # No OPTIONS (DRF would describe the endpoint to any token); HEAD is GET's, with GET's capabilities.
    http_method_names = ["get", "post", "head"]


def _body(request: Request) -> dict[str, Any]:
    if not isinstance(request.data, dict):
        raise ParseError("Send a JSON object.")
    return request.data


def _django(request: Request) -> HttpRequest:
    return request._request


def _client_ref(client: Client) -> dict[str, Any]:
    return {"id": client.pk, "name": client.name, "slug": client.slug}


# --- the caller ----------------------------------------------------------------------------------


class Me(Endpoint):
    capabilities = {"GET": ANYONE}

    @extend_schema(operation_id="me", responses={200: s.MeSerializer, **ERRORS})
    def get(self, request: ApiRequest) -> Response:
        user = request.user
        return Response({"id": user.pk, "username": user.username, "iam_username": user.iam_username,
                         "capabilities": capabilities_of(user)})


class Links(Endpoint):
    capabilities = {"GET": ANYONE}

    @extend_schema(operation_id="links", responses={200: s.LinkSerializer(many=True), **ERRORS})
    def get(self, request: ApiRequest) -> Response:
        go_prefix = request.build_absolute_uri(reverse("switchroles:go", args=[0]))[:-2]
        links = []
        for role in switchroles_selectors.links_for_person(person=request.user):
            try:
                url = role.switch_role_url
            except ValueError:
                url = ""  # the directory shows such a link as broken, without a URL
            links.append({
                "id": role.pk, "client": _client_ref(role.account.client), "account_name": role.account.name,
                "aws_account_id": role.account.account_id, "tier": role.template.tier,
                "role_name": role.role_name, "role_arn": role.arn, "switch_role_url": url,
                "go_url": f"{go_prefix}{role.pk}/",
            })
        return Response(links)


# --- clients and accounts --------------------------------------------------------------------------


def _account_summary(account: AwsAccount) -> dict[str, Any]:
    return {"id": account.pk, "name": account.name, "aws_account_id": account.account_id,
            "origin": account.origin, "state": account.state}


def _account_detail(account: AwsAccount) -> dict[str, Any]:
    return {
        **_account_summary(account),
        "client": _client_ref(account.client),
        "steps": [
            {"kind": step.kind, "status": step.status, "attempts": step.attempts,
             "last_error": {"code": step.last_error_code, "message": step.last_error_message}
             if step.last_error_code or step.last_error_message else None}
            for step in account.steps.all()
        ],
        "roles": [{"tier": role.template.tier, "role_name": role.role_name, "role_arn": role.arn,
                   "state": role.state} for role in account.roles.all()],
        "root_credentials": root_credentials_for(account),
    }


def _clients_seen_by(user: Any) -> Any:
    """A client contact sees their own client only (``elevations.selectors.contact_of``); the MSP's
    readers what the clients page shows them."""
    contact = elevation_selectors.contact_of(user=user)
    if contact is not None:
        return Client.objects.filter(pk=contact.client_id)
    return onboarding_selectors.clients_for_viewer(viewer=user)


class Clients(Endpoint):
    capabilities = {"GET": (*READERS, CLIENT_CONTACT)}

    @extend_schema(operation_id="clients_list", responses={200: s.ClientSerializer(many=True), **ERRORS})
    def get(self, request: ApiRequest) -> Response:
        return Response([_client_ref(client) for client in _clients_seen_by(request.user)])


class ClientDetail(Endpoint):
    capabilities = {"GET": (*READERS, CLIENT_CONTACT)}

    @extend_schema(operation_id="client", responses={200: s.ClientDetailSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request: ApiRequest, client_id: int) -> Response:
        client = get_object_or_404(_clients_seen_by(request.user), pk=client_id)
        accounts = onboarding_selectors.accounts_of_client(client=client)
        return Response({**_client_ref(client), "accounts": [_account_summary(a) for a in accounts]})


class AccountDetail(Endpoint):
    capabilities = {"GET": READERS}

    @extend_schema(operation_id="account", responses={200: s.AccountDetailSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request: ApiRequest, account_id: int) -> Response:
        account = onboarding_selectors.account_for_viewer(viewer=request.user, account_id=account_id)
        return Response(_account_detail(account))


# --- onboarding -------------------------------------------------------------------------------------

ORIGINS = {"create": AwsAccount.Origin.CREATED.value, "invite": AwsAccount.Origin.INVITED.value}
ONBOARDING_FIELDS = {"client": "client", "client_name": "client_name", "client_slug": "client_slug",
                     "account_name": "account_name", "origin": "origin", "root_email": "root_email",
                     "aws_account_id": "account_id", "reason": "reason"}
ONBOARDING_RENAMED = {"account_id": "aws_account_id", "templates": "tiers"}


class Onboardings(Endpoint):
    capabilities = {"POST": MANAGERS}

    @extend_schema(operation_id="onboarding_start", request=s.OnboardingRequestSerializer,
                   responses={202: s.OnboardingAcceptedSerializer, **ERRORS})
    def post(self, request: ApiRequest) -> Response:
        body = _body(request)
        data = form_data(body, ONBOARDING_FIELDS)  # tiers: below
        origin = body.get("origin")
        adopt = origin == "adopt"
        if isinstance(origin, str) and origin in ORIGINS:
            data["origin"] = ORIGINS[origin]
        elif adopt:
            # The form checks an adoption's fields as an invitation's (an existing account's id, no root
            # e-mail); the adoption service then checks the account is a member of the Organization.
            data["origin"] = AwsAccount.Origin.INVITED.value
        form = OnboardingForm(data)
        ids, problems = tier_ids(body.get("tiers"), form.fields["templates"])
        data.setlist("templates", ids)
        if not form.is_valid() or problems:
            errors = form_errors(form, ONBOARDING_RENAMED)
            if problems:
                errors["tiers"] = problems
            return bad_request(errors)
        cleaned = form.cleaned_data
        if adopt:
            return self._adopt(request, cleaned)
        with service_refusals(ONBOARDING_RENAMED):
            account = onboarding_services.onboarding_request(
                actor=request.user, client=cleaned["client"], client_name=cleaned["client_name"],
                client_slug=cleaned["client_slug"], origin=cleaned["origin"], account_name=cleaned["account_name"],
                root_email=cleaned["root_email"], account_id=cleaned["account_id"],
                templates=list(cleaned["templates"]), reason=cleaned["reason"], request=_django(request),
            )
        account = onboarding_selectors.account_for_viewer(viewer=request.user, account_id=account.pk)
        return Response({"account": _account_detail(account)}, status=202)


    def _adopt(self, request: ApiRequest, cleaned: dict[str, Any]) -> Response:
        """The Adopt page's service (``onboarding.adoption``): a batch of one member of the Organization.
        A malformed id is refused first with the service's message (the service reads the Organization
        before it looks at the ids, and nothing malformed should reach AWS)."""
        if not onboarding_services.ACCOUNT_ID_RE.match(cleaned["account_id"] or ""):
            return bad_request({"aws_account_id": ["An AWS account id is exactly 12 digits."]})
        try:
            with service_refusals({**ONBOARDING_RENAMED, "rows": "aws_account_id"}):
                account = adoption.adoption_request(
                    actor=request.user, account_id=cleaned["account_id"], account_name=cleaned["account_name"],
                    templates=list(cleaned["templates"]), reason=cleaned["reason"], client=cleaned["client"],
                    client_name=cleaned["client_name"], request=_django(request),
                )
        except AwsError as error:
            return bad_request({"aws_account_id": [f"{error.plain_message} (AWS said: {error.code})"]})
        account = onboarding_selectors.account_for_viewer(viewer=request.user, account_id=account.pk)
        return Response({"account": _account_detail(account)}, status=202)


# --- grants ----------------------------------------------------------------------------------------

GRANT_FIELDS = {"team": "team", "person": "person", "client": "client", "account": "account",
                "reason": "reason", "expires_at": "expires_at"}
GRANT_RENAMED = {"templates": "tiers"}


def _grant(grant: Grant) -> dict[str, Any]:
    return {
        "id": grant.pk, "team": grant.team_id, "person": grant.person_id, "client": grant.client_id,
        "account": grant.account_id, "tiers": sorted(t.role_name for t in grant.templates.all()),
        "reason": grant.reason, "granted_by": grant.granted_by.username, "granted_at": grant.granted_at,
        "expires_at": grant.expires_at, "revoked_at": grant.revoked_at, "revoke_reason": grant.revoke_reason,
    }


class Grants(Endpoint):
    capabilities = {"POST": MANAGERS}

    @extend_schema(operation_id="grant_create", request=s.GrantRequestSerializer,
                   responses={201: s.GrantSerializer, **ERRORS})
    def post(self, request: ApiRequest) -> Response:
        body = _body(request)
        data = form_data(body, GRANT_FIELDS)
        form = GrantForm(data)
        ids, problems = tier_ids(body.get("tiers"), form.fields["templates"])
        data.setlist("templates", ids)
        if not form.is_valid() or problems:
            errors = form_errors(form, GRANT_RENAMED)
            if problems:
                errors["tiers"] = problems
            return bad_request(errors)
        cleaned = form.cleaned_data
        with service_refusals(GRANT_RENAMED):
            grant = switchroles_services.grant_create(
                granted_by=request.user, team=cleaned["team"], person=cleaned["person"], client=cleaned["client"],
                account=cleaned["account"], templates=cleaned["templates"], reason=cleaned["reason"],
                expires_at=cleaned["expires_at"], request=_django(request),
            )
        return Response(_grant(grant), status=201)


class GrantRevoke(Endpoint):
    capabilities = {"POST": MANAGERS}

    @extend_schema(operation_id="grant_revoke", request=s.RevokeRequestSerializer,
                   responses={200: s.GrantSerializer, **ERRORS, **NOT_FOUND})
    def post(self, request: ApiRequest, grant_id: int) -> Response:
        grant = get_object_or_404(switchroles_selectors.grants_listed(status="all"), pk=grant_id)
        body = _body(request)
        if grant.revoked_at is None:
            reason = valid_data(RevokeForm(form_data(body, {"reason": "reason"})))["reason"]
            with service_refusals():
                grant = switchroles_services.grant_revoke(grant=grant, revoked_by=request.user, reason=reason,
                                                          request=_django(request))
        return Response(_grant(get_object_or_404(switchroles_selectors.grants_listed(status="all"), pk=grant.pk)))


# --- the access matrix ----------------------------------------------------------------------------

MATRIX_PARAMETERS = [
    OpenApiParameter("client", int, description="A client's id."),
    OpenApiParameter("account", int, description="An account's id."),
    OpenApiParameter("team", int, description="A team's id."),
    OpenApiParameter("person", int, description="A person's id."),
    OpenApiParameter("link", int, description="A link's (account role's) id."),
    OpenApiParameter("tier", str, description="A role template tier."),
    OpenApiParameter("as_of", str, description="A past moment (ISO 8601, UTC): the matrix as it was then."),
    OpenApiParameter("sort", str), OpenApiParameter("dir", str, enum=["asc", "desc"]),
    OpenApiParameter("page", int, description=f"1, 2, … ({ACCESS_PAGE_SIZE} rows a page)."),
]


def _row(row: AccessRow) -> dict[str, Any]:
    values = {name: getattr(row, name) for name in ROW_FIELDS}
    values["aws_account_id"] = values.pop("account_id")
    return {**values, "via": row.via}


class Access(Endpoint):
    capabilities = {"GET": READERS}

    @extend_schema(operation_id="access_matrix", parameters=MATRIX_PARAMETERS,
                   responses={200: s.AccessPageSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request: ApiRequest) -> Response:
        query = request.query_params.copy()
        page_text = query.pop("page", ["1"])[-1]
        form = MatrixFilterForm(query)
        if not form.is_valid():
            return bad_request(form_errors(form))
        if not (page_text.isascii() and page_text.isdigit() and 0 < int(page_text) < 10**9):
            return bad_request({"page": ["Enter a page number: 1, 2, …"]})
        paginator: Paginator[AccessRow] = Paginator(AccessMatrix(form.filters()), ACCESS_PAGE_SIZE)  # type: ignore[arg-type]
        # an empty matrix has one empty page
        return paged_response(request, paginator, int(page_text), lambda rows: [_row(row) for row in rows])


# --- teams and people -----------------------------------------------------------------------------


class Teams(Endpoint):
    capabilities = {"GET": READERS}

    @extend_schema(operation_id="teams", responses={200: s.TeamSerializer(many=True), **ERRORS})
    def get(self, request: ApiRequest) -> Response:
        members_now = switchroles_selectors.memberships_in_force().select_related("person").order_by("person__username")
        teams = switchroles_selectors.teams_listed().prefetch_related(
            Prefetch("memberships", queryset=members_now, to_attr="members_now"))
        return Response([
            {"id": team.pk, "name": team.name, "iam_group": team.iam_group_name,
             "members": [m.person.username for m in team.members_now]}
            for team in teams
        ])


PERSON_FIELDS = {"username": "username", "email": "email", "first_name": "first_name", "last_name": "last_name",
                 "iam_username": "iam_username", "teams": "teams", "capabilities": "capabilities"}


class People(Endpoint):
    capabilities = {"POST": MANAGERS}

    @extend_schema(operation_id="person_create", request=s.PersonRequestSerializer,
                   responses={201: s.PersonCreatedSerializer, **ERRORS})
    def post(self, request: ApiRequest) -> Response:
        lists = frozenset({"teams", "capabilities"})
        data = valid_data(PersonForm(form_data(_body(request), PERSON_FIELDS, lists=lists)))
        with service_refusals(), transaction.atomic(durable=True):
            person, password = switchroles_services.person_create(
                created_by=request.user, username=data["username"], first_name=data["first_name"],
                last_name=data["last_name"], email=data["email"], iam_username=data["iam_username"],
                capabilities=data["capabilities"], teams=data["teams"], request=_django(request),
            )
        person = User.objects.prefetch_related("groups").get(pk=person.pk)
        teams = TeamMembership.objects.filter(person=person, removed_at__isnull=True).values_list("team_id", flat=True)
        response = Response({
            "id": person.pk, "username": person.username, "email": person.email, "first_name": person.first_name,
            "last_name": person.last_name, "iam_username": person.iam_username,
            "capabilities": [g.name for g in person.groups.all() if g.name in CAPABILITY_NAMES],
            "teams": sorted(teams), "temporary_password": password,
        }, status=201)
        response["Cache-Control"] = "no-store"  # the password is in this answer only
        return response



class PersonDeactivate(Endpoint):
    """The leaver action (the person's Leave page): signed out, out of every team, grants and tokens
    revoked, deactivated; their IAM user is taken out of Switchyard in AWS after commit."""

    capabilities = {"POST": MANAGERS}

    @extend_schema(operation_id="person_deactivate", request=s.DeactivateRequestSerializer,
                   responses={200: s.PersonDeactivatedSerializer, **ERRORS, **NOT_FOUND})
    def post(self, request: ApiRequest, person_id: int) -> Response:
        person = get_object_or_404(people_managed(), pk=person_id)
        reason = valid_data(LeaverForm(form_data(_body(request), {"reason": "reason"})))["reason"]
        with service_refusals():
            departure = leavers.person_leave(person=person, left_by=request.user, reason=reason,
                                             request=_django(request))
        departure.refresh_from_db()
        return Response({"id": person.pk, "username": person.username, "is_active": False,
                         "departure": {"id": departure.pk, "aws_state": departure.aws_state}})


# --- findings ---------------------------------------------------------------------------------------

FINDINGS_PAGE_SIZE = 100


def _drift_finding(finding: RoleDriftFinding) -> dict[str, Any]:
    detail = "; ".join(str(d) for d in finding.differences) if isinstance(finding.differences, list) else ""
    return {"source": "drift", "kind": finding.kind, "account": finding.account_id, "role_arn": finding.role_arn,
            "principal": finding.role_name, "detail": detail or finding.error_code, "opened_at": finding.first_seen_at}


def _access_finding(finding: AccessFinding) -> dict[str, Any]:
    return {"source": "effective_access", "kind": finding.kind, "account": finding.account_id,
            "role_arn": finding.role_arn, "principal": finding.principal_name, "detail": finding.detail,
            "opened_at": finding.opened_at}


def open_findings() -> list[dict[str, Any]]:
    """What the drift page lists as open: the latest role check's drift findings, then the open
    effective-access findings."""
    return ([_drift_finding(f) for f in drift.drift_overview().role_findings]
            + [_access_finding(f) for f in access_selectors.open_access_findings()])


class Findings(Endpoint):
    capabilities = {"GET": READERS}

    @extend_schema(operation_id="findings", parameters=[
        OpenApiParameter("page", int, description=f"1, 2, … ({FINDINGS_PAGE_SIZE} findings a page).")],
        responses={200: s.FindingsPageSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request: ApiRequest) -> Response:
        page_text = request.query_params.get("page", "1")
        if not (page_text.isascii() and page_text.isdigit() and 0 < int(page_text) < 10**9):
            return bad_request({"page": ["Enter a page number: 1, 2, …"]})
        paginator: Paginator[dict[str, Any]] = Paginator(open_findings(), FINDINGS_PAGE_SIZE)
        return paged_response(request, paginator, int(page_text), list)


# --- elevations (issue 21) --------------------------------------------------------------------------

ELEVATION_FIELDS = {"duration_minutes": "duration", "reason": "reason"}
ELEVATION_RENAMED = {"duration": "duration_minutes", "role": "tier", "template": "tier"}


def _elevation(elevation: ElevationRequest, *, decider: User,
               facts: tuple[int | None, bool] | None = None) -> dict[str, Any]:
    can_decide = elevation.is_open and elevation_selectors.decider_role(
        request=elevation, decider=decider, facts=facts) is not None
    return {
        "id": elevation.pk, "state": elevation.state, "requester": elevation.requester.username,
        "account": elevation.account_id, "client": elevation.account.client_id, "tier": elevation.template.tier,
        "duration_minutes": elevation.duration_minutes, "reason": elevation.reason, "approvers": elevation.approvers,
        "requested_at": elevation.requested_at, "answer_by": elevation.answer_by,
        "approved_at": elevation.approved_at, "finished_at": elevation.finished_at, "grant": elevation.grant_id,
        "can_decide": can_decide,
    }


class Elevations(Endpoint):
    """The caller's requests, or those they may see and decide (``elevations_visible_to``); a new
    request for a tier on an account the caller already reaches (the New request page's choices)."""

    capabilities = {"GET": ANYONE, "POST": (ENGINEER, MANAGER)}

    @extend_schema(operation_id="elevations", responses={200: s.ElevationSerializer(many=True), **ERRORS})
    def get(self, request: ApiRequest) -> Response:
        user = request.user
        facts = elevation_selectors.decider_facts(decider=user)
        elevations = elevation_selectors.elevations_visible_to(person=user).order_by("-requested_at", "-pk")[:500]
        return Response([_elevation(e, decider=user, facts=facts) for e in elevations])

    @extend_schema(operation_id="elevation_request", request=s.ElevationRequestSerializer,
                   responses={201: s.ElevationSerializer, **ERRORS})
    def post(self, request: ApiRequest) -> Response:
        user = request.user
        body = _body(request)
        data = form_data(body, {**ELEVATION_FIELDS, "account": "account", "tier": "tier"})
        targets = elevation_selectors.elevation_targets(person=user)
        form = ElevationRequestForm(data, targets=targets)
        ids, problems = tier_ids(body.get("tier"), form.fields["role"])
        account_text = data.get("account", "")
        role = None
        if ids and account_text.isascii() and account_text.isdigit() and len(account_text) < 19:
            role = targets.filter(account_id=int(account_text), template_id=int(ids[0])).first()
        if role is not None:
            data["role"] = str(role.pk)
        if not form.is_valid() or problems:
            errors = form_errors(form, ELEVATION_RENAMED)
            if "tier" in errors and body.get("tier") is not None and not problems:
                errors["tier"] = ["This account has no such role to elevate to."]
            if "account" not in body or body.get("account") is None:
                errors["account"] = ["This field is required."]
            if problems:
                errors["tier"] = problems
            return bad_request(errors)
        with service_refusals(ELEVATION_RENAMED):
            elevation = elevation_services.elevation_request(
                requester=user, account=role.account, template=role.template,  # type: ignore[union-attr]
                duration=form.cleaned_data["duration"], reason=form.cleaned_data["reason"], request=_django(request))
        return Response(_elevation(elevation, decider=user), status=201)


class _ElevationDecide(Endpoint):
    """A manager's answer to a request they may decide (contacts answer on their own pages)."""

    capabilities = {"POST": MANAGERS}
    approve = True

    def post(self, request: ApiRequest, elevation_id: int) -> Response:
        user = request.user
        elevation = elevation_selectors.elevation_of(person=user, request_id=elevation_id)
        if elevation is None:
            raise Http404("No such request.")
        data = form_data(_body(request), {"reason": "reason"})
        data["decision"] = "approve" if self.approve else "decline"
        reason = valid_data(DecisionForm(data))["reason"]
        with service_refusals():
            elevation_services.elevation_decide(request=elevation, decider=user, approve=self.approve,
                                                reason=reason, http_request=_django(request))
        fresh = elevation_selectors.elevation_of(person=user, request_id=elevation.pk)
        return Response(_elevation(fresh, decider=user))  # type: ignore[arg-type]


class ElevationApprove(_ElevationDecide):
    approve = True

    @extend_schema(operation_id="elevation_approve", request=s.DecisionRequestSerializer,
                   responses={200: s.ElevationSerializer, **ERRORS, **NOT_FOUND})
    def post(self, request: ApiRequest, elevation_id: int) -> Response:
        return super().post(request, elevation_id)


class ElevationDecline(_ElevationDecide):
    approve = False

    @extend_schema(operation_id="elevation_decline", request=s.DecisionRequestSerializer,
                   responses={200: s.ElevationSerializer, **ERRORS, **NOT_FOUND})
    def post(self, request: ApiRequest, elevation_id: int) -> Response:
        return super().post(request, elevation_id)


# --- checks now ---------------------------------------------------------------------------------------

CHECK_REQUESTED = "drift.check_requested"


class Checks(Endpoint):
    """The drift page's two "check now" buttons at once: a drift check and an effective-access check
    are queued for the workers (each audited). The id is the request's own audit event."""

    capabilities = {"POST": MANAGERS}

    @extend_schema(operation_id="checks_start", request=None, responses={202: s.CheckAcceptedSerializer, **ERRORS})
    def post(self, request: ApiRequest) -> Response:
        user = request.user
        _body(request)  # nothing to send but an empty object; anything else is a 400 like every write
        with transaction.atomic(durable=True):
            drift.drift_check_request(actor=user, request=_django(request))
            access_checks.effective_access_check_request(actor=user, request=_django(request))
        event = AuditEvent.objects.filter(action=CHECK_REQUESTED, actor=user).order_by("-sequence").first()
        return Response({"id": event.pk}, status=202)  # type: ignore[union-attr]


class CheckDetail(Endpoint):
    """Read from the real rows: each check is the first one the workers recorded at or after the
    request. Running until both exist; failed when either says why it could not finish."""

    capabilities = {"GET": READERS}

    @extend_schema(operation_id="check", responses={200: s.CheckSerializer, **ERRORS, **NOT_FOUND})
    def get(self, request: ApiRequest, check_id: int) -> Response:
        event = get_object_or_404(AuditEvent.objects.filter(action=CHECK_REQUESTED), pk=check_id)
        at = event.occurred_at
        drift_check = DriftCheck.objects.filter(checked_at__gte=at).order_by("checked_at", "pk").first()
        access_check = AccessCheck.objects.filter(checked_at__gte=at).order_by("checked_at", "pk").first()
        errors = [check.error for check in (drift_check, access_check) if check is not None and check.error]
        if errors:
            status = "failed"
        elif drift_check is not None and access_check is not None:
            status = "done"
        else:
            status = "running"
        return Response({
            "id": event.pk, "status": status, "requested_at": at,
            "drift_check": drift_check.pk if drift_check else None,
            "access_check": access_check.pk if access_check else None,
            "errors": errors, "findings": open_findings() if status == "done" else [],
        })
