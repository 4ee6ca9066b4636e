"""The one place that builds boto3 clients.

Every AWS call in Switchyard goes through a client made here, so tests can point the whole
portal at moto (in-process or server) or hand in a botocore ``Stubber``-wrapped client.
Credentials come from the standard chain in production; nothing secret is stored in the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import botocore.loaders
import botocore.session
from botocore.config import Config

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


@dataclass
class Boto3ClientFactory:
    """Builds clients for the main account (standard credential chain) or, given temporary
    credentials from ``sts:AssumeRole``, for a member account."""

    endpoint_url: str | None = None
    region_name: str = "us-east-1"
    config: Config = field(default_factory=lambda: BOTO_CONFIG)

    def client(
        self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True
    ) -> Any:
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
        return _fresh_session().create_client(service, **kwargs)


# Parsing botocore's service models (the IAM one is large) costs ~0.15 s per new session, and a
# workflow step makes a few clients: share the parsed models (read-only data) and keep a new
# session, with its own credential resolution, per client. (A boto3 Session would append its data
# directory to the shared loader's search path each time, so the botocore session makes the client.)
_SERVICE_MODELS = botocore.loaders.create_loader()


def _fresh_session() -> botocore.session.Session:
    session = botocore.session.get_session()
    session.register_component("data_loader", _SERVICE_MODELS)
    return session


def default_client_factory() -> ClientFactory:
    """The factory the running portal uses, configured from settings (``AWS_ENDPOINT_URL``)."""
    from django.conf import settings

    return Boto3ClientFactory(endpoint_url=settings.AWS_ENDPOINT_URL or None, region_name=settings.AWS_REGION)
