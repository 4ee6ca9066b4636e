"""The sandbox's AWS: a moto server on 127.0.0.1:5000 whose member-account ids are derived from
the account's root e-mail instead of drawn at random.

moto keeps its state in memory only. With stable ids, ``manage.py sandbox_up`` can rebuild the
simulated Organization from the portal's database after a restart (same e-mail → same account id),
so a second ``make run`` keeps working with the data it kept.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

from portal import sandbox_moto
from portal.sandbox_moto import root_access
from portal.sandbox_moto.accounts import account_id_for_email

_creating = threading.local()


def install_stable_account_ids() -> Callable[[], None]:
    """Patch moto (in this process) and return the function that undoes it."""
    from moto.organizations import models, utils

    random_account_id = utils.make_random_account_id
    original_init = models.FakeAccount.__init__

    def init(self: Any, organization: Any, **kwargs: Any) -> None:
        _creating.email = kwargs.get("Email", "")
        try:
            original_init(self, organization, **kwargs)
        finally:
            _creating.email = ""

    def account_id() -> str:
        email = getattr(_creating, "email", "")
        return account_id_for_email(email) if email else random_account_id()

    models.FakeAccount.__init__ = init  # type: ignore[method-assign]
    utils.make_random_account_id = account_id

    def undo() -> None:
        models.FakeAccount.__init__ = original_init  # type: ignore[method-assign]
        utils.make_random_account_id = random_account_id

    return undo


def install_not_implemented_answers() -> Callable[[], None]:
    """An action moto does not implement answers HTTP 501 ``NotImplemented`` in the service's own
    error format instead of Flask's HTML 500 page, so Switchyard sees a final answer (retrying
    cannot change it) instead of an unexplained server error. Returns the function that undoes it."""
    from xml.sax.saxutils import escape

    from moto.core.responses import BaseResponse

    original = BaseResponse.call_action

    def call_action(self: Any) -> Any:
        try:
            return original(self)
        except NotImplementedError as exc:
            message = str(exc)
            target = {k.lower(): v for k, v in dict(self.headers or {}).items()}.get("x-amz-target")
            if target:  # the JSON protocols (Organizations, ...)
                body = json.dumps({"__type": "NotImplemented", "message": message})
                headers = {"content-type": "application/x-amz-json-1.1", "x-amzn-ErrorType": "NotImplemented"}
            else:  # the query protocols (IAM, STS, ...)
                body = ("<ErrorResponse><Error><Type>Sender</Type><Code>NotImplemented</Code>"
                        f"<Message>{escape(message)}</Message></Error><RequestId>sandbox</RequestId></ErrorResponse>")
                headers = {"content-type": "text/xml", "x-amzn-ErrorType": "NotImplemented"}
            return 501, headers, body

    BaseResponse.call_action = call_action  # type: ignore[method-assign]

    def undo() -> None:
        BaseResponse.call_action = original  # type: ignore[method-assign]

    return undo


def main() -> None:
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    install_stable_account_ids()
    install_not_implemented_answers()
    sandbox_moto.install()
    # Invited accounts start with a root password, created ones with none (the demo's invited
    # account, onboarding.sandbox.DEMO_INVITED_ACCOUNT_ID, shows one until a manager removes it).
    root_access.install()
    from moto.server import main as moto_main

    port = os.environ.get("SWITCHYARD_SANDBOX_AWS_PORT", "5000")
    moto_main(["-H", "127.0.0.1", "-p", port, *sys.argv[1:]])


if __name__ == "__main__":
    main()
