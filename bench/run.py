"""``make bench`` (``python -m bench.run``): seed, measure, write ``bench/results.json``, print a table.

Exit status: 0 when every metric was measured (whether or not it met its target: a missed target is
printed as MISSED), 1 when the harness could not measure one (the product piece it exercises is
missing, or measuring failed).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from pathlib import Path

from bench import databases
from bench.report import RESULTS_PATH, Result, read_results, table, write_results

RUN_TARGET_SECONDS = 20 * 60


def _log(started: float, message: str) -> None:
    print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--scale", choices=["full", "tiny"], default="full",
                        help="full: the managed-services scale of the issue; tiny: a quick check of the harness")
    parser.add_argument("--repeats", type=int, default=7, help="timed runs of each page and its SQL (median)")
    parser.add_argument("--export-repeats", type=int, default=3, help="timed runs of the CSV export and its SQL")
    parser.add_argument("--onboarding-accounts", type=int, default=30)
    parser.add_argument("--onboarding-repeats", type=int, default=2,
                        help="runs of each side, alternating (direct, workflow, workflow, direct)")
    parser.add_argument("--skip-onboarding", action="store_true", help="leave out the worker benchmark")
    parser.add_argument("--scale-accounts", type=int, default=None,
                        help="new accounts for the latency-model onboarding (default 30; tiny: 6)")
    parser.add_argument("--drift-accounts", type=int, default=None,
                        help="accounts for the latency-model drift check (default 3000; tiny: 40)")
    parser.add_argument("--skip-scale", action="store_true", help="leave out the latency-model benchmark")
    parser.add_argument("--skip-sqlite", action="store_true",
                        help="on PostgreSQL, leave out the same in-process figures measured on SQLite")
    parser.add_argument("--in-process-only", action="store_true",
                        help="only the figures measured in this process (no workers): the SQLite run uses it")
    parser.add_argument("--keep-databases", action="store_true", help="do not drop the benchmark databases")
    parser.add_argument("--results", type=Path, default=RESULTS_PATH)
    return parser.parse_args(argv)


def _guarded(results: list[Result], names: list[tuple[str, float, str]], measure: Callable[[], list[Result]],
             started: float) -> None:
    """Run one group of measurements; if it breaks, record the error on each of its metrics."""
    try:
        results.extend(measure())
    except Exception as exc:  # noqa: BLE001 - reported as the metric's error, the run goes on
        traceback.print_exc()
        _log(started, f"measuring {', '.join(n for n, _, _ in names)} failed: {exc!r}")
        for name, target, unit in names:
            results.append(Result(name, target=target, unit=unit, error=f"{type(exc).__name__}: {exc}"))


def _stop_on_sigterm(signum: int, frame: object) -> None:
    # Unwind normally, so the benchmark databases are dropped and the workers stopped.
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    signal.signal(signal.SIGTERM, _stop_on_sigterm)
    main_db, onboarding_db, scale_db = databases.bench_databases(
        base_url=os.environ.get("DATABASE_URL"), suffixes=("bench", "bench_onboarding", "bench_scale")
    )
    results: list[Result] = []
    run_info: dict[str, object] = {"database": main_db.vendor, "scale": args.scale}
    try:
        abandoned = databases.drop_abandoned(base_url=os.environ.get("DATABASE_URL"))
        if abandoned:
            _log(started, f"dropped databases left by killed runs: {', '.join(abandoned)}")
        databases.recreate(main_db)
        databases.configure_environment(main_db)
        _log(started, f"database: {main_db.vendor} {main_db.name}")

        import django

        django.setup()
        from django.core.management import call_command
        from django.db import connections

        from bench import metrics, seed

        call_command("migrate", verbosity=0, interactive=False)
        call_command("createcachetable", verbosity=0)
        _log(started, "migrated")

        scale = seed.FULL if args.scale == "full" else seed.TINY
        seeding = time.perf_counter()
        seeded = seed.seed(scale, progress=lambda message: _log(started, f"seeded {message}"))
        seed.analyze()
        run_info["seed_seconds"] = time.perf_counter() - seeding
        run_info["seeded"] = seeded.counts
        _log(started, f"seeded in {run_info['seed_seconds']:.1f}s: {seeded.counts}")

        verifying = time.perf_counter()
        call_command("audit_verify")
        run_info["audit_verify_seconds"] = time.perf_counter() - verifying
        _log(started, f"audit_verify passed in {run_info['audit_verify_seconds']:.1f}s")

        _guarded(results, [("directory_queries", 10, "queries"), ("directory_vs_sql", 3, "x")],
                 lambda: metrics.directory(seeded, repeats=args.repeats), started)
        _log(started, "directory measured")
        from bench import browser

        _guarded(results, [("directory_load_3000_vs_10", 3, "x"), ("directory_filter_vs_frame", 1.1, "x")],
                 lambda: browser.directory_in_browser(seeded, repeats=args.repeats), started)
        _log(started, "directory measured in the browser")
        _guarded(results, [("matrix_csv_vs_sql", 3, "x"), ("matrix_csv_peak_mb", 200, "MB")],
                 lambda: metrics.matrix_export(seeded, repeats=args.export_repeats), started)
        _log(started, "access-matrix export measured")
        from bench import billing

        _guarded(results, [("billing_csv_vs_sql", 3, "x")],
                 lambda: billing.billing_export(repeats=args.export_repeats), started)
        _log(started, "billing export measured")
        from bench.effective_access import effective_access

        _guarded(results, [("effective_access_vs_read", 2, "x")], lambda: effective_access(repeats=5), started)
        _log(started, "effective access measured")
        connections.close_all()

        if args.in_process_only:
            return _finish(results, run_info, args, started, main_db.vendor)
        if main_db.vendor == "postgresql" and not args.skip_sqlite:
            results.extend(_on_sqlite(args, started))
            _log(started, "the same in-process figures measured on SQLite")
        if args.skip_onboarding:
            results.append(Result("onboarding_vs_direct", target=1.5, unit="x", missing="left out (--skip-onboarding)"))
        else:
            databases.recreate(onboarding_db)
            results.append(_onboarding(onboarding_db, args, started))
            _log(started, "onboarding measured")
        if args.skip_scale:
            for name, target, unit in SCALE_METRICS:
                results.append(Result(name, target=target, unit=unit, missing="left out (--skip-scale)"))
        else:
            databases.recreate(scale_db)
            results.extend(_scale(scale_db, args, started))
            _log(started, "latency-model onboarding and drift check measured")
    except Exception:
        traceback.print_exc()
        _log(started, "the benchmark harness broke")
        return 1
    finally:
        if not args.keep_databases:
            try:
                from django.db import connections

                connections.close_all()
            except Exception:  # noqa: BLE001, S110 - Django may not be set up yet
                pass
            for database in (main_db, onboarding_db, scale_db):
                databases.drop(database)

    return _finish(results, run_info, args, started, main_db.vendor)


def _finish(results: list[Result], run_info: dict[str, object], args: argparse.Namespace, started: float,
            vendor: str) -> int:
    total = time.perf_counter() - started
    if not args.in_process_only:
        results.append(Result("bench_run_seconds", target=RUN_TARGET_SECONDS, unit="s", value=total,
                              details={**run_info, "summary": f"whole run, {vendor}"}))
    write_results(results, args.results)
    print()
    print(table(results))
    print()
    missed = [r.name for r in results if r.status == "MISSED"]
    broken = [r.name for r in results if r.status in {"MISSING", "ERROR"}]
    if missed:
        print(f"MISSED targets: {', '.join(missed)}")
    if broken:
        print(f"NOT MEASURED: {', '.join(broken)}")
    print(f"Total run time: {total / 60:.1f} min ({total:.0f} s). Results in {args.results}.")
    return 1 if broken else 0


def _on_sqlite(args: argparse.Namespace, started: float) -> list[Result]:
    """The in-process figures (directory, browser, exports, effective access) once more, on SQLite
    (the quick start's database), by a run of its own with nothing but SQLite configured; each is
    reported as ``<metric>@sqlite``. The workers' figures need PostgreSQL and Redis, and are not."""
    _log(started, "the in-process figures on SQLite (a run of its own)")
    env = {key: value for key, value in os.environ.items() if key != "DATABASE_URL"}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "sqlite.json"
        command = [sys.executable, "-m", "bench.run", "--in-process-only", "--scale", args.scale,
                   "--repeats", str(args.repeats), "--export-repeats", str(args.export_repeats),
                   "--results", str(out)]
        returncode = subprocess.call(command, cwd=databases.ROOT, env=env)  # noqa: S603
        if not out.exists():
            return [Result("sqlite_run", target=0, unit="",
                           error=f"the SQLite run exited {returncode} without results")]
        return read_results(out, suffix="@sqlite")


def _onboarding(database: databases.BenchDatabase, args: argparse.Namespace, started: float) -> Result:
    """The worker benchmark runs in its own process, with Django configured for its own small database."""
    result = Result("onboarding_vs_direct", target=1.5, unit="x")
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "onboarding.json"
        command = [sys.executable, "-m", "bench.onboarding", "--database-url", database.url,
                   "--accounts", str(args.onboarding_accounts), "--repeats", str(args.onboarding_repeats),
                   "--out", str(out)]
        _log(started, f"onboarding: {args.onboarding_accounts} accounts x {args.onboarding_repeats} runs "
                      "(2 Celery workers, moto server)")
        child = subprocess.Popen(command, cwd=databases.ROOT)  # noqa: S603
        try:
            returncode = child.wait()
        except BaseException:
            # Stopped ourselves: let the child stop its workers and moto server before we go on.
            child.terminate()
            child.wait(timeout=60)
            raise
        if not out.exists():
            result.error = f"the onboarding benchmark exited {returncode} without a result"
            return result
        data = json.loads(out.read_text())
    result.value = data.pop("value", None)
    result.missing = data.pop("missing", "")
    result.error = data.pop("error", "")
    result.checks = data.pop("checks", {})
    result.details = data
    return result


SCALE_METRICS = [
    ("onboarding_vs_quota_floor", 1.2, "x"),
    ("onboarding_vs_sequential", 0.3, "x"),
    ("drift_check_vs_floor", 1.3, "x"),
    ("requests_refused_for_slots", 0, "requests"),
]


def _scale(database: databases.BenchDatabase, args: argparse.Namespace, started: float) -> list[Result]:
    """The latency-model benchmark (bench.scale) in its own process and database."""
    tiny = args.scale == "tiny"
    accounts = args.scale_accounts or (6 if tiny else 30)
    drift_accounts = args.drift_accounts or (40 if tiny else 3000)
    results = {name: Result(name, target=target, unit=unit) for name, target, unit in SCALE_METRICS}
    with tempfile.TemporaryDirectory() as scratch:
        out = Path(scratch) / "scale.json"
        command = [sys.executable, "-m", "bench.scale", "--database-url", database.url, "--accounts", str(accounts),
                   "--drift-accounts", str(drift_accounts), "--out", str(out)]
        _log(started, f"scale: {accounts} accounts onboarded and {drift_accounts} checked under the AWS latency "
                      "model (4 Celery workers, moto server behind bench.latency)")
        child = subprocess.Popen(command, cwd=databases.ROOT)  # noqa: S603
        try:
            returncode = child.wait()
        except BaseException:
            child.terminate()
            child.wait(timeout=60)
            raise
        data = json.loads(out.read_text()) if out.exists() else {"error": f"bench.scale exited {returncode}"}
    if "error" in data:
        for result in results.values():
            result.error = data["error"]
        return list(results.values())
    for name, key in (("onboarding_vs_quota_floor", "onboarding"), ("onboarding_vs_sequential", "sequential"),
                      ("drift_check_vs_floor", "drift"), ("requests_refused_for_slots", "refused")):
        part = dict(data[key])
        results[name].value = part.pop("value")
        results[name].details = {**part, "database": data.get("database")}
    results["onboarding_vs_quota_floor"].details["aws_calls"] = data.get("aws_calls", {}).get("calls", {})
    return list(results.values())


if __name__ == "__main__":
    sys.exit(main())
