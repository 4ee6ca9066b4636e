"""Bar charts as SVG geometry, drawn by templates (billing/_bar_chart.svg.html).

Server-side and within the Content-Security-Policy: the SVG carries presentation attributes and
classes styled by static/css/switchyard.css, no <style>, no <script>, no style= attribute. Each bar
has a <title> (its exact amount) and the chart a text equivalent (a table next to it in the page).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

WIDTH = 640
HEIGHT = 220
LEFT = 64  # room for the axis labels
BOTTOM = 36
TOP = 12
GRID_LINES = 5
MAX_BAR_WIDTH = 56


@dataclass(frozen=True)
class Bar:
    label: str
    title: str  # the exact amount, shown on hover and read by screen readers
    x: int
    y: int
    width: int
    height: int
    label_x: int
    flagged: bool = False
    href: str = ""


@dataclass(frozen=True)
class GridLine:
    y: int
    label: str


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    grid: tuple[GridLine, ...]
    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    baseline: int = HEIGHT - BOTTOM

    @property
    def right(self) -> int:
        return self.width - 8


def _nice_ceiling(value: Decimal) -> Decimal:
    """The smallest 1, 2, 2.5 or 5 × 10ⁿ at or above ``value``: a top for the axis whose fifths
    are round numbers."""
    if value <= 0:
        return Decimal("1")
    magnitude = Decimal(10) ** (len(str(int(value))) - 1)
    for step in (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10)):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _axis_label(value: Decimal) -> str:
    if value >= 1000:
        return f"{value / 1000:,.0f}k" if value % 1000 == 0 else f"{value / 1000:,.1f}k"
    return f"{value:,.0f}" if value == value.to_integral_value() else f"{value:,.1f}"


def bar_chart(title: str, values: list[tuple[str, Decimal, str]], *, currency: str = "USD",
              flagged: frozenset[str] = frozenset(), links: dict[str, str] | None = None,
              shown: dict[str, str] | None = None) -> BarChart:
    """A bar per (label, amount, exact text); negative amounts (a month of credits) draw as zero.
    ``shown`` gives a shorter text under a bar than its label (the label stays in its title)."""
    links, shown = links or {}, shown or {}
    top = _nice_ceiling(max((v for _, v, _ in values), default=Decimal("0")))
    plot_height = HEIGHT - BOTTOM - TOP
    plot_width = WIDTH - LEFT - 8
    slot = plot_width // max(len(values), 1)
    bar_width = min(max(int(slot * 0.7), 2), MAX_BAR_WIDTH)
    bars = []
    for index, (label, value, exact) in enumerate(values):
        height = int(plot_height * max(value, Decimal("0")) / top)
        x = LEFT + index * slot + (slot - bar_width) // 2
        bars.append(Bar(label=shown.get(label, label), title=f"{label}: {exact} {currency}", x=x,
                        y=HEIGHT - BOTTOM - height, width=bar_width, height=height, label_x=x + bar_width // 2,
                        flagged=label in flagged, href=links.get(label, "")))
    grid = tuple(
        GridLine(y=HEIGHT - BOTTOM - plot_height * step // GRID_LINES, label=_axis_label(top * step / GRID_LINES))
        for step in range(GRID_LINES + 1)
    )
    return BarChart(title=title, bars=tuple(bars), grid=grid)
