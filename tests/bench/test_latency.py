"""The AWS latency model in front of a moto server: delays per service and action, and creations
that stay IN_PROGRESS for the model's creation time."""

from __future__ import annotations

import time
from collections.abc import Iterator

import boto3
import pytest
from moto.server import ThreadedMotoServer

from bench.latency import LatencyModel, LatencyProxy, stats
from tests.e2e.processes import free_port


@pytest.fixture
def moto_endpoint(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def _organizations(endpoint: str) -> object:
    return boto3.client("organizations", endpoint_url=endpoint, region_name="us-east-1")


def test_a_new_account_stays_in_progress_for_the_creation_time_then_succeeds(moto_endpoint: str) -> None:
    # given the model with 1.5 s creations and no other latency
    model = LatencyModel(latency={}, creation_seconds=1.5)
    with LatencyProxy(moto_endpoint, model) as endpoint:
        org = _organizations(endpoint)
        org.create_organization(FeatureSet="ALL")  # type: ignore[attr-defined]

        # when an account is created and its status asked at once
        created = org.create_account(Email="a@example.com", AccountName="a")  # type: ignore[attr-defined]
        request_id = created["CreateAccountStatus"]["Id"]
        first = org.describe_create_account_status(CreateAccountRequestId=request_id)  # type: ignore[attr-defined]
        listed = org.list_create_account_status(States=["IN_PROGRESS"])  # type: ignore[attr-defined]
        time.sleep(1.6)
        later = org.describe_create_account_status(CreateAccountRequestId=request_id)  # type: ignore[attr-defined]

        # then AWS says IN_PROGRESS (no account id yet), and SUCCEEDED with the id once the time passed
        assert created["CreateAccountStatus"]["State"] == "IN_PROGRESS"
        assert first["CreateAccountStatus"]["State"] == "IN_PROGRESS"
        assert "AccountId" not in first["CreateAccountStatus"]
        assert [s["Id"] for s in listed["CreateAccountStatuses"]] == [request_id]
        assert later["CreateAccountStatus"]["State"] == "SUCCEEDED"
        assert later["CreateAccountStatus"]["AccountId"]
        assert stats(endpoint)["max_in_progress"] == 1


def test_each_call_waits_for_its_service_and_actions_latency(moto_endpoint: str) -> None:
    # given IAM reads at 0.3 s and STS at 0 s
    model = LatencyModel(latency={("iam", "*"): 0.3, ("sts", "*"): 0.0}, creation_seconds=0)
    with LatencyProxy(moto_endpoint, model) as endpoint:
        iam = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1")
        sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
        sts.get_caller_identity()
        iam.list_roles()  # warm both connections

        # when one IAM and one STS call are timed
        started = time.perf_counter()
        iam.list_roles()
        iam_seconds = time.perf_counter() - started
        started = time.perf_counter()
        sts.get_caller_identity()
        sts_seconds = time.perf_counter() - started

        # then the IAM call took its latency and the STS one did not, and both were counted
        assert iam_seconds >= 0.3
        assert sts_seconds < 0.3
        calls = stats(endpoint)["calls"]
        assert calls["iam:ListRoles"] == 2
        assert calls["sts:GetCallerIdentity"] == 2


def test_the_scale_shrinks_the_creation_time_but_not_the_round_trips() -> None:
    # given AWS's minute for a creation, scaled by 0.1
    model = LatencyModel(creation_scale=0.1)

    # then a creation takes 6 s, and CreateRole and GetRole keep their own latency
    assert model.scaled_creation_seconds == pytest.approx(6.0)
    assert model.delay("iam", "CreateRole") == pytest.approx(0.25)
    assert model.delay("iam", "GetRole") == pytest.approx(0.10)


def test_the_role_part_of_the_floor_is_each_counted_call_at_the_models_latency() -> None:
    from bench.scale import _calls_latency

    # given one account's calls as the proxy counted them
    calls = {"sts:AssumeRole": 1, "iam:CreateRole": 3, "iam:PutRolePolicy": 3, "iam:GetRole": 3}

    # then the floor's role part is their latencies added up
    assert _calls_latency(calls, LatencyModel()) == pytest.approx(0.15 + 3 * 0.25 + 3 * 0.20 + 3 * 0.10)


def test_a_temporary_keys_calls_name_its_account(moto_endpoint: str) -> None:
    # given the proxy with no latency, told that the main account's key is moto's default account,
    # and credentials assumed into a member account through it
    with LatencyProxy(moto_endpoint, LatencyModel(latency={}, creation_seconds=0),
                      accounts_of_keys={"testing": "123456789012"}) as endpoint:
        sts = boto3.client("sts", endpoint_url=endpoint, region_name="us-east-1")
        assumed = sts.assume_role(RoleArn="arn:aws:iam::210987654321:role/OrganizationAccountAccessRole",
                                  RoleSessionName="bench")["Credentials"]
        member = boto3.client("iam", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=assumed["AccessKeyId"],
                              aws_secret_access_key=assumed["SecretAccessKey"],
                              aws_session_token=assumed["SessionToken"])

        # when the member account's IAM is written and read with them
        member.create_role(RoleName="Probe", AssumeRolePolicyDocument="{}")
        for _ in range(3):
            member.get_role(RoleName="Probe")
        counted = stats(endpoint)

    # then the AssumeRole named the main account and each later call the member account, and moto
    # put the role there, not in the main account
    in_member = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1",
                             aws_access_key_id=assumed["AccessKeyId"],
                             aws_secret_access_key=assumed["SecretAccessKey"],
                             aws_session_token=assumed["SessionToken"])
    main = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    assert in_member.get_role(RoleName="Probe")["Role"]["Arn"] == "arn:aws:iam::210987654321:role/Probe"
    assert "Probe" not in [role["RoleName"] for role in main.list_roles()["Roles"]]
    assert counted["accounts_named"] == 1 + 4
