"""How a page shows a service's refusal (a ``ValidationError``), in the two shapes the pages have:

- a form page: the messages under their fields (the rest at the top of the form), the page shown
  again (:func:`service_errors_to_form`);
- a button (POST, then back to the page it was on): the messages as one error message, or the
  page's confirmation when the service went through (:func:`service_outcome_message`).

The API answers the same refusals as JSON (``portal.api.errors``)."""

from __future__ import annotations

from collections.abc import Callable

from django import forms
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.http import HttpRequest


def service_errors_to_form(form: forms.BaseForm, error: ValidationError) -> None:
    """Put a service's ``ValidationError`` next to the form's fields; messages for a field the form
    does not have, and messages for no field, go on the form itself."""
    if hasattr(error, "error_dict"):
        for field, problems in error.message_dict.items():
            form.add_error(field if field in form.fields else None, problems)
    else:
        form.add_error(None, error.messages)


def service_outcome_message(request: HttpRequest, action: Callable[[], object], done: str, *,
                            level: int = messages.SUCCESS) -> bool:
    """Run ``action`` (a service call); its ``ValidationError`` becomes an error message (its
    messages joined), success the message ``done`` at ``level``. True when the action went through."""
    try:
        action()
    except ValidationError as error:
        messages.error(request, " ".join(error.messages))
        return False
    messages.add_message(request, level, done)
    return True
