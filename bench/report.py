"""Results: one entry per metric in ``bench/results.json`` and a table on the terminal."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

RESULTS_PATH = Path(__file__).resolve().parent / "results.json"


@dataclass
class Result:
    """A measured figure against its target (``value <= target`` is good), or why there is none.

    ``missing`` names a piece of the product the metric exercises that does not exist yet;
    ``error`` says how measuring failed. Either leaves ``value`` as None and ``ok`` False.
    """

    name: str
    target: float
    unit: str
    value: float | None = None
    details: dict[str, Any] = field(default_factory=dict)
    missing: str = ""
    error: str = ""
    # Extra conditions beyond value <= target (e.g. "equal query counts"), each with its outcome.
    checks: dict[str, bool] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return self.value is not None and not self.missing and not self.error

    @property
    def ok(self) -> bool:
        return self.measured and self.value <= self.target and all(self.checks.values())  # type: ignore[operator]

    @property
    def status(self) -> str:
        if self.missing:
            return "MISSING"
        if self.error:
            return "ERROR"
        return "ok" if self.ok else "MISSED"

    def as_json(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "value": _rounded(self.value),
            "target": self.target,
            "unit": self.unit,
            "ok": self.ok,
            "status": self.status,
        }
        if self.checks:
            entry["checks"] = self.checks
        if self.missing:
            entry["missing"] = self.missing
        if self.error:
            entry["error"] = self.error
        entry.update({key: _rounded(value) for key, value in self.details.items()})
        return entry


def _rounded(value: Any) -> Any:
    if isinstance(value, float):
        return round(value, 4) if abs(value) < 10 else round(value, 2)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value


_ENTRY_KEYS = {"value", "target", "unit", "ok", "status", "checks", "missing", "error"}


def read_results(path: Path, *, suffix: str = "") -> list[Result]:
    """The results a run wrote (``write_results``), each named with ``suffix`` appended (e.g.
    "@sqlite" for the same figures measured on the other database)."""
    results = []
    for name, entry in json.loads(path.read_text()).items():
        results.append(Result(
            f"{name}{suffix}", target=entry["target"], unit=entry["unit"], value=entry.get("value"),
            details={key: value for key, value in entry.items() if key not in _ENTRY_KEYS},
            missing=entry.get("missing", ""), error=entry.get("error", ""), checks=entry.get("checks", {}),
        ))
    return results


def write_results(results: list[Result], path: Path = RESULTS_PATH) -> None:
    path.write_text(json.dumps({r.name: r.as_json() for r in results}, indent=2) + "\n")


def _shown(value: float) -> str:
    if isinstance(value, int) or abs(value) >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def table(results: list[Result]) -> str:
    rows = [("metric", "value", "target", "unit", "status", "note")]
    for r in results:
        value = "-" if r.value is None else _shown(r.value)
        note = r.missing or r.error or r.details.get("summary", "")
        failed_checks = [name for name, passed in r.checks.items() if not passed]
        if failed_checks:
            note = f"{note}; failed: {', '.join(failed_checks)}".lstrip("; ")
        rows.append((r.name, value, f"<= {r.target:g}", r.unit, r.status, str(note)))
    widths = [max(len(row[i]) for row in rows) for i in range(5)]
    lines = []
    for index, row in enumerate(rows):
        lines.append("  ".join(cell.ljust(width) for cell, width in zip(row[:5], widths, strict=True)) + "  " + row[5])
        if index == 0:
            lines.append("  ".join("-" * width for width in widths) + "  " + "-" * 4)
    return "\n".join(lines)
