"""Small server-side SVG pictures for the admin: a step chart of a count over time, and horizontal bars.

Rendered in Python so that the admin needs no JavaScript and no CDN. Every label is escaped here; the
result is marked safe only once it is complete.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Sequence
from datetime import datetime, timedelta

from django.utils import timezone
from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe


def _nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 x 10^n at or above `value`, so that axis labels are round numbers."""
    if value <= 0:
        return 1
    magnitude = 1
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude


def step_chart_svg(
    points: Sequence[tuple[datetime, int]],
    *,
    start: datetime,
    end: datetime,
    label: str,
    width: int = 640,
    height: int = 180,
) -> SafeString:
    """A step line of a count from `start` to `end`.

    `points` are (when, value) in time order; a value holds until the next point, and the last one holds
    until `end`. A point before `start` gives the value at `start` (the history only stores changes and
    heartbeats, so the value at the window's edge usually comes from an older row).
    """
    # The right margin leaves room for the last date label, centred on the right edge.
    left, right, top, bottom = 44, 36, 12, 26
    plot_w, plot_h = width - left - right, height - top - bottom
    # `end` (now) is drawn this far inside the frame: a change made moments ago is a step and a dot one can
    # see, not a vertical line on the frame's own edge.
    inset = 16
    span = max((end - start).total_seconds(), 1.0)

    # The value in force at `start`, then the points inside the window.
    inside: list[tuple[datetime, int]] = []
    initial: int | None = None
    for when, value in points:
        if when <= start:
            initial = value
        elif when <= end:
            inside.append((when, value))
    values = [v for _, v in inside] + ([initial] if initial is not None else [])
    y_max = _nice_ceiling(max(values, default=0))

    def x(when: datetime) -> float:
        return left + (plot_w - inset) * (when - start).total_seconds() / span

    def y(value: int) -> float:
        return top + plot_h * (1 - value / y_max)

    parts: list[str] = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="wxp-chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#ccc"/>',
    ]
    for value in (0, y_max // 2, y_max) if y_max > 1 else (0, y_max):
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{y(value):.1f}" y2="{y(value):.1f}" stroke="#eee"/>'
            f'<text x="{left - 6}" y="{y(value) + 4:.1f}" font-size="11" text-anchor="end" '
            f'fill="#666">{value}</text>'
        )
    # Date ticks every ~5 days across the window, in the site's time zone.
    days = max(int(span // 86400), 1)
    tick_every = max(days // 6, 1)
    for day in range(0, days + 1, tick_every):
        when = start + timedelta(days=day)
        parts.append(
            f'<text x="{x(when):.1f}" y="{height - 8}" font-size="11" text-anchor="middle" fill="#666">'
            f"{timezone.localtime(when):%Y-%m-%d}</text>"
        )

    if initial is None and not inside:
        parts.append(
            f'<text x="{left + plot_w / 2:.1f}" y="{top + plot_h / 2:.1f}" font-size="13" text-anchor="middle" '
            f'fill="#999" class="wxp-chart-empty">—</text>'
        )
    else:
        # Build the step path: horizontal to the next change, then vertical to the new value.
        first_when, current = (start, initial) if initial is not None else inside[0]
        path = [f"M{x(first_when):.1f},{y(current):.1f}"]
        for when, value in inside:
            path.append(f"H{x(when):.1f}V{y(value):.1f}")
            current = value
        path.append(f"H{x(end):.1f}")
        parts.append(f'<path d="{"".join(path)}" fill="none" stroke="#417690" stroke-width="2"/>')
        for when, value in inside:
            parts.append(f'<circle cx="{x(when):.1f}" cy="{y(value):.1f}" r="2.5" fill="#417690"/>')
        parts.append(
            f'<text x="{x(end) - 2:.1f}" y="{max(y(current) - 6, top + 11):.1f}" font-size="12" '
            f'text-anchor="end" fill="#205067" class="wxp-chart-latest">{current}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label above is escaped


# Text widths at 12px, as the admin's sans-serif fonts draw them at the widest: a Chinese character is a square
# em, a Latin one at most about 0.62 em (DejaVu Sans, the widest of the usual defaults, averages 0.55).
_CJK_WIDTH, _LATIN_WIDTH = 12.0, 7.5
# Below this a label column would leave most bars without a readable label; above, the chart widens instead.
_MIN_LABEL_W, _MIN_PLOT_W = 60, 200


def text_width(text: str) -> float:
    """An upper bound of `text`'s width in pixels at 12px, so that a label column never cuts its label."""
    return sum(_CJK_WIDTH if unicodedata.east_asian_width(char) in "WFA" else _LATIN_WIDTH for char in text)


def bar_chart_svg(
    items: Sequence[tuple[str, int]], *, label: str, width: int = 480, bar_height: int = 18
) -> SafeString:
    """Horizontal bars, one per (label, value), scaled to the largest value.

    Labels are drawn whole: the label column is as wide as the longest one, and the picture grows when the
    bars would otherwise have less than _MIN_PLOT_W (the page scales it down to its box, text and all)."""
    value_w, gap = 56, 6
    label_w = max(_MIN_LABEL_W, int(max((text_width(name) for name, _ in items), default=0)) + 2 * gap)
    plot_w = max(width - label_w - value_w, _MIN_PLOT_W)
    width = label_w + plot_w + value_w
    height = max(len(items), 1) * (bar_height + gap) + gap
    largest = max((v for _, v in items), default=0) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="wxp-bars" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
    ]
    if not items:
        parts.append(f'<text x="{gap}" y="{bar_height}" font-size="12" fill="#999">—</text>')
    for row, (name, value) in enumerate(items):
        top = gap + row * (bar_height + gap)
        bar = max(plot_w * value / largest, 1 if value else 0)
        parts.append(
            f'<text x="{label_w - gap}" y="{top + bar_height - 5}" font-size="12" text-anchor="end" '
            f'fill="#333" class="wxp-bar-label">{escape(name)}</text>'
            f'<rect x="{label_w}" y="{top}" width="{bar:.1f}" height="{bar_height}" fill="#79aec8"/>'
            f'<text x="{label_w + bar + gap:.1f}" y="{top + bar_height - 5}" font-size="12" '
            f'fill="#333">{value}</text>'
        )
    parts.append("</svg>")
    return mark_safe("".join(parts))  # noqa: S308 - every interpolated label above is escaped
