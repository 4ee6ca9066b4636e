"""An AWS latency model in front of the moto server, for the benchmark and the real-process tests.

moto answers every call in about a millisecond and reports every ``CreateAccount`` as SUCCEEDED at
once, so anything measured against it measures moto's CPU, not what Switchyard waits for in AWS.
:class:`LatencyProxy` is a small threaded HTTP proxy: each AWS API call waits for the model's
latency for its service and action, then goes to moto; and a new account stays ``IN_PROGRESS``
(its ``DescribeCreateAccountStatus`` and ``ListCreateAccountStatus`` answers are rewritten) for
``creation_seconds × creation_scale`` after its ``CreateAccount`` before moto's SUCCEEDED is let through.

The figures are a model, not a measurement of AWS from this machine (there is no AWS here): round
trips of the order AWS's global IAM and Organizations endpoints in us-east-1 take from a client in
the same region (100–300 ms for IAM writes, which AWS documents as eventually consistent and slower
than reads), and about a minute for an account to be created (the issue's figure; AWS's API
reference only says creation is asynchronous and that the account may not be usable for a few
minutes), scaled down by ``creation_scale`` for the benchmark and tests (0.1: 6 s for 60 s). Override
any figure with ``LatencyModel(latency=..., creation_seconds=...)``; the README's benchmark section
lists them.

It also counts what AWS would have seen: how many creations were IN_PROGRESS at once at most
(``GET /__latency__/stats``), so a test can check the Organization-wide limit from AWS's side.

At an MSP's scale the proxy also keeps one of moto's own costs out of the figures: moto finds the
account of a call signed with temporary credentials by scanning every account it holds
(``moto.iam.models.get_account_id_from``: each account's IAM backend, in each partition), about
25 ms of CPU per call at 3,000 accounts (measured in-process), in a server that runs one call at a
time and growing with the estate; AWS has no such cost. The proxy reads the account of each
temporary key from the ``AssumeRole`` answers it forwards and names it on that key's later calls
with moto's own ``x-moto-account-id`` header: what moto's scan would have found, without the scan
(and the main account's, when told which key is the main account's).
"""

from __future__ import annotations

import http.client
import json
import re
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

# Seconds per call, by (service, action); (service, "*") is the service's default.
DEFAULT_LATENCY: dict[tuple[str, str], float] = {
    ("organizations", "*"): 0.20,
    ("organizations", "CreateAccount"): 0.40,
    ("sts", "*"): 0.10,
    ("sts", "AssumeRole"): 0.15,
    ("iam", "*"): 0.10,  # reads: GetRole, ListRoles, ListRoleTags, ...
    ("iam", "CreateRole"): 0.25,
    ("iam", "AttachRolePolicy"): 0.20,
    ("iam", "PutRolePolicy"): 0.20,
    ("iam", "TagRole"): 0.20,
    ("iam", "UpdateAssumeRolePolicy"): 0.20,
    ("iam", "DeleteRole"): 0.20,
    ("iam", "PutGroupPolicy"): 0.20,
    ("iam", "PutUserPolicy"): 0.20,
}
DEFAULT_CREATION_SECONDS = 60.0  # AWS, unscaled
STATS_PATH = "/__latency__/stats"
CREDENTIAL_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/[^/]+/([^/]+)/aws4_request")
ACCESS_KEY = re.compile(r"Credential=([^/]+)/")
# In STS's AssumeRole answer (XML): the temporary key and the account of the role it is for.
ASSUMED_KEY = re.compile(rb"<AccessKeyId>([^<]+)</AccessKeyId>")
ASSUMED_ACCOUNT = re.compile(rb"<Arn>arn:[^:]+:sts::(\d{12}):assumed-role/")
MOTO_ACCOUNT_HEADER = "x-moto-account-id"


@dataclass
class LatencyModel:
    latency: dict[tuple[str, str], float] = field(default_factory=lambda: dict(DEFAULT_LATENCY))
    creation_seconds: float = DEFAULT_CREATION_SECONDS
    # Only the creation time is scaled down (0.1: AWS's minute takes 6 s); each call keeps its round
    # trip, which is what makes onboarding latency-bound rather than CPU-bound.
    creation_scale: float = 1.0

    def delay(self, service: str, action: str) -> float:
        return self.latency.get((service, action), self.latency.get((service, "*"), 0.0))

    @property
    def scaled_creation_seconds(self) -> float:
        return self.creation_seconds * self.creation_scale


