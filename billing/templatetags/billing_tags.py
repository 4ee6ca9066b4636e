from __future__ import annotations

from decimal import Decimal

from django import template

from billing.selectors import plain

register = template.Library()


@register.filter
def money(value: Decimal | None) -> str:
    """An amount to the cent, as in the CSV exports (a dot, no thousands separator)."""
    return plain(value) if value is not None else ""


@register.filter
def percent(value: Decimal | None) -> str:
    return f"{value:.0f}" if value is not None else ""
