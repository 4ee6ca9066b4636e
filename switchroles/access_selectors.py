"""Reads of effective access: the open findings, the latest check, the short list of who reaches
every client as administrator. Managers and auditors read them (the views check the capability)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from portal.people.models import User
from switchroles.enforcement import iam_user_name_is_valid
from switchroles.models import AccessCheck, AccessFinding, EnforcedPrincipal
from switchroles.selectors import memberships_in_force


def latest_access_check() -> AccessCheck | None:
    return AccessCheck.objects.first()


def open_access_findings(
    *, kind: str = "", client_id: int | None = None, account_id: int | None = None, person_id: int | None = None,
) -> QuerySet[AccessFinding]:
    """Open findings, narrowed by kind, client, account or person (a person's own IAM user)."""
    found = AccessFinding.objects.filter(resolved_at__isnull=True)
    if kind:
        found = found.filter(kind=kind)
    if client_id is not None:
        found = found.filter(account__client_id=client_id)
    if account_id is not None:
        found = found.filter(account_id=account_id)
    if person_id is not None:
        found = found.filter(person_id=person_id)
    return found.select_related("account", "account__client", "account_role", "person").order_by(
        "kind", "principal_name", "role_arn", "pk"
    )


def open_access_findings_count() -> int:
    return AccessFinding.objects.filter(resolved_at__isnull=True).count()


def refused_links(*, person_ids: list[int] | None = None) -> dict[tuple[int, int], str]:
    """(person id, account role id) -> why AWS refuses a granted link, for marking matrix rows."""
    found = AccessFinding.objects.filter(resolved_at__isnull=True, kind=AccessFinding.Kind.NOT_ALLOWED,
                                         person__isnull=False)
    if person_ids is not None:
        found = found.filter(person_id__in=person_ids)
    marks: dict[tuple[int, int], str] = {}
    people_refused: dict[int, str] = {}
    for person_id, role_id, detail in found.values_list("person_id", "account_role_id", "detail"):
        if role_id is None:
            people_refused[person_id] = detail
        else:
            marks[(person_id, role_id)] = detail
    return {**marks, **{(pid, 0): detail for pid, detail in people_refused.items()}}


def findings_history_of_person(*, person_id: int) -> QuerySet[AccessFinding]:
    """Every finding (open or resolved) about the person's IAM user, newest first."""
    return AccessFinding.objects.filter(Q(person_id=person_id)).select_related("account", "account__client").order_by(
        "-opened_at", "-pk"
    )


def aws_refusal_by_name(*, person: User) -> str:
    """Why AWS refuses every link of ``person`` because of their IAM user name (no query)."""
    if not person.iam_username:
        return ("Your profile has no IAM user name, so AWS does not let you assume these roles. Ask a manager to "
                "set it (People page) to your IAM user in the main account.")
    if not iam_user_name_is_valid(person.iam_username):
        return (f"IAM refuses your IAM user name {person.iam_username!r} (only ASCII letters, digits and +=,.@_-). "
                "Ask a manager to correct it on your profile.")
    return ""


def aws_refusal_for_person(*, person: User) -> str:
    """Why AWS would refuse the links the directory shows ``person`` (empty when nothing is known
    against them), with what to do: no or a refused IAM user name, a failing enforcement sync for
    them or their team, or an open "granted, not allowed" finding."""
    by_name = aws_refusal_by_name(person=person)
    if by_name:
        return by_name
    teams = memberships_in_force().filter(person=person).values("team_id")
    failing = EnforcedPrincipal.objects.filter(Q(person=person) | Q(team_id__in=teams)).exclude(last_error="")
    principal = failing.order_by("principal_type", "pk").first()
    if principal is not None:
        return (f"Switchyard could not write your access into AWS (IAM {principal.principal_type} "
                f"{principal.principal_name}): {principal.last_error} Ask a manager to look at the enforcement page.")
    refused = AccessFinding.objects.filter(person=person, kind=AccessFinding.Kind.NOT_ALLOWED,
                                           resolved_at__isnull=True).order_by("pk").first()
    if refused is not None:
        return f"{refused.detail} Ask a manager to look at the drift page."
    return ""
