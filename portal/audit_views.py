"""The auditors' workspace (/audit/): the access matrix now and as of any moment, histories, the
event browser, exports and evidence, and access reviews.

Auditors and managers read all of it. Only managers change anything here (opening a review,
deciding its items); every write refuses an auditor with 403.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.core.validators import ProhibitNullCharactersValidator
from django.http import (
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    QueryDict,
)
from django.http.response import HttpResponseBase
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from onboarding.models import Client
from portal import reviews
from portal.audit_forms import AccessReviewForm, ReviewItemsForm
from portal.evidence.forms import EventFilterForm, MatrixFilterForm
from portal.evidence.matrix import AccessMatrix, AccessRow, MatrixFilters
from portal.evidence.pack import evidence_pack_response, last_chain_check
from portal.evidence.selectors import (
    audit_events_csv_rows,
    audit_events_filtered,
    filter_choices,
    link_history,
    link_uses,
    person_history,
)
from portal.models import AccessReview, AccessReviewItem
from portal.people import duties
from portal.people.http import AuthenticatedRequest
from portal.people.models import User
from portal.people.permissions import AUDITOR, MANAGER, REVIEWER, capability_required, user_has_capability
from portal.web.downloads import streamed_csv
from portal.web.form_errors import service_errors_to_form, service_outcome_message
from portal.web.reauth import reauthentication_required
from switchroles.access_selectors import findings_history_of_person, open_access_findings, refused_links
from switchroles.models import AccessFinding, AccountRole

PAGE_SIZE = 50
READERS = (AUDITOR, MANAGER)

COLUMNS = (
    ("person", "Person"), ("client", "Client"), ("account", "Account"), ("link", "Link"), ("tier", "Tier"),
    ("via", "Through"), ("granted_by", "Granted by"), ("since", "Since"), ("expires", "Expires"),
)


def _stamp() -> str:
    return timezone.now().strftime("%Y%m%dT%H%MZ")


# --- The access matrix ---------------------------------------------------------------------------

def _sort_columns(request: HttpRequest, filters: MatrixFilters) -> list[dict[str, str]]:
    columns = []
    for key, label in COLUMNS:
        params = request.GET.copy()
        params.pop("page", None)
        current = filters.sort == key
        params["sort"] = key
        params["dir"] = "asc" if current and filters.descending or not current else "desc"
        columns.append({
            "label": label, "href": f"?{params.urlencode()}",
            "aria_sort": ("descending" if filters.descending else "ascending") if current else "",
        })
    return columns


@require_GET
@capability_required(*READERS)
def index(request: AuthenticatedRequest) -> HttpResponse:
    """The access matrix: who can use which link, through which grant, since when."""
    form = MatrixFilterForm(request.GET)
    form.is_valid()
    filters = form.filters()
    paginator: Paginator[AccessRow] = Paginator(AccessMatrix(filters), PAGE_SIZE)  # type: ignore[arg-type]
    page = paginator.get_page(request.GET.get("page"))
    export_params = request.GET.copy()
    export_params.pop("page", None)
    refused = refused_links(person_ids=sorted({row.person_id for row in page}))
    for row in page:
        row_mark = refused.get((row.person_id, row.link_id)) or refused.get((row.person_id, 0), "")
        object.__setattr__(row, "aws_refuses", row_mark)  # frozen dataclass: a display-only mark
    aws_kind = request.GET.get("aws", "")
    findings = None
    if aws_kind in AccessFinding.Kind.values or aws_kind == "any":
        findings = open_access_findings(kind="" if aws_kind == "any" else aws_kind, client_id=filters.client,
                                        account_id=filters.account, person_id=filters.person)[:500]
    return render(request, "audit/matrix.html", {
        "form": form, "filters": filters, "page": page, "columns": _sort_columns(request, filters),
        "choices": filter_choices(client_id=filters.client), "export_query": export_params.urlencode(),
        "last_chain_check": last_chain_check(), "aws_kind": aws_kind, "aws_findings": findings,
        "aws_kinds": AccessFinding.Kind.choices,
    })


@require_GET
@capability_required(*READERS)
def access_csv(request: AuthenticatedRequest) -> HttpResponseBase:
    """The matrix for the page's filters (and ``as_of``), every row, streamed."""
    form = MatrixFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text(), content_type="text/plain; charset=utf-8")
    filters = form.filters()
    moment = filters.as_of.strftime("%Y%m%dT%H%MZ") if filters.as_of else _stamp()
    return streamed_csv(AccessMatrix(filters).csv_rows(), f"switchyard-access-{moment}.csv")


# --- Histories -----------------------------------------------------------------------------------

@require_GET
@capability_required(*READERS)
def link_detail(request: AuthenticatedRequest, role_id: int) -> HttpResponse:
    role = get_object_or_404(AccountRole.objects.select_related("account__client", "template"), pk=role_id)
    uses = Paginator(link_uses(role=role), PAGE_SIZE).get_page(request.GET.get("page"))
    can_use_now = AccessMatrix(MatrixFilters(link=role.pk)).rows()
    return render(request, "audit/link_history.html",
                  {**link_history(role=role), "page": uses, "can_use_now": can_use_now, "now": timezone.now()})


@require_GET
@capability_required(*READERS)
def person_detail(request: AuthenticatedRequest, person_id: int) -> HttpResponse:
    person = get_object_or_404(User, pk=person_id)
    uses = Paginator(link_uses(person=person), PAGE_SIZE).get_page(request.GET.get("page"))
    can_use_now = AccessMatrix(MatrixFilters(person=person.pk)).rows()
    return render(request, "audit/person_history.html",
                  {**person_history(person=person), "page": uses, "can_use_now": can_use_now, "now": timezone.now(),
                   "access_findings": findings_history_of_person(person_id=person.pk)[:200]})


