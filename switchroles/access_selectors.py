"""Reads of effective access: the open findings, the latest check, the short list of who reaches
every client as administrator. Managers and auditors read them (the views check the capability)."""

from __future__ import annotations

from collections.abc import Sequence

from django.db.models import F, IntegerField, Q, QuerySet, Value

from portal.people.duties import auditor_rule_applies_to
from portal.people.models import User
from switchroles.enforcement import iam_user_name_is_valid
from switchroles.models import AccessCheck, AccessFinding, EnforcedPrincipal
from switchroles.selectors import DirectoryLink, grants_of_person, memberships_in_force


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


def _sync_failed(principal_type: str, principal_name: str, error: str) -> str:
    return (f"Switchyard could not write your access into AWS (IAM {principal_type} {principal_name}): {error} "
            "Ask a manager to look at the enforcement page.")


def directory_refusals_mark(*, person: User, links: Sequence[DirectoryLink]) -> str:
    """Mark each of ``person``'s directory links that AWS would refuse (``link.refused``: why, and
    what to do) and return a one-line summary for the top of the page (empty when none is marked).

    A link is marked when the person's IAM user name is missing or refused by IAM (every link), when
    every grant that shows it belongs to a team or person whose enforcement sync is failing (a link
    another, working grant also gives is not marked), or when an open "granted, not allowed" finding
    names it (or the person as a whole). One query, two when a sync is failing, whatever the number
    of links."""
    by_name = aws_refusal_by_name(person=person)
    if by_name:
        for link in links:
            link.refused = by_name
        return by_name if links else ""
    # One query for both: the failing syncs of the person and their teams, and their open findings.
    teams = memberships_in_force().filter(person=person).values("team_id")
    syncs = (EnforcedPrincipal.objects.filter(Q(person=person) | Q(team_id__in=teams)).exclude(last_error="")
             .annotate(r_source=Value("sync"), r_team=F("team_id"), r_role=Value(None, IntegerField()),
                       r_type=F("principal_type"), r_name=F("principal_name"), r_text=F("last_error"),
                       r_order=F("pk")).order_by()
             .values_list("r_source", "r_team", "r_role", "r_type", "r_name", "r_text", "r_order"))
    refused = (AccessFinding.objects.filter(person=person, kind=AccessFinding.Kind.NOT_ALLOWED,
                                            resolved_at__isnull=True)
               .annotate(r_source=Value("finding"), r_team=Value(None, IntegerField()), r_role=F("account_role_id"),
                         r_type=Value(""), r_name=Value(""), r_text=F("detail"), r_order=F("pk")).order_by()
               .values_list("r_source", "r_team", "r_role", "r_type", "r_name", "r_text", "r_order"))
    failing: dict[tuple[str, int], str] = {}
    findings: dict[int | None, str] = {}
    for source, team_id, role_id, kind, name, text, _ in sorted(syncs.union(refused, all=True),
                                                                 key=lambda row: (row[0], row[3], row[6])):
        if source == "sync":
            failing.setdefault(("team", team_id) if team_id is not None else ("person", person.pk),
                               _sync_failed(kind, name, text))
        else:
            findings.setdefault(role_id, f"{text} Ask a manager to look at the drift page.")
    if not failing and not findings:
        return ""  # nothing known against any link (each link's ``refused`` is empty already)
    # (template, account pk or client pk) -> the principals whose grants show such links.
    covering: dict[tuple[int, str, int], set[tuple[str, int]]] = {}
    if failing:
        grants = (grants_of_person(person=person).exclude(auditor_rule_applies_to(person)).order_by()
                  .values_list("team_id", "account_id", "client_id", "templates"))
        for team_id, account_id, client_id, template_id in grants:
            principal = ("team", team_id) if team_id is not None else ("person", person.pk)
            scope = ("account", account_id) if account_id is not None else ("client", client_id)
            covering.setdefault((template_id, *scope), set()).add(principal)
    marked = 0
    for link in links:
        link.refused = ""
        if failing:
            principals = (covering.get((link.template_id, "account", link.account_pk), set())
                          | covering.get((link.template_id, "client", link.client_id), set()))
            if principals and all(principal in failing for principal in principals):
                link.refused = failing[sorted(principals)[0]]
        if not link.refused:
            link.refused = findings.get(link.role_id) or findings.get(None, "")
        marked += bool(link.refused)
    if not marked:
        return ""
    return (f"{marked} of your {len(links)} link{'' if len(links) == 1 else 's'} "
            f"{'is' if marked == 1 else 'are'} affected: each is marked below with why and what to do.")