@dataclass
class Stats:
    calls: dict[str, int] = field(default_factory=dict)
    delayed_seconds: float = 0.0
    creations: dict[str, float] = field(default_factory=dict)  # request id -> monotonic time of CreateAccount
    max_in_progress: int = 0
    accounts_named: int = 0  # calls sent with the account of their temporary key

    def in_progress(self, now: float, creation_seconds: float) -> int:
        return sum(1 for started in self.creations.values() if now - started < creation_seconds)

    def as_json(self, now: float, creation_seconds: float) -> dict[str, Any]:
        return {"calls": dict(self.calls), "delayed_seconds": round(self.delayed_seconds, 3),
                "creations": len(self.creations), "max_in_progress": self.max_in_progress,
                "in_progress": self.in_progress(now, creation_seconds),
                "accounts_named": self.accounts_named}


def service_and_action(headers: Mapping[str, str], body: bytes, query: str) -> tuple[str, str]:
    """Which AWS API a SigV4-signed request calls: the service from the credential scope, the
    action from ``X-Amz-Target`` (JSON protocols) or ``Action=`` (query protocols)."""
    scope = CREDENTIAL_SCOPE.search(headers.get("Authorization", ""))
    service = scope.group(1) if scope else ""
    target = headers.get("X-Amz-Target", "")
    if target:
        return service, target.rsplit(".", 1)[-1]
    form = parse_qs(body.decode("utf-8", "replace")) if body else {}
    action = (form.get("Action") or parse_qs(query).get("Action") or [""])[0]
    return service, action