# --- Audit events --------------------------------------------------------------------------------

@require_GET
@capability_required(*READERS)
def events(request: AuthenticatedRequest) -> HttpResponse:
    form = EventFilterForm(request.GET)
    form.is_valid()
    page = Paginator(audit_events_filtered(**vars(form.filters())), PAGE_SIZE).get_page(request.GET.get("page"))
    export_params = request.GET.copy()
    export_params.pop("page", None)
    return render(request, "audit/events.html", {
        "form": form, "page": page, "export_query": export_params.urlencode(),
        "last_chain_check": last_chain_check(),
    })


@require_GET
@capability_required(*READERS)
def events_csv(request: AuthenticatedRequest) -> HttpResponseBase:
    form = EventFilterForm(request.GET)
    if not form.is_valid():
        return HttpResponseBadRequest(form.errors.as_text(), content_type="text/plain; charset=utf-8")
    return streamed_csv(audit_events_csv_rows(filters=form.filters()), f"switchyard-events-{_stamp()}.csv")


# --- Evidence pack -------------------------------------------------------------------------------

@require_GET
@capability_required(*READERS)
def evidence_pack(request: AuthenticatedRequest, client_id: int) -> HttpResponseBase:
    """One zip for a client: the access matrix now, every grant ever made on it, every use of its
    links, and the audit chain verified at download time (plus the last scheduled check). Built
    in a temporary file, never whole in memory, and streamed from there."""
    client = get_object_or_404(Client, pk=client_id)
    return evidence_pack_response(client=client, generated_by=request.user)


# --- Access reviews ------------------------------------------------------------------------------

@require_GET
@capability_required(*READERS, REVIEWER)
def review_list(request: AuthenticatedRequest) -> HttpResponse:
    page = Paginator(reviews.reviews_with_progress(), PAGE_SIZE).get_page(request.GET.get("page"))
    user = request.user
    return render(request, "audit/review_list.html", {
        "page": page, "now": timezone.now(),
        "may_review": user_has_capability(user, MANAGER, REVIEWER),
        "assigned": user.access_reviews_to_do.filter(state=AccessReview.State.OPEN).count(),
    })


@require_http_methods(["GET", "POST"])
@capability_required(MANAGER)
def review_new(request: AuthenticatedRequest) -> HttpResponse:
    form = AccessReviewForm(request.POST or None)
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            review = reviews.access_review_open(
                opened_by=request.user,
                title=data["title"], scope=data["scope"], client=data.get("client"), tier=data.get("tier") or "",
                reviewers=data["reviewers"], deadline=data["deadline"], request=request,
            )
        except ValidationError as error:
            service_errors_to_form(form, error)
        else:
            messages.success(request, f"Review opened with {review.items.count()} grants to review.")
            return redirect("audit:review_detail", review_id=review.pk)
    return render(request, "audit/review_new.html", {"form": form})


@require_GET
@capability_required(*READERS, REVIEWER)
def review_detail(request: AuthenticatedRequest, review_id: int) -> HttpResponse:
    review = get_object_or_404(AccessReview.objects.select_related("client", "opened_by"), pk=review_id)
    form = ReviewItemsForm(request.GET)
    form.is_valid()
    show, unused_days = form.values()
    items = reviews.review_items(review=review, show=show, unused_days=unused_days)
    page = Paginator(items, PAGE_SIZE).get_page(request.GET.get("page"))
    user = request.user
    is_reviewer = user_has_capability(user, MANAGER, REVIEWER) and review.reviewers.filter(pk=user.pk).exists()
    return render(request, "audit/review_detail.html", {
        "review": review, "form": form, "page": page, "progress": reviews.review_progress(review=review),
        "reviewers": review.reviewers.order_by("username"), "is_reviewer": is_reviewer,
        "unused_days": unused_days, "show": show, "may_review": user_has_capability(user, MANAGER, REVIEWER),
        "self_review_blocked": duties.no_self_review(),
    })


def _revoking(request: HttpRequest) -> bool:
    return request.POST.get("decision") == AccessReviewItem.Decision.REVOKE


@require_POST
@capability_required(MANAGER, REVIEWER)
@reauthentication_required(enabled=_revoking)
def review_decide(request: AuthenticatedRequest, review_id: int, item_id: int) -> HttpResponse:
    """A reviewer confirms or revokes one grant. Revoking asks for re-authentication first, as any
    revocation does."""
    review = get_object_or_404(AccessReview, pk=review_id)
    item = get_object_or_404(AccessReviewItem, pk=item_id, review=review)
    note = request.POST.get("note", "")[:1000]

    def decide() -> None:
        ProhibitNullCharactersValidator()(note)  # PostgreSQL cannot store NUL in text or JSON
        reviews.access_review_decide(
            item_id=item.pk, review=review, reviewer=request.user,
            decision=request.POST.get("decision", ""), note=note, request=request,
        )

    service_outcome_message(request, decide,
                            f"Grant #{item.grant_id} {'revoked' if _revoking(request) else 'confirmed'}.")
    back = reverse("audit:review_detail", kwargs={"review_id": review.pk})
    # Back to the same filtered page of items; re-encoded so only a query string comes through.
    query = QueryDict(request.POST.get("return_query", "")[:500]).urlencode()
    return redirect(f"{back}?{query}" if query else back)


@require_GET
@capability_required(*READERS, REVIEWER)
def review_csv(request: AuthenticatedRequest, review_id: int) -> HttpResponseBase:
    review = get_object_or_404(AccessReview, pk=review_id)
    return streamed_csv(reviews.review_csv_rows(review=review), f"switchyard-review-{review.pk}-{_stamp()}.csv")
