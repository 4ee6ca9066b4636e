"""The one AWS error type and the one translation every public function of :mod:`portal.aws` applies.

:class:`AwsError` carries the raw code, AWS's own message, a plain-language message with what to do
next and whether retrying can help. :func:`translating` turns every botocore error (and moto's
``NotImplementedError``) raised inside a public function into one, looking its code up in the
service's own table (if given) and then in :data:`portal.aws.messages.GENERAL_ERRORS`. Nothing of
botocore escapes the package.

One rule for "access denied": it is *not* retryable (a person has to change a permission), except
when Switchyard assumes the access role of an account that may be new
(:func:`portal.aws.sts.assume_access_role` with ``account_may_be_new``), where IAM is not ready yet.
"""

from __future__ import annotations

import functools
import html
import re
from collections.abc import Callable
from typing import Final, ParamSpec, TypeVar

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    NoCredentialsError,
    ParamValidationError,
    ReadTimeoutError,
)

from portal.aws.messages import CONSTRAINT_REASONS, GENERAL_ERRORS, TRY_AGAIN, ErrorRule, ErrorTable

P = ParamSpec("P")
R = TypeVar("R")


class AwsError(Exception):
    """What AWS (or the network) refused, in the raw and in plain language.

    - ``code``: the raw AWS error code (``Throttling``, ``ConstraintViolationException``, …), a
      CreateAccount ``FailureReason``, a botocore error class name for network failures, or one of
      Switchyard's own (``RoleConflict``, ``RoleNotManaged``).
    - ``raw_message``: AWS's own text, kept for the record.
    - ``plain_message``: what happened and what to do next, fit to show a manager.
    - ``retryable``: True when the same call may succeed later without anyone changing anything
      (throttling, AWS-side failures, network, IAM not ready yet); retry those with backoff.
      False means a person has to act first: never retry those blindly.
    - ``reason``: the ``Reason`` field AWS adds to some errors (Organizations constraint
      violations), else None.

    Pickles and round-trips through Celery's JSON exception encoding (all state is in ``args``).
    """

    def __init__(
        self,
        code: str,
        raw_message: str,
        plain_message: str,
        retryable: bool,
        reason: str | None = None,
    ) -> None:
        super().__init__(code, raw_message, plain_message, retryable, reason)
        self.code = code
        self.raw_message = raw_message
        self.plain_message = plain_message
        self.retryable = retryable
        self.reason = reason

    def __str__(self) -> str:
        return f"{self.code}: {self.plain_message}"


_NETWORK_ERRORS: Final = (
    EndpointConnectionError,
    ConnectTimeoutError,
    ReadTimeoutError,
    ConnectionClosedError,
)


# An endpoint that does not implement an operation answers the same way however often it is asked:
# real AWS for an API it lacks in a region, the sandbox's moto for what it does not simulate.
NOT_IMPLEMENTED_CODES: Final = frozenset({"NotImplemented", "NotImplementedException", "InvalidAction",
                                          "UnknownOperationException", "UnknownOperation"})
NETWORK_ERROR_CODES: Final = frozenset(cls.__name__ for cls in _NETWORK_ERRORS)
_HTML_RE: Final = re.compile(r"<\s*(?:!doctype|html|head|body|title|h1|p|div)\b", re.IGNORECASE)
_TAG_RE: Final = re.compile(r"<[^>]*>")
_RAW_MESSAGE_MAX_CHARS: Final = 1000


def not_implemented_error(operation: str, raw_message: str) -> AwsError:
    """The AwsError for an operation the endpoint does not implement: never retryable."""
    return AwsError(
        "NotImplemented",
        _plain_text(raw_message),
        f"The AWS endpoint Switchyard talks to does not support {operation or 'this operation'}, so retrying "
        "will not help. In the sandbox its simulated AWS lacks it: report it to Switchyard's developers. "
        "Against real AWS, check the endpoint and region Switchyard is configured with (AWS_ENDPOINT_URL).",
        False,
    )


def _plain_text(raw: str) -> str:
    """AWS's message as text a person can read: an HTML error page (a proxy's or a local server's)
    becomes its words, without markup; anything is cut to a readable length."""
    text = raw
    if _HTML_RE.search(text):
        text = html.unescape(_TAG_RE.sub(" ", text))
        text = " ".join(text.split())
        text = f"(an HTML error page) {text}" if text else "(an HTML error page without text)"
    if len(text) > _RAW_MESSAGE_MAX_CHARS:
        text = text[: _RAW_MESSAGE_MAX_CHARS - 1] + "…"
    return text


def classify_botocore_error(exc: BotoCoreError) -> AwsError:
    """Turn a botocore error raised before or instead of an AWS answer into an :class:`AwsError`.

    Network failures (endpoint unreachable, connect/read timeout, connection closed) are
    retryable. Missing credentials and invalid parameters are not (they are configuration or
    programming mistakes).

    A read timeout means AWS may have received and carried out the request: callers of
    non-idempotent calls (CreateAccount) must reconcile before sending it again.
    """
    code = type(exc).__name__
    if isinstance(exc, _NETWORK_ERRORS):
        plain = f"Switchyard could not reach AWS (network problem or timeout). {TRY_AGAIN}"
        return AwsError(code, str(exc), plain, True)
    if isinstance(exc, NoCredentialsError):
        plain = "Switchyard has no AWS credentials. Configure the credentials it runs with."
        return AwsError(code, str(exc), plain, False)
    if isinstance(exc, ParamValidationError):
        plain = "Switchyard built a request AWS would not accept (a bug). Report it to the developers."
        return AwsError(code, str(exc), plain, False)
    return AwsError(
        code, str(exc), f"Switchyard's AWS client failed ({code}). Report it to the developers.", False
    )