class LatencyProxy:
    """``with LatencyProxy(upstream, model) as endpoint:`` an AWS endpoint URL that behaves like
    ``upstream`` (a moto server) with the model's latency."""

    def __init__(self, upstream: str, model: LatencyModel | None = None, *, port: int = 0,
                 accounts_of_keys: Mapping[str, str] | None = None) -> None:
        """``accounts_of_keys``: access keys whose account is known beforehand (the main account's
        credentials, when moto holds no IAM user with that key: its scan would find none and answer
        its default account)."""
        self.upstream = urlsplit(upstream)
        self.model = model or LatencyModel()
        self.stats = Stats()
        self._lock = threading.Lock()
        # access key -> its account (see the module doc)
        self._account_of_key: dict[str, str] = dict(accounts_of_keys or {})
        self._server = ThreadingHTTPServer(("127.0.0.1", port), self._handler())
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def __enter__(self) -> str:
        self._thread = threading.Thread(target=self._server.serve_forever, name="latency-proxy", daemon=True)
        self._thread.start()
        return self.endpoint

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- what AWS would answer ---------------------------------------------------------------------

    def _record_creation(self, payload: dict[str, Any]) -> None:
        request_id = (payload.get("CreateAccountStatus") or {}).get("Id")
        if not request_id:
            return
        now = time.monotonic()
        with self._lock:
            self.stats.creations[request_id] = now
            self.stats.max_in_progress = max(
                self.stats.max_in_progress, self.stats.in_progress(now, self.model.scaled_creation_seconds)
            )

    def _still_creating(self, status: dict[str, Any]) -> dict[str, Any]:
        started = self.stats.creations.get(status.get("Id", ""))
        if started is None or time.monotonic() - started >= self.model.scaled_creation_seconds:
            return status
        pending = {k: v for k, v in status.items() if k not in ("AccountId", "CompletedTimestamp", "FailureReason")}
        pending["State"] = "IN_PROGRESS"
        return pending

    def rewrite(self, action: str, request_body: bytes, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "CreateAccount":
            self._record_creation(payload)
            if "CreateAccountStatus" in payload:
                payload["CreateAccountStatus"] = self._still_creating(payload["CreateAccountStatus"])
        elif action == "DescribeCreateAccountStatus" and "CreateAccountStatus" in payload:
            payload["CreateAccountStatus"] = self._still_creating(payload["CreateAccountStatus"])
        elif action == "ListCreateAccountStatus" and "CreateAccountStatuses" in payload:
            statuses = [self._still_creating(s) for s in payload["CreateAccountStatuses"]]
            wanted = (json.loads(request_body or b"{}").get("States") or None)
            payload["CreateAccountStatuses"] = [s for s in statuses if wanted is None or s.get("State") in wanted]
        return payload

    def learn_assumed_key(self, answer: bytes) -> None:
        """Remember the account of the temporary key an ``AssumeRole`` answer hands out."""
        key, account = ASSUMED_KEY.search(answer), ASSUMED_ACCOUNT.search(answer)
        if key and account:
            self._account_of_key[key.group(1).decode()] = account.group(1).decode()

    def account_of(self, authorization: str) -> str | None:
        """The account moto would find for the key that signed a request (None: let moto look)."""
        key = ACCESS_KEY.search(authorization)
        return self._account_of_key.get(key.group(1)) if key else None

    # -- the HTTP side -----------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - quiet
                return

            def _serve(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                parts = urlsplit(self.path)
                if parts.path == STATS_PATH:
                    with proxy._lock:
                        data = proxy.stats.as_json(time.monotonic(), proxy.model.scaled_creation_seconds)
                    self._answer(200, {"Content-Type": "application/json"}, json.dumps(data).encode())
                    return
                service, action = service_and_action(dict(self.headers.items()), body, parts.query)
                delay = proxy.model.delay(service, action)
                with proxy._lock:
                    key = f"{service}:{action}"
                    proxy.stats.calls[key] = proxy.stats.calls.get(key, 0) + 1
                    proxy.stats.delayed_seconds += delay
                if delay > 0:
                    time.sleep(delay)
                if service == "organizations" and action == "ListCreateAccountStatus":
                    # moto filters by State itself (all SUCCEEDED): ask for all, filter after rewriting.
                    sent = json.loads(body or b"{}")
                    sent.pop("States", None)
                    upstream_body = json.dumps(sent).encode()
                else:
                    upstream_body = body
                status, headers, answer = self._forward(upstream_body)
                if service == "sts" and action == "AssumeRole" and status == 200:
                    proxy.learn_assumed_key(answer)
                if service == "organizations" and action in (
                    "CreateAccount", "DescribeCreateAccountStatus", "ListCreateAccountStatus"
                ) and status == 200:
                    answer = json.dumps(proxy.rewrite(action, body, json.loads(answer))).encode()
                self._answer(status, headers, answer)

            def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
                # A new connection per call: moto's (werkzeug's) server closes each one after its answer.
                conn = http.client.HTTPConnection(proxy.upstream.hostname or "127.0.0.1", proxy.upstream.port,
                                                  timeout=120)
                try:
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("content-length", "host")}
                    headers["Host"] = proxy.upstream.netloc
                    headers["Content-Length"] = str(len(body))
                    account = proxy.account_of(self.headers.get("Authorization", ""))
                    if account is not None:
                        headers[MOTO_ACCOUNT_HEADER] = account
                        with proxy._lock:
                            proxy.stats.accounts_named += 1
                    conn.request(self.command, self.path, body=body, headers=headers)
                    response = conn.getresponse()
                    data = response.read()
                    kept = {k: v for k, v in response.getheaders()
                            if k.lower() not in ("content-length", "transfer-encoding", "connection")}
                    return response.status, kept, data
                finally:
                    conn.close()

            def _answer(self, status: int, headers: Mapping[str, str], body: bytes) -> None:
                self.send_response(status)
                for key, value in headers.items():
                    self.send_header(key, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _serve  # noqa: N815

        return Handler


def stats(endpoint: str) -> dict[str, Any]:
    """The proxy's counts (``max_in_progress``, ``calls``, ...), asked over HTTP."""
    url = urlsplit(endpoint)
    conn = http.client.HTTPConnection(url.hostname or "127.0.0.1", url.port, timeout=10)
    try:
        conn.request("GET", STATS_PATH)
        return dict(json.loads(conn.getresponse().read()))
    finally:
        conn.close()


@contextmanager
def latency_in_front_of(upstream: str, model: LatencyModel | None = None) -> Iterator[LatencyProxy]:
    proxy = LatencyProxy(upstream, model)
    with proxy:
        yield proxy
