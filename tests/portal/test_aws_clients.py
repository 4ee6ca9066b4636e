"""The client factory: CreateAccount-style calls get exactly one attempt, everything else retries;
each client is built once per factory (and per credentials), and factories share nothing.

A tiny local HTTP server answers every request with 503 and counts them, so botocore's real retry
handler runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from portal.aws import MEMBER_CLIENTS_KEPT, Boto3ClientFactory, TemporaryCredentials, default_client_factory
from portal.aws import clients as portal_aws


class _Unavailable(BaseHTTPRequestHandler):
    requests = 0

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        type(self).requests += 1
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = b'{"__type": "ServiceException", "message": "try later"}'
        self.send_response(503)
        self.send_header("Content-Type", "application/x-amz-json-1.1")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def unavailable_endpoint() -> Iterator[str]:
    _Unavailable.requests = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Unavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()


def _factory(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> Boto3ClientFactory:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    # Same retry policy as production, without its waits between attempts mattering here.
    return Boto3ClientFactory(endpoint_url=endpoint, config=Config(retries={"max_attempts": 4, "mode": "standard"}))


def test_a_no_retry_client_makes_exactly_one_attempt(unavailable_endpoint: str,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    client = _factory(unavailable_endpoint, monkeypatch).client("organizations", retries=False)

    with pytest.raises(ClientError):
        client.list_roots()

    assert _Unavailable.requests == 1


def test_ordinary_clients_retry_transient_errors(unavailable_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    client = _factory(unavailable_endpoint, monkeypatch).client("organizations")

    with pytest.raises(ClientError):
        client.list_roots()

    assert _Unavailable.requests == 5  # the first request and four retries


# --------------------------------------------------------------------------------------------------
# One client per service, credentials and retry policy, for the life of one factory
# --------------------------------------------------------------------------------------------------

MEMBER = TemporaryCredentials("ASIAMEMBER", "secret", "token")
OTHER_MEMBER = TemporaryCredentials("ASIAOTHER", "secret", "token")


def test_a_factory_builds_each_client_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # given one factory, as one task or request uses it
    factory = _factory("http://127.0.0.1:9", monkeypatch)

    # when the same clients are asked for again
    first = [factory.client("sts"), factory.client("iam", MEMBER), factory.client("organizations", retries=False)]
    again = [factory.client("sts"), factory.client("iam", MEMBER), factory.client("organizations", retries=False)]

    # then each is the client built the first time
    assert all(a is b for a, b in zip(first, again, strict=True))


def test_clients_differ_by_service_credentials_and_retry_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    # given one factory
    factory = _factory("http://127.0.0.1:9", monkeypatch)

    # when clients are asked for with a different service, account or retry policy
    clients = [
        factory.client("organizations"), factory.client("organizations", retries=False), factory.client("iam"),
        factory.client("iam", MEMBER), factory.client("iam", OTHER_MEMBER),
    ]

    # then each is a client of its own, signing with its own credentials
    assert len({id(client) for client in clients}) == 5
    assert factory.client("iam", MEMBER)._request_signer._credentials.access_key == "ASIAMEMBER"
    assert factory.client("iam", OTHER_MEMBER)._request_signer._credentials.access_key == "ASIAOTHER"
    assert factory.client("organizations", retries=False).meta.config.retries["total_max_attempts"] == 1


def test_a_factory_sets_up_one_botocore_session_for_all_its_clients(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a factory, and a count of the botocore sessions set up (each registers ~100 handlers)
    factory = _factory("http://127.0.0.1:9", monkeypatch)
    sessions: list[Any] = []
    real_session = portal_aws._fresh_session

    def counted_session() -> Any:
        sessions.append(real_session())
        return sessions[-1]

    monkeypatch.setattr(portal_aws, "_fresh_session", counted_session)

    # when it builds clients for several services and accounts
    factory.client("organizations")
    factory.client("organizations", retries=False)
    factory.client("sts")
    factory.client("iam", MEMBER)

    # then one session made them all
    assert len(sessions) == 1


def test_only_a_few_member_account_clients_are_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a factory that reached more member accounts than it keeps clients for
    factory = _factory("http://127.0.0.1:9", monkeypatch)
    first = factory.client("iam", MEMBER)
    for index in range(MEMBER_CLIENTS_KEPT):
        factory.client("iam", TemporaryCredentials(f"ASIA{index:04d}", "secret", "token"))

    # when the first account is reached again
    again = factory.client("iam", MEMBER)

    # then its client was let go and is built anew, while main-account clients are all kept
    assert again is not first
    assert len(factory._member_clients) == MEMBER_CLIENTS_KEPT


def test_two_factories_share_no_client(monkeypatch: pytest.MonkeyPatch, settings: Any) -> None:
    # given the portal's factory, asked for twice (two tasks, or two requests)
    settings.AWS_ENDPOINT_URL = "http://127.0.0.1:9"
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    one, other = default_client_factory(), default_client_factory()

    # when each hands out a client
    # then they are two factories with clients of their own: nothing outlives a task
    assert one is not other
    assert one.client("sts") is not other.client("sts")


def test_threads_sharing_a_factory_get_one_client(monkeypatch: pytest.MonkeyPatch) -> None:
    # given a factory whose clients take a while to build, and eight threads asking at the same moment
    factory = _factory("http://127.0.0.1:9", monkeypatch)
    built: list[str] = []
    real_build = Boto3ClientFactory._build

    def slow_build(self: Boto3ClientFactory, service: str, *args: Any, **kwargs: Any) -> Any:
        built.append(service)
        time.sleep(0.05)
        return real_build(self, service, *args, **kwargs)

    monkeypatch.setattr(Boto3ClientFactory, "_build", slow_build)
    start = threading.Barrier(8)
    got: list[Any] = []

    def ask() -> None:
        start.wait(timeout=10)
        got.append(factory.client("sts"))

    # when they all ask for the same client
    threads = [threading.Thread(target=ask) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then it was built once and all of them got it
    assert built == ["sts"]
    assert len(got) == 8 and all(client is got[0] for client in got)
