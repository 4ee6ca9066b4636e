"""An audit event's details as a reader sees them: "Reason: rotating keys", not a Python dict."""

from __future__ import annotations

from typing import Any

from django import template

register = template.Library()


def _text(value: Any) -> str:
    if value is None or value == "":
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (list, tuple)):
        return ", ".join(_text(item) for item in value) if value else "none"
    if isinstance(value, dict):
        return "; ".join(f"{_label(key)}: {_text(item)}" for key, item in value.items()) if value else "none"
    return str(value)


def _label(key: Any) -> str:
    return str(key).replace("_", " ").strip().capitalize()


@register.filter
def readable_details(details: Any) -> list[tuple[str, str]]:
    """``[(label, text), ...]``: keys in words ("client_ip" -> "Client ip"), lists joined with commas,
    nested values as "key: value" pairs; anything that is not a mapping is one "Details" entry."""
    if not details:
        return []
    if not isinstance(details, dict):
        return [("Details", _text(details))]
    return [(_label(key), _text(value)) for key, value in details.items()]
