"""Errors are JSON, always: ``{"errors": {"field": ["message"]}}`` for 400 (the forms' own
messages), ``{"detail": "..."}`` for 401/403/404/405/415/429."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from django import forms
from django.conf import settings
from django.core.exceptions import NON_FIELD_ERRORS, RequestDataTooBig, ValidationError
from django.http import HttpRequest, JsonResponse
from rest_framework import exceptions
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

ALL = NON_FIELD_ERRORS  # "__all__": problems that belong to no one field


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.ParseError(f"The body is over {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes.")
    if isinstance(exc, exceptions.ParseError):
        exc = exceptions.ValidationError({ALL: [str(exc.detail)]})
    response = drf_exception_handler(exc, context)
    if response is not None and isinstance(exc, exceptions.ValidationError):
        detail = response.data if isinstance(response.data, dict) else {ALL: response.data}
        response.data = {"errors": detail}
    return response


def bad_request(errors: dict[str, list[str]]) -> Response:
    return Response({"errors": errors}, status=400)


def form_errors(form: forms.Form, renamed: dict[str, str] | None = None) -> dict[str, list[str]]:
    """The form's messages, keyed by the API's field names (``renamed``: form field → API field)."""
    renamed = renamed or {}
    return {renamed.get(field, field): [str(m) for m in messages] for field, messages in form.errors.items()}


def service_errors(error: ValidationError, renamed: dict[str, str] | None = None) -> dict[str, list[str]]:
    """A service's ``ValidationError`` (the same messages the page shows next to each field)."""
    renamed = renamed or {}
    if hasattr(error, "error_dict"):
        return {renamed.get(field, field): [str(m) for m in messages] for field, messages in error.message_dict.items()}
    return {ALL: [str(m) for m in error.messages]}


def valid_data(form: forms.Form, renamed: dict[str, str] | None = None) -> dict[str, Any]:
    """The form's cleaned data; a form with errors answers 400 with its messages (``form_errors``)."""
    if not form.is_valid():
        raise exceptions.ValidationError(form_errors(form, renamed))
    return form.cleaned_data


@contextmanager
def service_refusals(renamed: dict[str, str] | None = None) -> Iterator[None]:
    """A service's ``ValidationError`` raised in the block answers 400 with its messages
    (``service_errors``), through the exception handler above, as any other 400."""
    try:
        yield
    except ValidationError as error:
        raise exceptions.ValidationError(service_errors(error, renamed)) from error


def not_found(request: HttpRequest, *args: Any, **kwargs: Any) -> JsonResponse:
    """Any path under /api/v1/ that is not an endpoint."""
    return JsonResponse({"detail": "Not found."}, status=404)
