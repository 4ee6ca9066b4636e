"""The benchmark's own databases, so a run never touches the portal's data.

With ``DATABASE_URL`` (PostgreSQL) set, the benchmark creates ``<name>_bench_<pid>`` (the seeded
data) and ``<name>_bench_onboarding_<pid>`` (the small database the onboarding workers share) next to
it, and drops both at the end. Otherwise both are SQLite files under ``var/bench/``, removed at the
end. The process id in the names lets two runs share a machine (and a checkout); databases left by
runs that were killed are dropped by the next run.

No Django import: this runs before Django is configured, to decide what it is configured with.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parent.parent
BENCH_VAR = ROOT / "var" / "bench"


@dataclass(frozen=True)
class BenchDatabase:
    url: str
    vendor: str  # "postgresql" or "sqlite"
    name: str  # database name, or the SQLite file path


def _with_db_name(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def _pg_name(url: str) -> str:
    return urlsplit(url).path.lstrip("/")


def _is_postgres(url: str) -> bool:
    return urlsplit(url).scheme in {"postgres", "postgresql", "pgsql", "postgis"}


def bench_databases(
    *, base_url: str | None, suffixes: tuple[str, ...], run_id: int | None = None
) -> list[BenchDatabase]:
    """One benchmark database per suffix for this run, derived from ``base_url`` (SQLite files if unset)."""
    run = os.getpid() if run_id is None else run_id
    suffixes = tuple(f"{suffix}_{run}" for suffix in suffixes)
    if base_url and _is_postgres(base_url):
        base = _pg_name(base_url) or "switchyard"
        return [
            BenchDatabase(url=_with_db_name(base_url, f"{base}_{suffix}"), vendor="postgresql",
                          name=f"{base}_{suffix}")
            for suffix in suffixes
        ]
    if base_url and not base_url.startswith("sqlite"):
        raise SystemExit(f"make bench supports PostgreSQL or SQLite, not {urlsplit(base_url).scheme}.")
    return [
        BenchDatabase(url=f"sqlite:///{BENCH_VAR / f'{suffix}.sqlite3'}", vendor="sqlite",
                      name=str(BENCH_VAR / f"{suffix}.sqlite3"))
        for suffix in suffixes
    ]


def _pg_admin_connection(url: str):  # type: ignore[no-untyped-def]
    """An autocommit connection to the server's maintenance database (CREATE/DROP DATABASE)."""
    import psycopg

    parts = urlsplit(url)
    conninfo = urlunsplit(("postgresql", parts.netloc, "/postgres", parts.query, ""))
    return psycopg.connect(conninfo, autocommit=True)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def drop_abandoned(*, base_url: str | None) -> list[str]:
    """Drop the benchmark databases (or files) of earlier runs whose process is gone."""
    dropped: list[str] = []
    if base_url and _is_postgres(base_url):
        from psycopg import sql

        base = _pg_name(base_url) or "switchyard"
        with _pg_admin_connection(base_url) as conn:
            names = [row[0] for row in conn.execute(
                "SELECT datname FROM pg_database WHERE datname LIKE %s", [f"{base}\\_bench\\_%"]
            )]
            for name in names:
                pid = name.rsplit("_", 1)[-1]
                if pid.isdigit() and not _pid_alive(int(pid)):
                    conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
                    dropped.append(name)
        return dropped
    for path in BENCH_VAR.glob("bench_*.sqlite3*"):
        pid = path.name.split(".sqlite3")[0].rsplit("_", 1)[-1]
        if pid.isdigit() and not _pid_alive(int(pid)):
            path.unlink(missing_ok=True)
            dropped.append(path.name)
    return dropped


def recreate(database: BenchDatabase) -> None:
    """Start from nothing: drop the database (or file) if it is left from an earlier run, create it."""
    if database.vendor == "sqlite":
        BENCH_VAR.mkdir(parents=True, exist_ok=True)
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(database.name + suffix).unlink(missing_ok=True)
        return
    from psycopg import sql

    with _pg_admin_connection(database.url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database.name)))


def drop(database: BenchDatabase) -> None:
    """Remove the database (or file); close Django's connections to it first."""
    if database.vendor == "sqlite":
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(database.name + suffix).unlink(missing_ok=True)
        return
    from psycopg import sql

    with _pg_admin_connection(database.url) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(database.name)))


def configure_environment(database: BenchDatabase) -> None:
    """Point Django (configured after this) at ``database``; the sandbox settings otherwise."""
    os.environ["DATABASE_URL"] = database.url
    os.environ.setdefault("SWITCHYARD_ENV", "sandbox")
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "portal.settings")
