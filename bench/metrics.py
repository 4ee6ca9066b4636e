"""Measurements of the real pages against their floor, each several times, median reported.

Pages are requested through ``django.test.Client`` as a signed-in person with MFA enrolled (no
test instrumentation: templates render as in production), and their whole content is read, streamed
or not. Times are ``time.perf_counter`` wall-clock seconds.
"""

from __future__ import annotations

import gc
import re
import statistics
import time
import tracemalloc
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass
from typing import Any

from django.db import connection
from django.http import HttpResponseBase
from django.test import Client
from django.test.utils import CaptureQueriesContext
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from bench import sql
from bench.report import Result
from bench.seed import MANY, TEN, Seeded, expected_links
from portal.people.models import User


def paired_median_seconds(measured: Callable[[], Any], floor: Callable[[], Any], *, repeats: int,
                          warmup: int = 1) -> tuple[tuple[float, list[float]], tuple[float, list[float]]]:
    """The median time of ``measured`` and of ``floor`` (and every time), after ``warmup`` unmeasured
    runs of each: ``repeats`` runs of each, alternating, each from a collected heap. Alternating
    rather than one series after the other, so a machine whose speed drifts during the runs slows
    or speeds up both sides of the ratio alike."""
    for _ in range(warmup):
        measured()
        floor()
    times: tuple[list[float], list[float]] = ([], [])
    for _ in range(repeats):
        for fn, runs in ((measured, times[0]), (floor, times[1])):
            gc.collect()
            started = time.perf_counter()
            fn()
            runs.append(time.perf_counter() - started)
    return (statistics.median(times[0]), times[0]), (statistics.median(times[1]), times[1])


def signed_in(user: User) -> Client:
    """A client with a session for ``user`` (who has an authenticator, so MFA lets them through)."""
    client = Client()
    client.force_login(user, backend="django.contrib.auth.backends.ModelBackend")
    return client


@dataclass(frozen=True)
class Fetched:
    status: int
    size: int
    body: bytes | None  # kept only when asked for


def fetch(client: Client, path: str, *, keep: bool = False) -> Fetched:
    """GET ``path`` and read the whole response (every chunk of a streaming one)."""
    # The test client closes the response itself (a streaming one once its content is read), as a
    # WSGI server would, without closing the database connection: a second close here would.
    response: HttpResponseBase = client.get(path)
    if response.streaming:
        chunks: list[bytes] = []
        size = 0
        for chunk in response.streaming_content:  # type: ignore[attr-defined]
            size += len(chunk)
            if keep:
                chunks.append(chunk)
        body = b"".join(chunks) if keep else None
    else:
        content: bytes = response.content  # type: ignore[attr-defined]
        size = len(content)
        body = content if keep else None
    return Fetched(status=response.status_code, size=size, body=body)


def url_or_none(name: str) -> str | None:
    with suppress(NoReverseMatch):
        return reverse(name)
    return None


# --------------------------------------------------------------------------------------------------
# The directory
# --------------------------------------------------------------------------------------------------

_GO_LINK = re.compile(rb"/go/(\d+)/")


_INDEX = re.compile(rb'<script id="directory-index" type="application/json">(.*?)</script>', re.S)


def _index_ids(body: bytes) -> set[int]:
    """The links of the directory's filter index (rows of collapsed clients are drawn from it)."""
    import json

    found = _INDEX.search(body)
    return {int(row[0]) for row in json.loads(found.group(1))["links"]} if found else set()


def directory(seeded: Seeded, *, repeats: int) -> list[Result]:
    queries = Result("directory_queries", target=10, unit="queries")
    ratio = Result("directory_vs_sql", target=3, unit="x")
    path = url_or_none("switchroles:directory")
    if path is None:
        for result in (queries, ratio):
            result.missing = "the directory (URL name switchroles:directory, /links/) does not exist yet"
        return [queries, ratio]

    expected = {TEN: seeded.role_ids_for(TEN), MANY: seeded.role_ids_for(MANY)}
    people = {TEN: seeded.ten, MANY: seeded.many}
    clients = {who: signed_in(person) for who, person in people.items()}

    # Query counts, after one warm-up request each (session and content-type caches settle).
    counts: dict[int, int] = {}
    shown: dict[int, set[int]] = {}
    for who, client in clients.items():
        first = fetch(client, path, keep=True)
        if first.status != 200:
            raise RuntimeError(f"GET {path} as {people[who].username} answered {first.status}")
        shown[who] = ({int(m) for m in _GO_LINK.findall(first.body or b"")} | _index_ids(first.body or b"")) - {0}
        with CaptureQueriesContext(connection) as captured:
            fetch(client, path)
        counts[who] = len(captured.captured_queries)
    queries.value = counts[MANY]
    queries.details = {
        "queries_10_links": counts[TEN],
        "queries_3000_links": counts[MANY],
        "summary": f"{counts[TEN]} queries at {len(expected[TEN])} links, {counts[MANY]} at {len(expected[MANY])}",
    }
    queries.checks = {"equal_at_10_and_3000": counts[TEN] == counts[MANY]}

    # The page against one hand-written query returning the same rows.
    now = timezone.now()
    rows = sql.directory_rows(person_id=seeded.many.pk, now=now)
    sql_ids = {row[0] for row in rows}
    links_match = sql_ids == expected[MANY] and len(rows) == len(expected[MANY])
    page_ids_match = shown[MANY] == expected[MANY] if shown[MANY] else None
    (view_seconds, view_times), (sql_seconds, sql_times) = paired_median_seconds(
        lambda: fetch(clients[MANY], path),
        lambda: sql.directory_rows(person_id=seeded.many.pk, now=timezone.now()), repeats=repeats
    )
    ratio.value = view_seconds / sql_seconds
    ratio.details = {
        "links": len(expected[MANY]),
        "sql_rows": len(rows),
        "page_links_shown": len(shown[MANY]),
        "view_ms": view_seconds * 1000,
        "sql_ms": sql_seconds * 1000,
        "view_times_ms": [t * 1000 for t in view_times],
        "sql_times_ms": [t * 1000 for t in sql_times],
        "summary": f"page {view_seconds * 1000:.1f} ms / SQL {sql_seconds * 1000:.1f} ms ({len(rows)} rows)",
    }
    ratio.checks = {"sql_rows_are_the_expected_links": links_match}
    if page_ids_match is not None:
        ratio.checks["page_shows_the_expected_links"] = page_ids_match
    return [queries, ratio]