def _lookup(table: ErrorTable, code: str) -> ErrorRule | None:
    return table.get(code) or table.get(code.removesuffix("Exception"))


def may_pass_by_itself(code: str) -> bool:
    """True when an error with this code may go away without anyone acting: a retryable code, or
    one Switchyard does not know (an empty code counts as unknown)."""
    known = _lookup(GENERAL_ERRORS, code) if code else None
    return known is None or known[0]


# AWS could not be reached at all (or Switchyard has no credentials): no principal, account or
# request will fare better until that changes, so a long run stops rather than try every one.
UNREACHABLE_CODES: Final = frozenset(
    {EndpointConnectionError.__name__, ConnectTimeoutError.__name__, NoCredentialsError.__name__}
)
_CLIENT_SIDE_CODES: Final = NETWORK_ERROR_CODES | {NoCredentialsError.__name__, ParamValidationError.__name__}


def is_unreachable(error: AwsError) -> bool:
    """True when AWS could not be reached at all (endpoint down, connect timeout, no credentials)."""
    return error.code in UNREACHABLE_CODES


def record_text(error: AwsError) -> str:
    """One line for a record: ``AWS refused: <code>: <AWS's message>`` for an answer from AWS, the
    client's own message when no answer came."""
    if error.code in _CLIENT_SIDE_CODES:
        return error.raw_message or error.code
    return f"AWS refused: {error.code}: {error.raw_message}".strip()


def error_code(exc: ClientError) -> str:
    """The raw code of a botocore ``ClientError`` (``""`` when AWS sent none)."""
    return str(exc.response.get("Error", {}).get("Code") or "")


def raw_message(exc: ClientError) -> str:
    """AWS's own message of a botocore ``ClientError``."""
    error = exc.response.get("Error", {})
    return str(error.get("Message") or error.get("message") or exc)


def is_unexplained_failure(error: AwsError) -> bool:
    """True for a retryable error Switchyard has no explanation for (an unknown code that AWS sent
    with HTTP 5xx or 429): worth a few retries, not an open-ended wait."""
    return error.retryable and _lookup(GENERAL_ERRORS, error.code) is None and error.code not in NETWORK_ERROR_CODES


def classify_client_error(exc: ClientError, *tables: ErrorTable, operation: str = "") -> AwsError:
    """Turn a botocore ``ClientError`` into an :class:`AwsError`.

    The raw code and message are kept as AWS sent them. The code is looked up in ``tables`` (the
    service's own meanings first), then in the general table: throttling, AWS-side failures and
    timeouts are retryable; quotas, concurrent modification, validation, permissions and "already
    exists / not found" are not. An unknown code is retryable only when AWS answered with HTTP 429
    or 5xx.
    """
    error = exc.response.get("Error", {})
    code = str(error.get("Code") or "Unknown")
    raw = _plain_text(raw_message(exc))
    reason_value = exc.response.get("Reason") or error.get("Reason")
    reason = str(reason_value) if reason_value else None
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
    if code in NOT_IMPLEMENTED_CODES or status == 501:
        return not_implemented_error(str(getattr(exc, "operation_name", "") or "") or operation, raw)

    for table in tables:
        rule = _lookup(table, code)
        if rule is not None:
            retryable, plain = rule
            return AwsError(code, raw, plain if isinstance(plain, str) else plain(raw, operation), retryable, reason)

    known = _lookup(GENERAL_ERRORS, code)
    if known is not None:
        retryable, plain = known
        text = plain if isinstance(plain, str) else plain(raw, operation)
    else:
        retryable = status == 429 or status >= 500
        label = f"HTTP {code}" if code.isdigit() else code
        text = (
            f"AWS answered with an unexpected error ({label}). {TRY_AGAIN} It stops after a few tries "
            "and asks a person to look."
            if retryable
            else f"AWS refused the request ({label}). Retrying will not change that: check the details below, "
            "fix what they describe, then try again."
        )
    if reason is not None:
        text = CONSTRAINT_REASONS.get(reason, f"{text} (reason: {reason})")
    return AwsError(code, raw, text, retryable, reason)


def translate(exc: BaseException, *tables: ErrorTable, operation: str = "") -> AwsError:
    """The :class:`AwsError` for an exception raised while talking to AWS: an AwsError as it is,
    a botocore error translated, moto's ``NotImplementedError`` as "not implemented". Anything
    else is a bug: it is raised again, untranslated."""
    if isinstance(exc, AwsError):
        return exc
    if isinstance(exc, ClientError):
        return classify_client_error(exc, *tables, operation=operation)
    if isinstance(exc, BotoCoreError):
        return classify_botocore_error(exc)
    if isinstance(exc, NotImplementedError):
        return not_implemented_error(operation, str(exc))
    raise exc


def translating(*tables: ErrorTable, operation: str = "") -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Decorate every public AWS function: it raises :class:`AwsError`, never a botocore exception.

    ``tables`` are the service's own code tables (looked up before the general one); ``operation``
    names the AWS action in messages (the function's name when empty)."""

    def decorator(func: Callable[P, R]) -> Callable[P, R]:
        named = operation or func.__name__

        @functools.wraps(func)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            try:
                return func(*args, **kwargs)
            except (ClientError, BotoCoreError, NotImplementedError) as exc:
                raise translate(exc, *tables, operation=named) from exc

        return wrapper

    return decorator


def is_access_denied(error: AwsError) -> bool:
    """True when AWS refused for lack of permission (either protocol's spelling)."""
    return error.code.removesuffix("Exception") == "AccessDenied"
