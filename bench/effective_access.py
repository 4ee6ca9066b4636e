"""``effective_access_vs_read``: the whole effective-access check (read the main account once,
decide every (principal, role) pair, compare with the grants, store the findings) at bench scale,
divided by the time to read the same IAM data (``read_authorization_details`` alone). A first
check opens the findings (its time is reported, apart); then the median of ``repeats`` runs of
each, which find them again, as the hourly check does.

The main account is moto in-process, filled as Switchyard's enforcement leaves it (one IAM user
per person, one IAM group per team with its members and its compiled policies), plus a hand-made
AdministratorAccess user and an inline ``sts:AssumeRole`` on ``*``, so the findings are real."""

from __future__ import annotations

import gc
import json
import os
import time
from typing import Any

from bench.report import Result

TARGET = 2.0


def effective_access(*, repeats: int = 1) -> list[Result]:
    from moto import mock_aws

    from portal.aws import Boto3ClientFactory, read_authorization_details
    from portal.people.models import User
    from switchroles import access_checks, enforcement
    from switchroles.models import AccountRole

    for name, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                        "AWS_DEFAULT_REGION": "us-east-1"}.items():
        os.environ.setdefault(name, value)
    saved_endpoint = os.environ.pop("AWS_ENDPOINT_URL", None)
    result = Result("effective_access_vs_read", target=TARGET, unit="x")
    try:
        with mock_aws(config={"iam": {"load_aws_managed_policies": True}}):
            clients = Boto3ClientFactory(region_name="us-east-1")
            iam = clients.client("iam")
            names = list(User.objects.exclude(iam_username="").values_list("iam_username", flat=True))
            for name in names:
                iam.create_user(UserName=name)
            filling = time.perf_counter()
            with enforcement.enforcement_lock():
                report = enforcement.enforcement_sync(clients=clients, reason="bench")
            fill_seconds = time.perf_counter() - filling
            iam.create_user(UserName="bench-stray-admin")
            admin = "arn:aws:iam::aws:policy/AdministratorAccess"
            iam.attach_user_policy(UserName="bench-stray-admin", PolicyArn=admin)
            iam.create_user(UserName="bench-stray-inline")
            iam.put_user_policy(UserName="bench-stray-inline", PolicyName="assume-anything", PolicyDocument=json.dumps(
                {"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "sts:AssumeRole",
                                                         "Resource": "*"}]}))
            started = time.perf_counter()
            access_checks.effective_access_check(clients=clients)
            first_check_seconds = time.perf_counter() - started
            reads: list[float] = []
            checks: list[float] = []
            check: Any = None
            for _ in range(max(repeats, 1)):
                # Each timed from a collected heap, as paired_median_seconds does: neither pays a full
                # collection the other's garbage made due.
                gc.collect()
                started = time.perf_counter()
                read = read_authorization_details(clients=clients)
                reads.append(time.perf_counter() - started)
                read_calls = read.api_calls
                iam_users, iam_groups = len(read.details["UserDetailList"]), len(read.details["GroupDetailList"])
                del read
                gc.collect()
                started = time.perf_counter()
                check = access_checks.effective_access_check(clients=clients)
                checks.append(time.perf_counter() - started)
            read_seconds, check_seconds = sorted(reads)[len(reads) // 2], sorted(checks)[len(checks) // 2]
            result.value = round(check_seconds / read_seconds, 2) if read_seconds else None
            result.details = {
                "summary": (f"check {check_seconds:.2f}s / read {read_seconds:.2f}s; {check.api_calls} AWS calls "
                            f"for {check.principals_checked} principals x {check.roles_checked} roles"),
                "check_seconds": round(check_seconds, 3), "read_seconds": round(read_seconds, 3),
                "first_check_seconds": round(first_check_seconds, 3),
                "check_runs_seconds": [round(seconds, 3) for seconds in checks],
                "read_runs_seconds": [round(seconds, 3) for seconds in reads],
                "aws_calls": check.api_calls, "read_aws_calls": read_calls,
                "iam_users": iam_users, "iam_groups": iam_groups,
                "roles": check.roles_checked, "account_roles": AccountRole.objects.filter(state="active").count(),
                "reachable_pairs": check.reachable_pairs, "error": check.error,
                "enforcement_fill_seconds": round(fill_seconds, 1), "enforcement_failed": len(report.failed),
            }
            result.checks = {"one authorization-details walk (+ attached AWS managed policies)": check.api_calls <= 5,
                             "check finished": not check.error}
    finally:
        if saved_endpoint is not None:
            os.environ["AWS_ENDPOINT_URL"] = saved_endpoint
    return [result]
