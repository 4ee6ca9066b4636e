"""People: the custom user, with the IAM user name of the main account and a session epoch."""

from __future__ import annotations

import re

from django.contrib.auth.models import AbstractUser
from django.core.validators import RegexValidator
from django.db import models
from django.utils.crypto import salted_hmac

from portal.aws.limits import IAM_NAME_MESSAGE, IAM_NAME_PATTERN

#: IAM's rule for the names of users, groups and roles: 1–64 ASCII letters and digits and
#: ``+ = , . @ _ -``. ASCII matters: Python's ``\w`` also accepts "é", which AWS refuses, and the
#: refusal would only surface later, in the enforcement sync of the person's whole team.
#: Built from the one pattern in :mod:`portal.aws.limits`.
IAM_NAME_VALIDATOR = RegexValidator(IAM_NAME_PATTERN, IAM_NAME_MESSAGE, flags=re.ASCII)


class User(AbstractUser):
    """A person at the managed-services provider.

    ``iam_username`` is the person's IAM user in the main account: the name AWS puts in
    ``${aws:username}``, so their switch-role sessions carry it and main-account policies can be
    written for it.
    """

    iam_username = models.CharField(
        "IAM user name in the main account",
        max_length=64,
        blank=True,
        validators=[IAM_NAME_VALIDATOR],
        help_text="The person's IAM user in the main account; their switch-role sessions are named after it.",
    )

    session_epoch = models.PositiveIntegerField(
        default=0, editable=False, help_text="Bumped to end every other session of this person."
    )

    class Meta:
        ordering = ["username"]

    def get_session_auth_hash(self) -> str:
        # Django invalidates sessions whose stored hash no longer matches; mixing in the epoch
        # lets us end a person's other sessions (e.g. when an authenticator is removed).
        return salted_hmac(
            "switchyard.session", f"{self.password}:{self.session_epoch}", algorithm="sha256"
        ).hexdigest()

    def __str__(self) -> str:
        return self.get_full_name() or self.username

    def has_capability(self, group_name: str) -> bool:
        return self.is_superuser or any(g.name == group_name for g in self.groups.all())

    @property
    def is_manager(self) -> bool:
        return self.has_capability("Manager")

    @property
    def is_engineer(self) -> bool:
        return self.has_capability("Engineer")

    @property
    def is_auditor(self) -> bool:
        return self.has_capability("Auditor")

    @property
    def is_finance(self) -> bool:
        return self.has_capability("Finance")


