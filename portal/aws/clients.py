"""The one place that builds boto3 clients.

Every AWS call in Switchyard goes through a client made here, so tests can point the whole
portal at moto (in-process or server) or hand in a botocore ``Stubber``-wrapped client.
Credentials come from the standard chain in production; nothing secret is stored in the database.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol, cast

import botocore.loaders
import botocore.session
from botocore.config import Config

if TYPE_CHECKING:  # the stubs are a dev dependency: nothing here needs them at run time
    from mypy_boto3_ce import CostExplorerClient
    from mypy_boto3_cloudformation import CloudFormationClient
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_organizations import OrganizationsClient
    from mypy_boto3_sts import STSClient

# botocore's "standard" mode retries throttling and transient errors with jittered backoff;
# our own task-level retries handle what outlasts it (e.g. IAM not ready in a new account).
BOTO_CONFIG = Config(
    retries={"max_attempts": 5, "mode": "standard"},
    connect_timeout=5,
    read_timeout=20,
)


@dataclass(frozen=True)
class TemporaryCredentials:
    access_key_id: str
    secret_access_key: str
    session_token: str


# A client for calls that must never be repeated behind our back (CreateAccount has no
# idempotency token: a botocore retry after a timeout could create a second account).
# botocore's ``total_max_attempts`` counts the first request; ``max_attempts`` would count retries.
NO_RETRY_CONFIG = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=5, read_timeout=30)


class ClientFactory(Protocol):
    def client(
        self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True
    ) -> Any: ...


# Typed accessors: the factory hands out plain botocore clients (``client`` returns ``Any``, so
# wrappers such as ``MainAccountLimitedClients`` and test fakes keep fitting the protocol); these
# give each service's client its boto3-stubs type, so mypy checks every call's parameters and answer.
def iam_client(
    clients: ClientFactory, credentials: TemporaryCredentials | None = None, *, retries: bool = True
) -> IAMClient:
    return cast("IAMClient", clients.client("iam", credentials, retries=retries))


def organizations_client(
    clients: ClientFactory, credentials: TemporaryCredentials | None = None, *, retries: bool = True
) -> OrganizationsClient:
    return cast("OrganizationsClient", clients.client("organizations", credentials, retries=retries))


def sts_client(
    clients: ClientFactory, credentials: TemporaryCredentials | None = None, *, retries: bool = True
) -> STSClient:
    return cast("STSClient", clients.client("sts", credentials, retries=retries))


def ce_client(
    clients: ClientFactory, credentials: TemporaryCredentials | None = None, *, retries: bool = True
) -> CostExplorerClient:
    return cast("CostExplorerClient", clients.client("ce", credentials, retries=retries))


def cloudformation_client(
    clients: ClientFactory, credentials: TemporaryCredentials | None = None, *, retries: bool = True
) -> CloudFormationClient:
    return cast("CloudFormationClient", clients.client("cloudformation", credentials, retries=retries))


# Member-account clients kept per factory: one task reaches a handful of accounts at most.
MEMBER_CLIENTS_KEPT = 16

ClientKey = tuple[str, TemporaryCredentials | None, bool]


@dataclass
class Boto3ClientFactory:
    """Builds clients for the main account (standard credential chain) or, given temporary
    credentials from ``sts:AssumeRole``, for a member account.

    Each client is built once per factory and handed out again for the same service, credentials
    and retry policy (building one costs ~30 ms of CPU): main-account clients are all kept (a few
    services), member-account ones in a small least-recently-used set. Safe to share between
    threads. Use one factory for what one task or one request does, and a new one for the next:
    a factory never outlives the credentials (or the moto backend) its clients were made for.
    """

    endpoint_url: str | None = None
    region_name: str = "us-east-1"
    config: Config = field(default_factory=lambda: BOTO_CONFIG)
    _main_clients: dict[ClientKey, Any] = field(default_factory=dict, init=False, repr=False, compare=False)
    _member_clients: OrderedDict[ClientKey, Any] = field(
        default_factory=OrderedDict, init=False, repr=False, compare=False
    )
    _session: botocore.session.Session | None = field(default=None, init=False, repr=False, compare=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False, compare=False)

    def client(
        self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True
    ) -> Any:
        key: ClientKey = (service, credentials, retries)
        with self._lock:
            if credentials is None:
                client = self._main_clients.get(key)
                if client is None:
                    client = self._main_clients[key] = self._build(service, credentials, retries=retries)
                return client
            client = self._member_clients.get(key)
            if client is None:
                client = self._member_clients[key] = self._build(service, credentials, retries=retries)
                while len(self._member_clients) > MEMBER_CLIENTS_KEPT:
                    self._member_clients.popitem(last=False)
            else:
                self._member_clients.move_to_end(key)
            return client

    def _build(self, service: str, credentials: TemporaryCredentials | None, *, retries: bool) -> Any:
        kwargs: dict[str, Any] = {
            "region_name": self.region_name,
            "config": self.config if retries else self.config.merge(NO_RETRY_CONFIG),
        }
        if self.endpoint_url:
            kwargs["endpoint_url"] = self.endpoint_url
        if credentials is not None:
            kwargs.update(
                aws_access_key_id=credentials.access_key_id,
                aws_secret_access_key=credentials.secret_access_key,
                aws_session_token=credentials.session_token,
            )
        # One botocore session per factory (made on first use, used under the lock: sessions are
        # not thread-safe), so its credential resolution and event handlers are set up once.
        if self._session is None:
            self._session = _fresh_session()
        return self._session.create_client(service, **kwargs)


# Parsing botocore's service models (the IAM one is large) costs ~0.15 s per new session: share the
# parsed models (read-only data) between sessions, and keep a session, with its own credential
# resolution, per factory. (A boto3 Session would append its data directory to the shared loader's
# search path each time, so the botocore session makes the client.)
_SERVICE_MODELS = botocore.loaders.create_loader()


def _fresh_session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("data_loader", _SERVICE_MODELS)
    return session


# A health check must answer within seconds: one try, short timeouts.
QUICK_CHECK_CONFIG = Config(retries={"max_attempts": 1}, connect_timeout=2, read_timeout=3)


def client_acting_as(account_id: str, service: str, *, endpoint_url: str | None, region_name: str = "us-east-1") -> Any:
    """A client that moto (the sandbox's simulated AWS, at ``endpoint_url``) takes for account
    ``account_id``: the sandbox plays a client's administrator in their own account with it.
    Never for real AWS (moto's ``x-moto-account-id`` header; dummy credentials)."""
    client = _fresh_session().create_client(
        service, region_name=region_name, endpoint_url=endpoint_url,
        aws_access_key_id="sandbox-client", aws_secret_access_key="sandbox-client",  # noqa: S106 - moto's
    )

    def as_account(request: Any, **_: Any) -> None:
        request.headers["x-moto-account-id"] = account_id

    client.meta.events.register("before-sign.*.*", as_account)
    return client


def default_client_factory() -> ClientFactory:
    """A new factory as the running portal uses it, configured from settings (``AWS_ENDPOINT_URL``).

    A new one on every call, on purpose: call it once per task or request and pass it along, so
    everything that task does shares its clients and nothing is shared with the next one."""
    from django.conf import settings

    return Boto3ClientFactory(endpoint_url=settings.AWS_ENDPOINT_URL or None, region_name=settings.AWS_REGION)
