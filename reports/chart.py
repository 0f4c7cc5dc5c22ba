"""The daily chart of a report, drawn on the server as SVG: no script, nothing to download,
nothing the Content Security Policy has to allow.

Per day: a bar of messages sent, the delivered part of it in green, and the errors as a red
bar beside it. The geometry is worked out here; the template only writes the elements.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.utils.html import escape
from django.utils.safestring import mark_safe

from reports.selectors import DayRow

WIDTH = 760
HEIGHT = 240
LEFT = 44  # room for the y-axis labels
BOTTOM = 28  # room for the date labels
TOP = 12
RIGHT = 8
MAX_LABELS = 8


@dataclass(frozen=True)
class Bar:
    x: float
    width: float
    sent_y: float
    sent_h: float
    delivered_y: float
    delivered_h: float
    error_x: float
    error_w: float
    error_y: float
    error_h: float
    title: str

    @property
    def svg(self) -> str:
        """The bar's elements: written here rather than in the template, whose dozen lookups
        per bar cost more than the whole report's queries over a year."""
        markup = _BAR.format(
            title=escape(self.title),
            x=self.x,
            width=self.width,
            sent_y=self.sent_y,
            sent_h=self.sent_h,
            delivered_y=self.delivered_y,
            delivered_h=self.delivered_h,
            error_x=self.error_x,
            error_y=self.error_y,
            error_w=self.error_w,
            error_h=self.error_h,
        )
        return mark_safe(markup)  # noqa: S308 - the title is escaped, the rest are numbers


_BAR = (
    '<g class="day"><title>{title}</title>\n'
    '      <rect class="sent" x="{x}" y="{sent_y}" width="{width}" height="{sent_h}"></rect>\n'
    '      <rect class="delivered" x="{x}" y="{delivered_y}" width="{width}" '
    'height="{delivered_h}"></rect>\n'
    '      <rect class="errors" x="{error_x}" y="{error_y}" width="{error_w}" '
    'height="{error_h}"></rect>\n'
    "    </g>"
)


@dataclass(frozen=True)
class Tick:
    y: float
    label: str


@dataclass(frozen=True)
class Label:
    x: float
    text: str


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    plot_left: int
    plot_right: int
    baseline: float
    bars: list[Bar]
    ticks: list[Tick]
    labels: list[Label]
    empty: bool


def _nice_ceiling(value: int) -> int:
    """A round axis maximum at or above ``value`` (1, 2 or 5 times a power of ten)."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def daily_chart(days: list[DayRow]) -> Chart:
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    peak = max((max(d.numbers.sent, d.numbers.errors) for d in days), default=0)
    top = _nice_ceiling(peak)
    slot = plot_width / max(len(days), 1)
    bar_width = max(slot * 0.6, 1.0)
    error_width = max(slot * 0.2, 0.5)

    def height(value: int) -> float:
        return round(plot_height * value / top, 2)

    bars = []
    for index, row in enumerate(days):
        numbers = row.numbers
        x = LEFT + index * slot + (slot - bar_width - error_width) / 2
        sent_h, delivered_h, error_h = (
            height(numbers.sent),
            height(min(numbers.delivered, numbers.sent)),
            height(numbers.errors),
        )
        bars.append(
            Bar(
                x=round(x, 2),
                width=round(bar_width, 2),
                sent_y=round(baseline - sent_h, 2),
                sent_h=sent_h,
                delivered_y=round(baseline - delivered_h, 2),
                delivered_h=delivered_h,
                error_x=round(x + bar_width, 2),
                error_w=round(error_width, 2),
                error_y=round(baseline - error_h, 2),
                error_h=error_h,
                title=(
                    f"{row.day:%a %d %b %Y}: {numbers.sent} sent, {numbers.delivered} delivered, "
                    f"{numbers.errors} errors"
                ),
            )
        )
    # Counts are whole numbers: a tick at each whole value of 0, half and top, drawn at that
    # value's height (a half of 5 would be labelled 2 at the height of 2.5).
    ticks = [
        Tick(y=round(baseline - plot_height * value / top, 2), label=f"{value:,}")
        for value in sorted({0, top // 2, top})
    ]
    every = max(1, math.ceil(len(days) / MAX_LABELS))
    labels = [
        Label(x=round(LEFT + index * slot + slot / 2, 2), text=f"{row.day:%d %b}")
        for index, row in enumerate(days)
        if index % every == 0
    ]
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        plot_left=LEFT,
        plot_right=WIDTH - RIGHT,
        baseline=baseline,
        bars=bars,
        ticks=ticks,
        labels=labels,
        empty=peak == 0,
    )
