"""The floor: hand-written SQL returning the same rows as the pages, one query each.

Portable between PostgreSQL and SQLite (Django's cursor turns ``%s`` into the driver's placeholder
and adapts datetimes). Table names come from the models, so a renamed table cannot go unnoticed.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from django.db import connection

from onboarding.models import AwsAccount, Client
from portal.people.models import User
from switchroles.models import AccountRole, Grant, RoleTemplate, Team, TeamMembership

DIRECTORY_COLUMNS = (
    "account_role_id", "client_name", "account_name", "account_id", "role_path", "role_name", "display_name",
    "color", "template_name", "tier",
)


def _tables() -> dict[str, str]:
    return {
        "role": AccountRole._meta.db_table,
        "account": AwsAccount._meta.db_table,
        "client": Client._meta.db_table,
        "template": RoleTemplate._meta.db_table,
        "grant": Grant._meta.db_table,
        "grant_templates": Grant.templates.through._meta.db_table,
        "membership": TeamMembership._meta.db_table,
    }


def directory_sql() -> str:
    """The active links a person may use now, one row each, in the directory's order.

    Parameters, in order: person, now, now (teams in force), person, now, now, now (grants in force).
    """
    t = _tables()
    # Only table names from the models are formatted in; every value is a parameter.
    return f"""
        WITH my_teams AS (
            SELECT m.team_id FROM {t['membership']} m
            WHERE m.person_id = %s AND m.added_at <= %s AND (m.removed_at IS NULL OR m.removed_at > %s)
        ),
        my_grants AS (
            SELECT g.id, g.client_id, g.account_id FROM {t['grant']} g
            WHERE (g.person_id = %s OR g.team_id IN (SELECT team_id FROM my_teams))
              AND g.granted_at <= %s
              AND (g.revoked_at IS NULL OR g.revoked_at > %s)
              AND (g.expires_at IS NULL OR g.expires_at > %s)
        ),
        reach AS (
            SELECT mg.account_id, gt.roletemplate_id AS template_id
            FROM my_grants mg JOIN {t['grant_templates']} gt ON gt.grant_id = mg.id
            WHERE mg.account_id IS NOT NULL
            UNION
            SELECT a.id, gt.roletemplate_id
            FROM my_grants mg
            JOIN {t['grant_templates']} gt ON gt.grant_id = mg.id
            JOIN {t['account']} a ON a.client_id = mg.client_id
        )
        SELECT ar.id, c.name, a.name, a.account_id, ar.role_path, ar.role_name, ar.display_name, ar.color,
               tp.name, tp.tier
        FROM {t['role']} ar
        JOIN reach r ON r.account_id = ar.account_id AND r.template_id = ar.template_id
        JOIN {t['account']} a ON a.id = ar.account_id
        JOIN {t['client']} c ON c.id = a.client_id
        JOIN {t['template']} tp ON tp.id = ar.template_id
        WHERE ar.state = 'active' AND a.account_id IS NOT NULL
        ORDER BY c.name, a.name, tp.id
    """  # noqa: S608


def directory_rows(*, person_id: int, now: datetime) -> list[tuple[Any, ...]]:
    """One query, every row fetched: what the directory would show ``person_id`` at ``now``."""
    with connection.cursor() as cursor:
        cursor.execute(directory_sql(), [person_id, now, now, person_id, now, now, now])
        return cursor.fetchall()


MATRIX_COLUMNS = (
    "person", "person_name", "client", "account", "aws_account_id", "link", "link_id", "role", "tier", "via",
    "team", "grant_id", "granted_by", "granted_at", "member_since", "role_activated_at", "since", "expires_at",
)


def matrix_sql() -> str:
    """Who can use which link now, through which grant: one row per person × link × grant in force
    (a team grant reaches each current member), in the export's order.

    Parameters, in order: now, now, now (grants in force), now, now (memberships in force).
    """
    t = _tables()
    people, team = User._meta.db_table, Team._meta.db_table
    greatest = "GREATEST" if connection.vendor == "postgresql" else "MAX"
    # Only table names from the models are formatted in; every value is a parameter.
    return f"""
        WITH live AS (
            SELECT g.id, g.team_id, g.person_id, g.client_id, g.account_id, g.granted_at, g.expires_at,
                   g.granted_by_id
            FROM {t['grant']} g
            WHERE g.granted_at <= %s AND (g.revoked_at IS NULL OR g.revoked_at > %s)
              AND (g.expires_at IS NULL OR g.expires_at > %s)
        ),
        holders AS (
            SELECT l.id AS grant_id, l.person_id AS person_id, NULL AS team_id, NULL AS member_since
            FROM live l WHERE l.person_id IS NOT NULL
            UNION ALL
            SELECT l.id, m.person_id, l.team_id, m.added_at
            FROM live l JOIN {t['membership']} m ON m.team_id = l.team_id
            WHERE m.added_at <= %s AND (m.removed_at IS NULL OR m.removed_at > %s)
        ),
        covered AS (
            SELECT l.id AS grant_id, r.id AS role_id
            FROM live l
            JOIN {t['grant_templates']} gt ON gt.grant_id = l.id
            JOIN {t['account']} ca ON ca.client_id = l.client_id
            JOIN {t['role']} r ON r.account_id = ca.id AND r.template_id = gt.roletemplate_id
            UNION ALL
            SELECT l.id, r.id
            FROM live l
            JOIN {t['grant_templates']} gt ON gt.grant_id = l.id
            JOIN {t['role']} r ON r.account_id = l.account_id AND r.template_id = gt.roletemplate_id
        )
        SELECT p.username, TRIM(p.first_name || ' ' || p.last_name), c.name, a.name, a.account_id,
               r.display_name, r.id, r.role_path || r.role_name, tp.tier,
               CASE WHEN h.team_id IS NULL THEN 'personal' ELSE 'team' END, COALESCE(tm.name, ''),
               g.id, gb.username, g.granted_at, h.member_since, r.activated_at,
               {greatest}(g.granted_at, COALESCE(h.member_since, g.granted_at),
                          COALESCE(r.activated_at, g.granted_at)),
               g.expires_at
        FROM holders h
        JOIN covered x ON x.grant_id = h.grant_id
        JOIN live g ON g.id = h.grant_id
        JOIN {t['role']} r ON r.id = x.role_id
        JOIN {t['account']} a ON a.id = r.account_id
        JOIN {t['client']} c ON c.id = a.client_id
        JOIN {t['template']} tp ON tp.id = r.template_id
        JOIN {people} p ON p.id = h.person_id
        JOIN {people} gb ON gb.id = g.granted_by_id
        LEFT JOIN {team} tm ON tm.id = h.team_id
        WHERE r.state = 'active' AND a.account_id IS NOT NULL
        ORDER BY p.username, c.name, a.name, r.display_name, g.id
    """  # noqa: S608


def matrix_csv(*, now: datetime, out: Any) -> int:
    """The floor of the export: one query, every row through ``csv.writer`` into ``out``. Returns
    the number of rows written (without the header)."""
    import csv

    writer = csv.writer(out)
    writer.writerow(MATRIX_COLUMNS)
    rows = 0
    with connection.cursor() as cursor:
        cursor.execute(matrix_sql(), [now, now, now, now, now])
        while chunk := cursor.fetchmany(5000):
            writer.writerows(chunk)
            rows += len(chunk)
    return rows
