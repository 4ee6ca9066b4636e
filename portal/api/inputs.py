"""JSON bodies into the pages' own forms, so every rule and message is the form's.

A form sees what a browser would send: strings, and lists of strings for multiple choices. Any
JSON value becomes that (a number ``5`` is ``"5"``; an object is its JSON text, which no field
takes), so nothing a caller sends can reach a field as a type it does not expect.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from django import forms
from django.utils.datastructures import MultiValueDict

from switchroles.models import RoleTemplate


def _text(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value)


def form_data(body: Mapping[str, Any], fields: Mapping[str, str]) -> MultiValueDict[str, str]:
    """The form's data from ``body``: ``fields`` maps each API field to its form field. Absent and
    null fields are left out (the form says what is required)."""
    data: MultiValueDict[str, str] = MultiValueDict()
    for api_name, form_name in fields.items():
        value = body.get(api_name)
        if value is None:
            continue
        values = value if isinstance(value, list) else [value]
        data.setlist(form_name, [_text(v) for v in values if v is not None])
    return data


def tier_ids(names: Any, field: forms.Field) -> tuple[list[str], list[str]]:
    """The role templates ``names`` name (each by its tier when exactly one active template has
    it, otherwise by its role name), as ids for the form's field; and the form field's own
    message for each name that is neither."""
    if names is None:
        return [], []
    entries: Iterable[Any] = names if isinstance(names, list) else [names]
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
