"""The client factory: CreateAccount-style calls get exactly one attempt, everything else retries.

A tiny local HTTP server answers every request with 503 and counts them, so botocore's real retry
handler runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.config import Config
from botocore.exceptions import ClientError

from portal.aws import Boto3ClientFactory


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
