"""The access matrix: one row per person × link (account role) × grant that lets them use it.

It is computed in one SQL query over ``Grant`` × ``TeamMembership`` × ``AccountRole`` so it stays
fast at managed-services scale (tens of thousands of grants, thousands of roles) and can be
streamed row by row into a CSV in constant memory.

Two flavours share the query:

- **now**: grants in force now, open memberships, and roles whose link is published (state
  ``active``), exactly what the directory shows;
- **as of** a past moment: the same, rebuilt from the history fields: grants granted by then and not
  yet revoked or expired, memberships added by then and not yet removed, roles activated by then and
  not yet removed.

A person can use a link through several grants (their team's and a personal one, say): each is a
row, because each is a reason an auditor must see.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import UTC, datetime
from typing import Any

from django.db import DatabaseError, connection
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from onboarding.models import AwsAccount, Client
from portal.people.models import User
from switchroles.access_selectors import open_access_findings, refused_links
from switchroles.models import AccessFinding, AccountRole, Grant, RoleTemplate, Team, TeamMembership


@dataclass(frozen=True)
class MatrixFilters:
    """What the matrix is narrowed to. ``None`` means "any"; ``as_of`` ``None`` means now."""

    client: int | None = None
    account: int | None = None
    team: int | None = None
    person: int | None = None
    tier: str = ""
    link: int | None = None
    as_of: datetime | None = None
    sort: str = "person"
    descending: bool = False


@dataclass(frozen=True)
class AccessRow:
    person_id: int
    person: str
    person_name: str
    client_id: int
    client: str
    account_pk: int
    account_id: str
    account: str
    link_id: int
    link: str
    role: str
    tier: str
    grant_id: int
    team_id: int | None
    team: str
    granted_by: str
    granted_at: datetime
    member_since: datetime | None
    role_activated_at: datetime | None
    since: datetime
    expires_at: datetime | None

    @property
    def via(self) -> str:
        return f"team {self.team}" if self.team_id else "personal grant"


ROW_FIELDS = tuple(f.name for f in fields(AccessRow))
DATETIME_FIELDS = ("granted_at", "member_since", "role_activated_at", "since", "expires_at")
_DATETIME_POSITIONS = tuple(ROW_FIELDS.index(name) for name in DATETIME_FIELDS)

# Sort keys offered to people, mapped to SQL expressions of the outer query.
SORTS: dict[str, str] = {
    "person": "p.username",
    "client": "c.name",
    "account": "a.name",
    "link": "r.display_name",
    "tier": "t.tier",
    "via": "tm.name",
    "granted_by": "gb.username",
    "since": "since",
    "expires": "h.expires_at",
}
# Tie-breakers after the chosen key, so pages and exports are stable.
_ORDER_TAIL = "p.username, c.name, a.name, r.display_name, h.grant_id"

CSV_HEADER = (
    "person", "person_name", "client", "account", "aws_account_id", "link", "link_id", "role", "tier",
    "via", "team", "grant_id", "granted_by", "granted_at", "member_since", "role_activated_at", "since",
    "expires_at", "aws", "aws_detail",
)


def _tables() -> dict[str, str]:
    through = Grant.templates.through._meta
    return {
        "grant": Grant._meta.db_table,
        "grant_templates": through.db_table,
        "gt_grant": str(through.get_field("grant").column),
        "gt_template": str(through.get_field("roletemplate").column),
        "membership": TeamMembership._meta.db_table,
        "role": AccountRole._meta.db_table,
        "account": AwsAccount._meta.db_table,
        "client": Client._meta.db_table,
        "template": RoleTemplate._meta.db_table,
        "team": Team._meta.db_table,
        "user": User._meta.db_table,
    }


def _greatest(*expressions: str) -> str:
    # PostgreSQL's GREATEST; SQLite's multi-argument max() is the same thing.
    name = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    return f"{name}({', '.join(expressions)})"


def _build_sql(filters: MatrixFilters, *, select: str, order: bool, limit: int | None = None,
               offset: int = 0) -> tuple[str, list[Any]]:
    """The query. Every value reaches the database as a parameter; the only text formatted into
    it is table and column names from the models and sort expressions from ``SORTS``."""
    names = _tables()
    moment = filters.as_of or timezone.now()
    at = connection.ops.adapt_datetimefield_value(moment)

    grant_live = "g.granted_at <= %s AND (g.revoked_at IS NULL OR g.revoked_at > %s) " \
                 "AND (g.expires_at IS NULL OR g.expires_at > %s)"
    grant_params = [at, at, at]
    member_live = "m.added_at <= %s AND (m.removed_at IS NULL OR m.removed_at > %s)"
    role_params: list[Any]
    if filters.as_of is None:
        role_live, role_params = "r.state = %s", [AccountRole.State.ACTIVE.value]
    else:
        role_live = "r.activated_at IS NOT NULL AND r.activated_at <= %s " \
                    "AND (r.removed_at IS NULL OR r.removed_at > %s)"
        role_params = [at, at]

    # One branch per kind of grant: to a person or to a team (reaching each member at that
    # moment), on a whole client (its tiers in every account) or on one account. Plain joins of
    # the base tables, so the planner's estimates come from their statistics; a join of derived
    # sets on the grant id misleads it. The filters go into every branch, so a narrow view (one
    # client, one person) reads only its rows.
    narrowing: list[tuple[str, list[Any]]] = [("ca.account_id IS NOT NULL", [])]
    for value, column in ((filters.client, "ca.client_id"), (filters.account, "ca.id"), (filters.link, "r.id")):
        if value is not None:
            narrowing.append((f"{column} = %s", [value]))
    if filters.tier:
        in_tier = f"r.template_id IN (SELECT id FROM {names['template']} WHERE tier = %s)"  # noqa: S608
        narrowing.append((in_tier, [filters.tier]))
    columns = "g.id AS grant_id, g.granted_at, g.expires_at, g.granted_by_id"
    reach = (f"JOIN {names['grant_templates']} gt ON gt.{names['gt_grant']} = g.id "
             f"JOIN {names['account']} ca ON ca.{{scope_column}} = g.{{scope}}_id "
             f"JOIN {names['role']} r ON r.account_id = ca.id AND r.template_id = gt.{names['gt_template']}")
    branches, branch_params = [], []
    for scope, scope_column in (("client", "client_id"), ("account", "id")):
        scope_reach = reach.format(scope=scope, scope_column=scope_column)
        common = [(f"g.{scope}_id IS NOT NULL AND {grant_live} AND {role_live}", [*grant_params, *role_params]),
                  *narrowing]
        if filters.team is None:  # a team filter leaves out personal grants
            personal = [("g.person_id IS NOT NULL", []), *common]
            if filters.person is not None:
                personal.append(("g.person_id = %s", [filters.person]))
            branches.append(f"SELECT {columns}, g.person_id AS person_id, NULL AS team_id, "  # noqa: S608
                            f"NULL AS member_since, "
                            f"r.id AS role_id FROM {names['grant']} g {scope_reach} "
                            f"WHERE {' AND '.join(c for c, _ in personal)}")
            branch_params += [value for _, values in personal for value in values]
        team = [("g.team_id IS NOT NULL", []), *common]
        if filters.team is not None:
            team.append(("g.team_id = %s", [filters.team]))
        if filters.person is not None:
            team.append(("m.person_id = %s", [filters.person]))
        branches.append(f"SELECT {columns}, m.person_id AS person_id, g.team_id AS team_id, "  # noqa: S608
                        f"m.added_at AS member_since, r.id AS role_id FROM {names['grant']} g "
                        f"JOIN {names['membership']} m ON m.team_id = g.team_id AND {member_live} {scope_reach} "
                        f"WHERE {' AND '.join(c for c, _ in team)}")
        branch_params += [at, at, *(value for _, values in team for value in values)]
    access = " UNION ALL ".join(branches)
    params: list[Any] = []

    sql = f"""
        SELECT {select}
          FROM ({access}) h
          JOIN {names['role']} r ON r.id = h.role_id
          JOIN {names['account']} a ON a.id = r.account_id
          JOIN {names['client']} c ON c.id = a.client_id
          JOIN {names['template']} t ON t.id = r.template_id
          JOIN {names['user']} p ON p.id = h.person_id
          JOIN {names['user']} gb ON gb.id = h.granted_by_id
          LEFT JOIN {names['team']} tm ON tm.id = h.team_id"""  # noqa: S608
    if order:
        key = SORTS.get(filters.sort, SORTS["person"])
        direction = "DESC" if filters.descending else "ASC"
        sql += f" ORDER BY {key} {direction}, {_ORDER_TAIL}"
    if limit is not None:
        sql += " LIMIT %s OFFSET %s"
        params = [*params, limit, offset]
    return sql, [*branch_params, *params]


def _select_list() -> str:
    since = _greatest("h.granted_at", "COALESCE(h.member_since, h.granted_at)",
                      "COALESCE(r.activated_at, h.granted_at)")
    return f"""p.id, p.username, TRIM(p.first_name || ' ' || p.last_name),
               c.id, c.name, a.id, a.account_id, a.name,
               r.id, r.display_name, r.role_path || r.role_name, t.tier,
               h.grant_id, h.team_id, COALESCE(tm.name, ''), gb.username,
               h.granted_at, h.member_since, r.activated_at, {since} AS since, h.expires_at"""


@contextmanager
def _whole_join_plan() -> Iterator[None]:
    """On PostgreSQL, plan the matrix as what it is: a join of every row in force, read whole.

    Nested loops only pay off for a few rows, but stale statistics (right after a bulk load or a
    fresh install, before autovacuum has analysed the tables) make the planner believe the tables
    hold a handful of rows and pick them, which takes minutes at scale instead of a second. And a
    cursor is planned for its first 10% of rows by default, while an export reads them all. So:
    hash joins, planned for every row; both settings are put back afterwards (and a rolled-back
    transaction undoes them anyway)."""
    if connection.vendor != "postgresql":
        yield
        return
    with connection.cursor() as cursor:
        cursor.execute("SELECT set_config('enable_nestloop', 'off', false), "
                       "set_config('cursor_tuple_fraction', '1.0', false)")
    try:
        yield
    finally:
        try:
            with connection.cursor() as cursor:
                cursor.execute("SELECT set_config(name, reset_val, false) FROM pg_settings "
                               "WHERE name IN ('enable_nestloop', 'cursor_tuple_fraction')")
        except DatabaseError:  # the transaction failed: its rollback restores the settings
            pass


def _to_utc(value: datetime | str | None) -> datetime | None:
    """Datetimes come back aware from PostgreSQL and as naive datetimes or text (for computed
    columns) from SQLite, where Django stores UTC."""
    if value is None or value == "":
        return None
    if isinstance(value, str):
        parsed = parse_datetime(value)
        if parsed is None:
            raise ValueError(f"not a datetime: {value!r}")
        value = parsed
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _normalise(raw: Sequence[Any]) -> list[Any]:
    row = list(raw)
    for position in _DATETIME_POSITIONS:
        row[position] = _to_utc(row[position])
    return row


class AccessMatrix:
    """The matrix for some filters, lazy: ``count()`` and slicing run SQL (so Django's Paginator
    can page it), ``csv_rows()`` streams it through a server-side cursor."""

    def __init__(self, filters: MatrixFilters) -> None:
        self.filters = filters
        self._count: int | None = None

    def count(self) -> int:
        if self._count is None:
            sql, params = _build_sql(self.filters, select="1", order=False)
            with _whole_join_plan(), connection.cursor() as cursor:
                cursor.execute(f"SELECT COUNT(*) FROM ({sql}) counted", params)  # noqa: S608
                self._count = int(cursor.fetchone()[0])
        return self._count

    def __len__(self) -> int:
        return self.count()

    def __getitem__(self, index: slice) -> list[AccessRow]:
        if not isinstance(index, slice) or index.step not in (None, 1):
            raise TypeError("the access matrix is read in slices")
        start = index.start or 0
        limit = None if index.stop is None else max(index.stop - start, 0)
        return self.rows(limit=limit, offset=start)

    def rows(self, *, limit: int | None = None, offset: int = 0) -> list[AccessRow]:
        sql, params = _build_sql(self.filters, select=_select_list(), order=True, limit=limit, offset=offset)
        with _whole_join_plan(), connection.cursor() as cursor:
            cursor.execute(sql, params)
            return [AccessRow(*_normalise(raw)) for raw in cursor.fetchall()]

    def __iter__(self) -> Iterator[AccessRow]:
        for raw in self._stream():
            yield AccessRow(*_normalise(raw))

    def _stream(self, chunk_size: int = 2000) -> Iterator[Sequence[Any]]:
        """Every row, fetched in chunks through a server-side cursor on PostgreSQL (Django's
        ``chunked_cursor``, as ``QuerySet.iterator()`` uses), so memory stays flat."""
        sql, params = _build_sql(self.filters, select=_select_list(), order=True)
        with _whole_join_plan():
            cursor = connection.chunked_cursor()
            try:
                cursor.execute(sql, params)
                while chunk := cursor.fetchmany(chunk_size):
                    yield from chunk
            finally:
                cursor.close()

    def csv_rows(self) -> Iterator[Sequence[Any]]:
        """The header, then one list per row in ``CSV_HEADER`` order, datetimes in ISO 8601 UTC."""
        yield CSV_HEADER
        iso = _iso
        # Effective access (switchroles.access_checks): a granted row AWS refuses is marked, and the
        # reaches no grant explains follow the grant rows. Only for "now": findings have no past.
        now = self.filters.as_of is None
        refused = refused_links() if now else {}
        for raw in self._stream():
            (pid, person, person_name, _cid, client, _apk, aws_id, account, link_id, link, role, tier,
             grant_id, team_id, team, granted_by, granted_at, member_since, activated, since, expires) = raw
            mark = refused.get((pid, link_id)) or refused.get((pid, 0), "")
            yield (
                person, person_name, client, account, aws_id, link, link_id, role, tier,
                "team" if team_id else "personal", team, grant_id, granted_by, iso(granted_at),
                iso(member_since), iso(activated), iso(since), iso(expires),
                "granted, not allowed" if mark else "allowed" if now else "", mark,
            )
        if now and self.filters.team is None and not self.filters.tier and self.filters.link is None:
            yield from self._finding_rows()

    def _finding_rows(self) -> Iterator[Sequence[Any]]:
        for kind in (AccessFinding.Kind.UNGRANTED, AccessFinding.Kind.DOOR):
            findings = open_access_findings(kind=kind, client_id=self.filters.client,
                                            account_id=self.filters.account, person_id=self.filters.person)
            for finding in findings.iterator(chunk_size=2000):
                account = finding.account
                role = finding.account_role
                yield (
                    finding.principal_name, finding.person.get_full_name() if finding.person else "",
                    account.client.name if account else "", account.name if account else "",
                    (account.account_id or "") if account else "", role.display_name if role else "",
                    role.pk if role else "", finding.role_arn, "", "no grant", "", "", "", "", "", "",
                    _iso(finding.opened_at), "", finding.get_kind_display().lower(),
                    f"{finding.detail} ({finding.policy} {finding.statement})".strip(),
                )


def _iso(value: datetime | str | None) -> str:
    """ISO 8601 in UTC, as ``datetime.isoformat()`` writes it; the hot path of the export."""
    if value is None or value == "":
        return ""
    if isinstance(value, str):  # SQLite's UTC text, 'YYYY-MM-DD HH:MM:SS[.ffffff]'
        return value.replace(" ", "T", 1) + "+00:00"
    if value.tzinfo is None:  # SQLite's naive UTC
        return value.isoformat() + "+00:00"
    return value.astimezone(UTC).isoformat()


def access_matrix(*, filters: MatrixFilters) -> AccessMatrix:
    return AccessMatrix(filters)


def access_as_of(*, at: datetime, **filters: Any) -> set[tuple[int, int, int]]:
    """The (person id, link id, grant id) triples of the matrix at ``at``: a compact form for
    comparisons and tests."""
    matrix = AccessMatrix(MatrixFilters(as_of=at, **filters))
    return {(row.person_id, row.link_id, row.grant_id) for row in matrix}