# --------------------------------------------------------------------------------------------------
# Memory
# --------------------------------------------------------------------------------------------------


def _proc_status_kb(field: str) -> int | None:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    """Linux: make VmHWM (peak resident memory) start again from the current resident size."""
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def peak_memory_mb(fn: Callable[[], Any]) -> dict[str, float | None]:
    """Peak memory while ``fn`` runs, two ways: the resident-set high-water mark above where it
    started (covers C buffers such as a database driver's result set; None where unavailable) and
    tracemalloc's peak of Python allocations (run separately, since tracing costs memory itself)."""
    gc.collect()
    rss_delta: float | None = None
    if _reset_peak_rss():
        before = _proc_status_kb("VmRSS")
        fn()
        peak = _proc_status_kb("VmHWM")
        if before is not None and peak is not None:
            rss_delta = max(0, peak - before) / 1024
    else:
        fn()
    gc.collect()
    tracemalloc.start()
    try:
        fn()
        _, traced_peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return {"rss_peak_delta_mb": rss_delta, "tracemalloc_peak_mb": traced_peak / (1024 * 1024)}


# --------------------------------------------------------------------------------------------------
# The access-matrix export
# --------------------------------------------------------------------------------------------------


def _csv_triples(body: bytes) -> tuple[list[str], list[tuple[str, int, int]]]:
    """The header and the (person, link id, grant id) of every row of an exported CSV."""
    import csv
    import io

    reader = csv.reader(io.StringIO(body.decode("utf-8-sig")))
    header = next(reader)
    person, link, grant = header.index("person"), header.index("link_id"), header.index("grant_id")
    return header, [(row[person], int(row[link]), int(row[grant])) for row in reader]


def matrix_export(seeded: Seeded, *, repeats: int) -> list[Result]:
    ratio = Result("matrix_csv_vs_sql", target=3, unit="x")
    memory = Result("matrix_csv_peak_mb", target=200, unit="MB")
    path = url_or_none("audit:access_csv")
    if path is None:
        for result in (ratio, memory):
            result.missing = (
                "the access-matrix export (URL name audit:access_csv, /audit/access.csv) does not exist yet"
            )
        return [ratio, memory]
    client = signed_in(seeded.auditor)

    def export() -> None:
        fetched = fetch(client, path)
        if fetched.status != 200:
            raise RuntimeError(f"GET {path} as an auditor answered {fetched.status}")

    def floor() -> None:
        import io

        sql.matrix_csv(now=timezone.now(), out=io.StringIO())

    # Memory first, before this process has held a whole export for the checks below (freed memory
    # that stays mapped would hide part of the export's peak from the resident-set measure). These
    # two exports also warm everything up for the timings.
    peaks = peak_memory_mb(export)
    rss, traced = peaks["rss_peak_delta_mb"], peaks["tracemalloc_peak_mb"]
    memory.value = max(v for v in (rss, traced) if v is not None)

    # Same rows? The export's (person, link, grant) against the SQL's, and its people × links
    # against what the seed plan says each person may use.
    first = fetch(client, path, keep=True)
    header, exported = _csv_triples(first.body or b"")
    del first
    with connection.cursor() as cursor:
        now = timezone.now()
        cursor.execute(sql.matrix_sql(), [now, now, now, now, now])
        baseline = [(row[0], int(row[6]), int(row[11])) for row in cursor.fetchall()]
    usernames = dict(User.objects.filter(pk__in=seeded.person_ids).values_list("pk", "username"))
    index_of = {pk: index for index, pk in enumerate(seeded.person_ids)}
    planned = expected_links(seeded.plan)
    expected_pairs = {
        (usernames[pk], seeded.role_ids[link]) for pk in seeded.person_ids for link in planned.get(index_of[pk], ())
    }
    exported_pairs = {(person, link) for person, link, _ in exported}

    # Both already ran above (the export three times, the query once): no further warm-up.
    (export_seconds, export_times), (sql_seconds, sql_times) = paired_median_seconds(
        export, floor, repeats=repeats, warmup=0)
    ratio.value = export_seconds / sql_seconds
    ratio.details = {
        "rows_export": len(exported),
        "rows_sql": len(baseline),
        "columns": len(header),
        "export_s": export_seconds,
        "sql_csv_s": sql_seconds,
        "export_times_s": export_times,
        "sql_csv_times_s": sql_times,
        "summary": f"export {export_seconds:.2f} s / SQL+csv {sql_seconds:.2f} s ({len(exported)} rows)",
    }
    ratio.checks = {
        "row_counts_match": len(exported) == len(baseline),
        "same_person_link_grant_rows": sorted(exported) == sorted(baseline),
        "people_x_links_as_seeded": exported_pairs == expected_pairs,
    }
    memory.details = {
        **peaks,
        "rows": len(exported),
        "summary": f"peak +{memory.value:.1f} MB streaming {len(exported)} rows "
                   f"(RSS {'n/a' if rss is None else f'{rss:.1f}'}, tracemalloc {traced:.1f})",
    }
    return [ratio, memory]
