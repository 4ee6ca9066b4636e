"""Onboarding and the drift check at AWS's speed and an MSP's scale, under the AWS latency model
(:mod:`bench.latency` in front of a moto server).

Run by ``bench.run`` in its own process (``python -m bench.scale --database-url ...``), with four
Celery workers (4 pool processes each) on Redis sharing its database. It reports:

- ``onboarding_vs_quota_floor``: ``accounts`` new accounts x 3 roles requested at once (six threads)
  through the real service (``onboarding_request``), carried out by the workers, timed from the first request
  until every account is ACTIVE; divided by the floor AWS's own limits impose: ⌈accounts / 5⌉ x the
  model's creation time, plus one account's role calls at the model's latency (its AssumeRole,
  CreateRole + PutRolePolicy per role and the read-back, as counted by the proxy for one account of
  the sequential script).
- ``onboarding_vs_sequential``: the same workflow time divided by the same AWS calls made by one
  sequential script through the same seam functions (``portal.aws``) and the same latency model:
  CreateAccount, DescribeCreateAccountStatus polled every second, AssumeRole, ``ensure_role`` and
  ``read_role`` per role, one account after the other; run for ``SEQUENTIAL_ACCOUNTS`` (10) of
  them and scaled to ``accounts``, since each account's part is the same on its own.
- ``requests_refused_for_slots``: requests refused because creations were in flight (the queue
  accepts them all: 0).
- ``drift_check_vs_floor``: a full drift check (the ``drift_check`` task: main account, then the
  accounts fanned out) over ``drift_accounts`` active accounts whose roles exist as the portal
  says, timed from sending the task until the run finished; divided by one account's check (median
  of five, measured alone through the same proxy) x the accounts ÷ ``SWITCHYARD_DRIFT_CONCURRENCY``.

The latency model's creation time is scaled down (``creation_scale`` 0.1: 6 s for AWS's minute) and
so is the creation poll (every second, not 10 s doubling to 60 s); every call's round trip is not.
The bench templates carry inline policies only, so moto needs no AWS managed policies (loading them
for each new account is moto's CPU, not AWS's latency).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import statistics
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bench import databases
from bench.latency import LatencyModel, LatencyProxy, stats

LOG_DIR = databases.BENCH_VAR / "logs"
WORKERS = 4
# Pool processes per worker: the work is latency-bound (each process mostly waits on AWS), and a
# worker holds a countdown (a poll) until one of its own processes is free.
WORKER_CONCURRENCY = 4
DRIFT_CONCURRENCY = 8
CREATION_SCALE = 0.1
TIMEOUT = 1800.0
POLL = 0.1
CAPACITY = 5
# Requests are sent at once by this many threads (several managers after a sales push, or the API).
SUBMITTERS = 6
# The sequential script does each account on its own (created, polled, given its roles; nothing is
# shared or cached between accounts), so its time grows with the accounts one for one: it runs
# for this many of them and is scaled to the workflow's count (a third of the wait, 200 s less).
SEQUENTIAL_ACCOUNTS = 10
WORKER_ENV = {
    "SWITCHYARD_CREATION_POLL_SECONDS": "1",
    "SWITCHYARD_CREATION_POLL_MAX_SECONDS": "1",
    "SWITCHYARD_DRIFT_CONCURRENCY": str(DRIFT_CONCURRENCY),
    "SWITCHYARD_ORG_ACCOUNT_QUOTA": "100000",
    "LOG_LEVEL": "WARNING",
}
INLINE_POLICY = {"Version": "2012-10-17",
                 "Statement": [{"Effect": "Allow", "Action": ["s3:ListAllMyBuckets"], "Resource": "*"}]}


def _bench_templates() -> list[Any]:
    from switchroles.models import RoleTemplate

    # Colours of the console's palette, as the seeded templates use them.
    colors = list(RoleTemplate.objects.order_by("pk").values_list("console_color", flat=True)[:3])
    templates = []
    for index, color in enumerate(colors):
        template, _ = RoleTemplate.objects.get_or_create(
            role_name=f"BenchScale{index}",
            defaults={"name": f"Bench scale {index}", "tier": RoleTemplate.Tier.CUSTOM, "managed_policy_arns": [],
                      "custom_policy": INLINE_POLICY, "require_mfa": True, "max_session_seconds": 3600,
                      "console_color": color},
        )
        templates.append(template)
    return templates


def _specs(slug: str, templates: list[Any]) -> list[Any]:
    """The RoleSpecs the workflow would send for a client ``slug`` (unsaved rows, no database)."""
    from onboarding.models import AwsAccount, Client
    from onboarding.services import role_path_for
    from switchroles.models import AccountRole
    from switchroles.provisioning import role_spec_for

    account = AwsAccount(client=Client(name=f"Bench {slug}", slug=slug), name=f"{slug} production")
    return [role_spec_for(AccountRole(account=account, template=t, role_path=role_path_for(slug),
                                      role_name=t.role_name)) for t in templates]


# --------------------------------------------------------------------------------------------------
# Onboarding
# --------------------------------------------------------------------------------------------------


def workflow(*, label: str, count: int, manager: Any, templates: list[Any], endpoint: str, pool: Any) -> dict[str, Any]:
    """``count`` requests sent at once (by :data:`SUBMITTERS` threads, as several managers or an API
    client would) through the real service, then carried out by the workers."""
    from django.core.exceptions import ValidationError
    from django.db import connection

    from bench.onboarding import _check_all_active, _waiting_for_a_slot
    from onboarding.models import AwsAccount
    from onboarding.services import onboarding_request
    from portal.aws import Boto3ClientFactory

    final = set(AwsAccount.FINAL_STATES) | {AwsAccount.State.FAILED}
    refused: list[str] = []
    started = time.perf_counter()

    def submit(index: int) -> int:
        slug = f"{label}-{index:02d}"
        clients = Boto3ClientFactory(endpoint_url=endpoint, region_name="us-east-1")
        try:
            while True:
                try:
                    return onboarding_request(
                        actor=manager, origin=AwsAccount.Origin.CREATED, account_name=f"{slug} production",
                        templates=templates, reason="make bench (scale)", client_name=f"Bench {slug}",
                        client_slug=slug, root_email=f"awsaccounts+{slug}@example.com", clients=clients,
                    ).pk
                except ValidationError as error:
                    # A refusal because creations are in flight is what the metric counts; it should not happen.
                    if not _waiting_for_a_slot(error) or time.perf_counter() - started > TIMEOUT:
                        raise RuntimeError(f"onboarding_request refused {slug}: {error}") from error
                    refused.append(slug)
                    time.sleep(POLL)
        finally:
            connection.close()

    with ThreadPoolExecutor(max_workers=SUBMITTERS) as submitters:
        requested = list(submitters.map(submit, range(count)))
    all_requested = time.perf_counter() - started
    deadline = time.monotonic() + TIMEOUT
    while True:
        states = dict(AwsAccount.objects.filter(pk__in=requested).values_list("pk", "state"))
        if all(state in final for state in states.values()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"accounts still not done after {TIMEOUT:.0f}s: {states}")
        _check_running(pool)
        time.sleep(POLL)
    seconds = time.perf_counter() - started
    _check_all_active(requested, len(templates))
    return {"seconds": seconds, "all_requested_after_s": all_requested, "refused": len(refused)}


def sequential(*, label: str, count: int, templates: list[Any], clients: Any, endpoint: str) -> dict[str, Any]:
    """The same AWS calls through the same seam functions, one account after the other."""
    from portal import aws

    started = time.perf_counter()
    role_calls: dict[str, int] = {}
    for index in range(count):
        slug = f"{label}-{index:02d}"
        request = aws.start_account_creation(clients=clients, email=f"awsaccounts+{slug}@example.com",
                                             account_name=f"{slug} production",
                                             tags={aws.MANAGED_BY_TAG_KEY: aws.MANAGED_BY_TAG_VALUE})
        while not request.is_finished:
            time.sleep(1)  # the workers' poll in this bench
            request = aws.describe_account_creation(clients=clients, request_id=request.request_id)
        if request.state != aws.CREATION_SUCCEEDED:
            raise RuntimeError(f"the creation failed: {request}")
        before = stats(endpoint)["calls"] if index == 0 else {}
        credentials = aws.assume_access_role(clients=clients, account_id=request.account_id or "",
                                             session_name="bench-sequential")
        specs = _specs(slug, templates)
        for spec in specs:
            aws.ensure_role(clients=clients, credentials=credentials, spec=spec, likely_new=True)
        for spec in specs:
            if aws.read_role(clients=clients, credentials=credentials, path=spec.path, name=spec.name) is None:
                raise RuntimeError(f"role {spec.name} not read back")
        if index == 0:
            after = stats(endpoint)["calls"]
            role_calls = {key: after[key] - before.get(key, 0) for key in after if after[key] != before.get(key, 0)}
    return {"seconds": time.perf_counter() - started, "one_account_role_calls": role_calls}


def _calls_latency(calls: dict[str, int], model: LatencyModel) -> float:
    total = 0.0
    for key, n in calls.items():
        service, _, action = key.partition(":")
        total += n * model.delay(service, action)
    return total


def _check_running(pool: Any) -> None:
    for proc in pool.processes:
        if proc.poll() is not None:
            raise RuntimeError(f"a Celery worker (pid {proc.pid}) exited with {proc.returncode}; logs in {LOG_DIR}")


# --------------------------------------------------------------------------------------------------
# Drift
# --------------------------------------------------------------------------------------------------


SEEDERS = 4


class _MotoAsEachAccount:
    """A client factory for the seeding: one client per thread and service, which moto takes for
    the account that thread is seeding (moto's ``x-moto-account-id`` header, as
    ``portal.aws.client_acting_as`` does): no AssumeRole, no latency model, no client per account."""

    def __init__(self, endpoint: str) -> None:
        self.endpoint = endpoint
        self._local = threading.local()

    def seeding(self, account_id: str) -> None:
        self._local.account_id = account_id

    def client(self, service: str, credentials: Any = None, *, retries: bool = True) -> Any:
        clients: dict[str, Any] = self._local.__dict__.setdefault("clients", {})
        if service not in clients:
            from portal.aws import client_acting_as

            clients[service] = client = client_acting_as("", service, endpoint_url=self.endpoint)
            local = self._local

            def as_account(request: Any, **_: Any) -> None:
                request.headers["x-moto-account-id"] = local.account_id

            client.meta.events.register("before-sign.*.*", as_account)  # after client_acting_as's own
        return clients[service]


def seed_drift_estate(*, count: int, template: Any, moto: str) -> None:
    """``count`` ACTIVE accounts, each with one active role that exists in moto exactly as the portal
    says (written straight to moto as each account, ``SEEDERS`` at a time: the seeding is not measured)."""
    from django.utils import timezone

    from onboarding.models import AwsAccount, Client
    from portal import aws
    from switchroles.models import AccountRole
    from switchroles.provisioning import role_spec_for

    client = Client.objects.create(name="Bench drift estate", slug="drift-estate")
    accounts = AwsAccount.objects.bulk_create(
        AwsAccount(client=client, name=f"estate {i:04d}", origin=AwsAccount.Origin.CREATED,
                   account_id=f"{500000000000 + i}", root_email=f"awsaccounts+estate{i}@example.com",
                   state=AwsAccount.State.ACTIVE, reason="make bench (drift)")
        for i in range(count)
    )
    now = timezone.now()
    roles = AccountRole.objects.bulk_create(
        AccountRole(account=account, template=template, role_path="/switchyard/drift-estate/",
                    role_name=template.role_name, display_name=f"Estate {i}", color=template.console_color,
                    state=AccountRole.State.ACTIVE, activated_at=now)
        for i, account in enumerate(accounts)
    )
    specs = [(role.account.account_id or "", role_spec_for(role)) for role in AccountRole.objects.filter(
        pk__in=[r.pk for r in roles]).select_related("template", "account", "account__client")]

    as_each = _MotoAsEachAccount(moto)

    def create(account_id: str, spec: Any) -> None:
        as_each.seeding(account_id)
        aws.ensure_role(clients=as_each, credentials=None, spec=spec, likely_new=True)

    with ThreadPoolExecutor(max_workers=SEEDERS) as seeders:
        for done in [seeders.submit(create, account_id, spec) for account_id, spec in specs]:
            done.result()


def one_account_check_seconds(*, clients: Any, samples: int = 5) -> float:
    """One account's look as a part of the fanned-out check makes it (``drift_run.drift_account_look``:
    its AssumeRole, the roles read back, one ListRoles for Switchyard's roles and the doors), alone."""
    from onboarding.models import AwsAccount
    from switchroles import drift_run

    times = []
    for account in AwsAccount.objects.filter(client__slug="drift-estate").select_related("client")[: samples + 1]:
        started = time.perf_counter()
        look = drift_run.drift_account_look(account=account, clients=clients)
        times.append(time.perf_counter() - started)
        if look.findings or look.doors:
            raise RuntimeError(f"the seeded account {account} drifted: {[f.differences for f in look.findings]}")
    return statistics.median(times[1:])  # the first one warms the connections


