"""Inline SVG charts, drawn on the server: no JavaScript, no library, no inline style.

A chart is a pure function of its data: grouped bars, one group per label (an hour), one
bar per series, with a y axis of round ticks, x labels, a legend, and a ``<title>`` and
``<desc>`` that say what it shows to a screen reader. Colours are presentation
attributes (``fill``), which a strict Content-Security-Policy allows, where ``style``
attributes would be refused. Every text is escaped.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from conversa.app.overview import HourTotals

WIDTH = 720
HEIGHT = 260
MARGIN_LEFT = 48
MARGIN_RIGHT = 12
MARGIN_TOP = 28
MARGIN_BOTTOM = 40


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    values: Sequence[int]
    colour: str  # an SVG colour: "#2563eb"


def axis(largest: float) -> tuple[int, int]:
    """The top of the y axis and the step between its ticks for values up to ``largest``:
    the step is 1, 2 or 5 times a power of ten, at least a quarter of the largest value,
    and the top the first multiple of the step that holds it (at most five ticks)."""
    if largest <= 0:
        return 1, 1
    rough = largest / 4
    power = 10 ** math.floor(math.log10(rough)) if rough >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= rough)
    return int(step * math.ceil(largest / step)), int(step)


def bar_chart(
    *,
    chart_id: str,
    title: str,
    description: str,
    labels: Sequence[str],
    series: Sequence[Series],
    label_every: int = 3,
) -> str:
    """The SVG of a grouped bar chart; ``chart_id`` makes its element ids unique on a
    page. Every series has one value per label."""
    for s in series:
        if len(s.values) != len(labels):
            raise ValueError(f"series {s.name!r} has {len(s.values)} values for {len(labels)}")
    top, step = axis(max((v for s in series for v in s.values), default=0))
    plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT
    plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM
    base_y = MARGIN_TOP + plot_h
    cid = escape(chart_id, quote=True)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" '
        f'width="100%" role="img" class="chart" aria-labelledby="{cid}-title {cid}-desc">',
        f'<title id="{cid}-title">{escape(title)}</title>',
        f'<desc id="{cid}-desc">{escape(description)}</desc>',
    ]
    # The y axis: a tick and a grid line at every step.
    for value in range(0, top + 1, step):
        y = base_y - plot_h * value / top
        parts.append(
            f'<line x1="{MARGIN_LEFT}" y1="{y:.1f}" x2="{WIDTH - MARGIN_RIGHT}" y2="{y:.1f}" '
            f'stroke="#d4d4d8" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{MARGIN_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" '
            f'font-size="11" fill="#52525b">{value}</text>'
        )
    group_w = plot_w / max(len(labels), 1)
    bar_w = group_w * 0.8 / max(len(series), 1)
    for i, label in enumerate(labels):
        x0 = MARGIN_LEFT + group_w * i + group_w * 0.1
        for j, s in enumerate(series):
            value = s.values[i]
            h = plot_h * value / top
            parts.append(
                f'<rect x="{x0 + bar_w * j:.1f}" y="{base_y - h:.1f}" width="{bar_w:.1f}" '
                f'height="{h:.1f}" fill="{escape(s.colour, quote=True)}">'
                f"<title>{escape(label)} {escape(s.name)}: {value}</title></rect>"
            )
        if i % max(label_every, 1) == 0:
            parts.append(
                f'<text x="{x0 + group_w * 0.4:.1f}" y="{base_y + 16}" text-anchor="middle" '
                f'font-size="11" fill="#52525b">{escape(label)}</text>'
            )
    parts.append(
        f'<line x1="{MARGIN_LEFT}" y1="{base_y}" x2="{WIDTH - MARGIN_RIGHT}" y2="{base_y}" '
        'stroke="#71717a" stroke-width="1"/>'
    )
    # The legend, above the plot.
    x = MARGIN_LEFT
    for s in series:
        parts.append(
            f'<rect x="{x}" y="8" width="12" height="12" fill="{escape(s.colour, quote=True)}"/>'
        )
        parts.append(
            f'<text x="{x + 16}" y="18" font-size="12" fill="#27272a">{escape(s.name)}</text>'
        )
        x += 28 + 7 * len(s.name)
    parts.append("</svg>")
    return "".join(parts)


SENT_COLOUR = "#2563eb"
DELIVERED_COLOUR = "#16a34a"
FAILED_COLOUR = "#dc2626"


def hourly_activity_chart(hours: Sequence[HourTotals], *, chart_id: str = "hourly") -> str:
    """Sent, delivered and failed per hour (UTC), as the overview shows them."""
    sent = [h.sent for h in hours]
    delivered = [h.delivered for h in hours]
    failed = [h.failed for h in hours]
    span = (
        f"from {hours[0].start:%Y-%m-%d %H:00} to {hours[-1].start:%Y-%m-%d %H:59} UTC"
        if hours
        else "no hours"
    )
    busiest = max(hours, key=lambda h: h.sent, default=None)
    description = (
        f"Per hour {span}: {sum(sent)} sent, {sum(delivered)} delivered, "
        f"{sum(failed)} failed in all"
        + (
            f"; the busiest hour, {busiest.start:%H:00}, sent {busiest.sent}."
            if busiest is not None and busiest.sent
            else "."
        )
    )
    return bar_chart(
        chart_id=chart_id,
        title="Messages sent, delivered and failed per hour, last 24 hours",
        description=description,
        labels=[f"{h.start:%H:00}" for h in hours],
        series=[
            Series("sent", sent, SENT_COLOUR),
            Series("delivered", delivered, DELIVERED_COLOUR),
            Series("failed", failed, FAILED_COLOUR),
        ],
    )
