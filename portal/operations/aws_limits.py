"""AWS rate limits Switchyard can hit, bounded across every worker with :func:`portal.operations.capacity.rate_take`.

IAM throttles mutating calls per account (``Throttling``); every worker's enforcement writes go to
the one main account, so their sum must stay under it however many workers run. A
:class:`MainAccountLimitedClients` factory makes each main-account IAM write (Create*, Put*,
Attach*, Detach*, Delete*, Add*, Remove*, Update*, Tag*, Untag*, Set*) wait for one of
``SWITCHYARD_MAIN_IAM_WRITES_PER_SECOND`` call slots first. Throttling that still happens is backed
off by botocore's standard retries as before.
"""

from __future__ import annotations

from typing import Any

from django.conf import settings

from portal.aws import ClientFactory, TemporaryCredentials
from portal.operations.capacity import rate_take

MAIN_IAM_WRITES = "iam.main_account.writes"
WRITE_PREFIXES = ("Create", "Put", "Attach", "Detach", "Delete", "Add", "Remove", "Update", "Tag", "Untag", "Set")


class MainAccountLimitedClients:
    """A client factory whose main-account IAM clients wait for a write slot before each write."""

    def __init__(self, inner: ClientFactory, *, writes_per_second: int | None = None) -> None:
        self.inner = inner
        self.writes_per_second = (settings.SWITCHYARD_MAIN_IAM_WRITES_PER_SECOND if writes_per_second is None
                                  else writes_per_second)

    def client(self, service: str, credentials: TemporaryCredentials | None = None, *, retries: bool = True) -> Any:
        client = self.inner.client(service, credentials, retries=retries)
        if service == "iam" and credentials is None and self.writes_per_second > 0:
            client.meta.events.register("before-call.iam.*", self._before_call,
                                        unique_id="switchyard-main-iam-write-limit")
        return client

    def _before_call(self, model: Any, **_: Any) -> None:
        if model.name.startswith(WRITE_PREFIXES):
            rate_take(pool=MAIN_IAM_WRITES, per_second=self.writes_per_second)


def main_account_limited(clients: ClientFactory) -> MainAccountLimitedClients:
    return MainAccountLimitedClients(clients)