def drift_check(*, pool: Any) -> dict[str, Any]:
    from switchroles.models import DriftRun
    from switchroles.tasks import drift_check as drift_check_task

    before = set(DriftRun.objects.values_list("pk", flat=True))
    started = time.perf_counter()
    drift_check_task.delay()
    deadline = time.monotonic() + TIMEOUT
    while True:
        run = DriftRun.objects.exclude(pk__in=before).select_related("check_run").first()
        if run is not None and run.finished_at is not None:
            break
        if time.monotonic() > deadline:
            raise TimeoutError("the drift check did not finish")
        _check_running(pool)
        time.sleep(POLL)
    seconds = time.perf_counter() - started
    findings = run.check_run.role_findings.count()
    if findings:
        raise RuntimeError(f"the drift check found {findings} differences in an estate seeded without drift")
    return {"seconds": seconds, "accounts": run.accounts_total, "roles_checked": run.check_run.roles_checked}


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


def measure(*, accounts: int, drift_accounts: int) -> dict[str, Any]:
    from django.conf import settings
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection
    from moto.core import DEFAULT_ACCOUNT_ID

    from bench.onboarding import _wait_for_workers, broker
    from portal.aws import Boto3ClientFactory
    from portal.people.models import User
    from portal.people.permissions import MANAGER
    from tests.e2e.processes import WorkerPool, celery_app_using, moto_server

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    manager = User.objects.create_user(username="bench-scale-manager", email="bench-scale@example.com",
                                       iam_username="bench-scale-manager")
    manager.groups.add(Group.objects.get(name=MANAGER))
    templates = _bench_templates()
    settings.SWITCHYARD_ORG_ACCOUNT_QUOTA = 100000
    model = LatencyModel(creation_scale=CREATION_SCALE)
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    out: dict[str, Any] = {}
    # The workers (WorkerPool: "testing") and this process sign with the main account's dummy keys,
    # no IAM user's in moto: its scan for them would answer its default account, the main account.
    main_key = {key: DEFAULT_ACCOUNT_ID for key in ("testing", os.environ["AWS_ACCESS_KEY_ID"])}
    with moto_server(managed_policies=False) as moto, \
            LatencyProxy(moto, model, accounts_of_keys=main_key) as endpoint, \
            broker() as broker_url, celery_app_using(broker_url):
        clients = Boto3ClientFactory(endpoint_url=endpoint, region_name="us-east-1")
        pool = WorkerPool(broker_url=broker_url, aws_endpoint=endpoint, log_dir=LOG_DIR)
        try:
            logs = []
            for index in range(WORKERS):
                name = f"{os.getpid()}-scale{index}"
                logs.append(LOG_DIR / f"worker-{name}-{len(pool.processes)}.log")
                logs[-1].unlink(missing_ok=True)
                pool.start(concurrency=WORKER_CONCURRENCY, name=name, env=WORKER_ENV)
            _wait_for_workers(logs)
            # Warm-up, unmeasured: imports and connections in the workers and in moto.
            workflow(label="warm", count=2, manager=manager, templates=templates, endpoint=endpoint, pool=pool)
            print("  scale: warmed up", flush=True)
            flow = workflow(label="flow", count=accounts, manager=manager, templates=templates, endpoint=endpoint,
                            pool=pool)
            print(f"  scale: workflow {flow['seconds']:.1f}s for {accounts} accounts", flush=True)
            sampled = min(accounts, SEQUENTIAL_ACCOUNTS)
            seq = sequential(label="seq", count=sampled, templates=templates, clients=clients, endpoint=endpoint)
            seq["measured_s"], seq["seconds"] = seq["seconds"], seq["seconds"] * accounts / sampled
            print(f"  scale: sequential {seq['measured_s']:.1f}s for {sampled} accounts "
                  f"({seq['seconds']:.1f}s for {accounts})", flush=True)
            role_part = _calls_latency(seq["one_account_role_calls"], model)
            floor = math.ceil(accounts / CAPACITY) * model.scaled_creation_seconds + role_part
            out["onboarding"] = {
                "value": flow["seconds"] / floor, "workflow_s": flow["seconds"], "floor_s": floor,
                "floor_role_calls_s": role_part, "one_account_role_calls": seq["one_account_role_calls"],
                "creation_s": model.scaled_creation_seconds, "all_requested_after_s": flow["all_requested_after_s"],
                "accounts": accounts, "roles_per_account": len(templates), "workers": WORKERS,
                "processes_per_worker": WORKER_CONCURRENCY,
                "summary": f"workflow {flow['seconds']:.1f} s / floor {floor:.1f} s ({accounts} accounts x "
                           f"{len(templates)} roles, {model.scaled_creation_seconds:.0f} s creations)",
            }
            out["sequential"] = {
                "value": flow["seconds"] / seq["seconds"], "workflow_s": flow["seconds"],
                "sequential_s": seq["seconds"], "sequential_accounts_run": sampled,
                "sequential_measured_s": seq["measured_s"],
                "summary": f"workflow {flow['seconds']:.1f} s / sequential {seq['seconds']:.1f} s "
                           f"({seq['measured_s']:.1f} s for {sampled} accounts, x {accounts / sampled:g})",
            }
            out["refused"] = {"value": flow["refused"], "summary": f"{flow['refused']} of {accounts} refused"}
            seeding = time.perf_counter()
            seed_drift_estate(count=drift_accounts, template=templates[0], moto=moto)
            seeded_in = time.perf_counter() - seeding
            print(f"  scale: drift estate of {drift_accounts} seeded in {seeded_in:.0f}s", flush=True)
            one = one_account_check_seconds(clients=clients)
            checked = drift_check(pool=pool)
            drift_floor = one * checked["accounts"] / DRIFT_CONCURRENCY
            print(f"  scale: drift check {checked['seconds']:.1f}s over {checked['accounts']} accounts", flush=True)
            out["drift"] = {
                "value": checked["seconds"] / drift_floor, "drift_check_s": checked["seconds"],
                "floor_s": drift_floor, "one_account_s": one, "accounts": checked["accounts"],
                "seed_s": round(seeded_in, 1),
                "concurrency": DRIFT_CONCURRENCY,
                "summary": f"drift check {checked['seconds']:.1f} s / floor {drift_floor:.1f} s "
                           f"({checked['accounts']} accounts, {one:.2f} s each, concurrency {DRIFT_CONCURRENCY})",
            }
            out["aws_calls"] = stats(endpoint)
        finally:
            pool.stop_all()
    out["database"] = connection.vendor
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--accounts", type=int, default=30)
    parser.add_argument("--drift-accounts", type=int, default=3000)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    vendor = "sqlite" if args.database_url.startswith("sqlite") else "postgresql"
    databases.configure_environment(databases.BenchDatabase(url=args.database_url, vendor=vendor, name=""))
    os.environ["SWITCHYARD_ORG_ACCOUNT_QUOTA"] = "100000"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        import django

        django.setup()
        result: dict[str, Any] = measure(accounts=args.accounts, drift_accounts=args.drift_accounts)
    except Exception as exc:  # noqa: BLE001 - reported in the result
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    args.out.write_text(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
