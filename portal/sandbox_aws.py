"""The sandbox's AWS: a moto server on 127.0.0.1:5000 whose member-account ids are derived from
the account's root e-mail instead of drawn at random.

moto keeps its state in memory only. With stable ids, ``manage.py sandbox_up`` can rebuild the
simulated Organization from the portal's database after a restart (same e-mail → same account id),
so a second ``make run`` keeps working with the data it kept.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
from collections.abc import Callable
from typing import Any

_creating = threading.local()


def account_id_for_email(email: str) -> str:
    digest = int(hashlib.sha256(email.strip().lower().encode()).hexdigest(), 16)
    return f"{digest % 10**12:012d}"


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


# The demo account whose root user starts with a password, as a client's own account would (an
# account that joined by invitation starts so anyway): ``awsaccounts+globex-production@example.com``.
DEMO_ROOT_PASSWORD_ACCOUNT = "globex-production"  # noqa: S105 (an account name, not a password)


def demo_root_password_email() -> str:
    local, _, domain = os.environ.get("SWITCHYARD_ACCOUNT_MAILBOX", "awsaccounts@example.com").partition("@")
    return f"{local}+{DEMO_ROOT_PASSWORD_ACCOUNT}@{domain}"


def main() -> None:
    os.environ.setdefault("MOTO_IAM_LOAD_MANAGED_POLICIES", "true")
    install_stable_account_ids()
    from portal.sandbox_moto import install, root_access

    install()
    root_access.install(emails_with_root_password=[demo_root_password_email()])
    from moto.server import main as moto_main

    port = os.environ.get("SWITCHYARD_SANDBOX_AWS_PORT", "5000")
    moto_main(["-H", "127.0.0.1", "-p", port, *sys.argv[1:]])


if __name__ == "__main__":
    main()
