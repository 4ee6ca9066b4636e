"""Reads of effective access: the open findings, the latest check, the short list of who reaches
every client as administrator. Managers and auditors read them (the views check the capability)."""

from __future__ import annotations

from django.db.models import Q, QuerySet

from switchroles.models import AccessCheck, AccessFinding


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
