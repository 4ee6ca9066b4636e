"""Form fields shared by the apps."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

from django import forms
from django.core.exceptions import ValidationError
from django.db.models import Model

BIGINT_MAX = 2**63 - 1

_M = TypeVar("_M", bound=Model)


class RowsChoiceField(forms.ModelMultipleChoiceField[_M]):
    """A choice of several rows by id that refuses, as an invalid choice, an id no row can have (not
    plain digits, or beyond a 64-bit integer) before it is looked up: SQLite cannot even compare
    such a number with an id, and the page would answer 500."""

    def _check_values(self, value: Iterable[Any]) -> Any:
        if self.to_field_name is None:
            for pk in value:
                text = str(pk)
                if not (text.isascii() and text.isdigit() and int(text) <= BIGINT_MAX):
                    raise ValidationError(self.error_messages["invalid_choice"], code="invalid_choice",
                                          params={"value": text[:40]})
        return super()._check_values(value)  # type: ignore[misc]  # (private in django-stubs)
