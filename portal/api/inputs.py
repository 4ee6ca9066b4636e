"""JSON bodies into the pages' own forms, so every rule and message is the form's.

A form sees what a browser would send: strings, and lists of strings for multiple choices (a
number ``5`` is ``"5"``). Any other shape is refused before the form, so nothing a caller sends
can reach a field as a type it does not expect.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.utils.datastructures import MultiValueDict
from rest_framework import exceptions

from switchroles.models import RoleTemplate

SCALARS = (str, int, float, bool)
ONE_VALUE = "Send one value (text or a number), not a list or an object."
LIST_OF_VALUES = "Send a list of values (text or numbers)."


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def form_data(body: Mapping[str, Any], fields: Mapping[str, str],
              lists: frozenset[str] = frozenset()) -> MultiValueDict[str, str]:
    """The form's data from ``body``: ``fields`` maps each API field to its form field; ``lists``
    names the API fields that take several values. Absent and null fields are left out (the form
    says what is required). Raises a 400 (``{"errors": {field: [...]}}``) for a value of a shape
    no form field takes: an object, a list where one value is expected, a list of lists."""
    data: MultiValueDict[str, str] = MultiValueDict()
    shapes: dict[str, list[str]] = {}
    for api_name, form_name in fields.items():
        value = body.get(api_name)
        if value is None:
            continue
        if api_name in lists:
            values = value if isinstance(value, list) else [value]
            if not all(isinstance(v, SCALARS) for v in values):
                shapes[api_name] = [LIST_OF_VALUES]
                continue
            data.setlist(form_name, [_text(v) for v in values])
        elif isinstance(value, SCALARS):
            data[form_name] = _text(value)
        else:
            shapes[api_name] = [ONE_VALUE]
    if shapes:
        raise exceptions.ValidationError(shapes)
    return data


def tier_ids(names: Any, field: forms.Field) -> tuple[list[str], list[str]]:
    """The role templates ``names`` name (each by its tier when exactly one active template has
    it, otherwise by its role name), as ids for the form's field; and the form field's own
    message for each name that is neither."""
    if names is None:
        return [], []
    entries: Iterable[Any] = names if isinstance(names, list) else [names]
    if not all(isinstance(entry, SCALARS) for entry in entries):
        return [], [LIST_OF_VALUES]
    active = list(RoleTemplate.objects.filter(is_active=True).only("pk", "tier", "role_name"))
    ids: list[str] = []
    problems: list[str] = []
    for entry in entries:
        text = _text(entry)
        by_tier = [t for t in active if t.tier == text]
        match = by_tier[0] if len(by_tier) == 1 else next((t for t in active if t.role_name == text), None)
        if match is None:
            problems.append(str(field.error_messages["invalid_choice"] % {"value": text[:40]}))
        else:
            ids.append(str(match.pk))
    return ids, problems
