"""STS: temporary credentials in a member account, through its access role.

The one rule for a refused ``sts:AssumeRole`` lives here: retryable "not ready yet" while the account
may be new (IAM of a just-created account, an invited account whose client has not deployed the
access role yet), not retryable once Switchyard has reached the account before (someone removed or
changed the role: a person has to act).
"""

from __future__ import annotations

from botocore.exceptions import ClientError

from portal.aws.clients import ClientFactory, TemporaryCredentials, sts_client
from portal.aws.errors import AwsError, error_code, raw_message, translating
from portal.aws.limits import DEFAULT_ACCESS_ROLE_NAME, ROLE_NAME_RE, require_account_id
from portal.aws.messages import access_role_not_ready, access_role_refused


def access_role_denied(
    *, account_id: str, role_name: str, raw: str, account_may_be_new: bool
) -> AwsError:
    """The AwsError for AssumeRole refused (code ``AccessDenied``): retryable only while the
    account may be new."""
    if account_may_be_new:
        return AwsError("AccessDenied", raw, access_role_not_ready(account_id=account_id, role_name=role_name), True)
    return AwsError("AccessDenied", raw, access_role_refused(account_id=account_id, role_name=role_name), False)


@translating()
def assume_access_role(
    *,
    clients: ClientFactory,
    account_id: str,
    role_name: str = DEFAULT_ACCESS_ROLE_NAME,
    session_name: str,
    duration_seconds: int = 3600,
    account_may_be_new: bool = True,
) -> TemporaryCredentials:
    """Temporary credentials for ``role_name`` in ``account_id``, from the main account.

    A refusal raises AwsError ``AccessDenied`` (see :func:`access_role_denied`). With
    ``account_may_be_new`` (onboarding) it is *retryable*: right after CreateAccount succeeds, the
    new account's IAM is not ready and AssumeRole fails for minutes; for an invited account it also
    means the client has not created the role yet; the caller retries with backoff and gives up
    after its own deadline. Without it (roll-out, drift, hand-back: accounts Switchyard reached
    before) it is not retryable and says the role must be restored.
    """
    require_account_id(account_id)
    if not ROLE_NAME_RE.match(role_name):
        raise ValueError(f"{role_name!r} is not a valid IAM role name.")
    sts = sts_client(clients)
    role_arn = f"arn:aws:iam::{account_id}:role/{role_name}"
    try:
        response = sts.assume_role(
            RoleArn=role_arn, RoleSessionName=session_name, DurationSeconds=duration_seconds
        )
    except ClientError as exc:
        if error_code(exc) == "AccessDenied":
            raise access_role_denied(
                account_id=account_id, role_name=role_name, raw=raw_message(exc), account_may_be_new=account_may_be_new
            ) from exc
        raise
    credentials = response["Credentials"]
    return TemporaryCredentials(
        access_key_id=credentials["AccessKeyId"],
        secret_access_key=credentials["SecretAccessKey"],
        session_token=credentials["SessionToken"],
    )


@translating()
def caller_account_id(*, clients: ClientFactory) -> str:
    """The account the main-account credentials belong to (``sts:GetCallerIdentity``)."""
    return str(sts_client(clients).get_caller_identity().get("Account") or "")
