from __future__ import annotations


class MonthConverter:
    """YYYY-MM, months 01–12 (a bad month is a 404, never a 500)."""

    regex = r"[0-9]{4}-(?:0[1-9]|1[0-2])"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: object) -> str:
        return value.strftime("%Y-%m") if hasattr(value, "strftime") else str(value)
