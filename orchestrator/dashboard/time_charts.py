"""Charts over time as SVG: entries and conversions per hour or day, and time to convert.

As in ``charts``, every number is written out beside its shape.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Final, Literal

from journeyman.orchestrator.storage.stage_reports import StageTiming, TrendPoint

from . import formatting as fmt
from . import svg

WIDTH: Final = 390
BAR_WIDTH: Final = 370.0


def _nice_ceiling(value: int) -> int:
    """The next of 1, 2, 5 times a power of ten at or above ``value`` (at least 1)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power  # pragma: no cover - the loop ends at 10


def _bucket_label(point: TrendPoint, bucket: Literal["hour", "day"]) -> str:
    return point.bucket.strftime("%b %d %H:00" if bucket == "hour" else "%b %d")


def trends_chart(points: Sequence[TrendPoint], *, bucket: Literal["hour", "day"]) -> str:
    """Entries as bars and conversions as a line with square markers, per hour or day."""
    height, left, right, top, bottom = 200, 34.0, WIDTH - 6.0, 12.0, 150.0
    peak = _nice_ceiling(max((max(p.entered, p.converted) for p in points), default=0))
    unit = "hour" if bucket == "hour" else "day"
    total_in = sum(p.entered for p in points)
    total_out = sum(p.converted for p in points)
    root = svg.root(
        WIDTH,
        height,
        title=f"Entries and conversions per {unit}",
        description=f"{len(points)} {unit}s: {total_in} entries and {total_out} conversions.",
        class_="trends",
    )
    grid = svg.element(root, "g", class_="grid", font_size=10, fill=svg.MUTED)
    for share in (0.0, 0.5, 1.0):
        y = bottom - share * (bottom - top)
        svg.element(grid, "line", x1=left, y1=y, x2=right, y2=y, stroke=svg.TRACK)
        label = f"{peak * share:g}"
        svg.element(grid, "text", label, x=left - 4, y=y + 3, text_anchor="end")
    slot = (right - left) / max(len(points), 1)

    def y_of(value: int) -> float:
        return bottom - value / peak * (bottom - top)

    bars = svg.element(root, "g", class_="entries", fill=svg.SKY_BLUE)
    line: list[str] = []
    markers = svg.element(root, "g", class_="conversions", fill=svg.VERMILLION)
    for index, point in enumerate(points):
        x = left + index * slot
        bar = svg.element(
            bars,
            "rect",
            x=x + slot * 0.15,
            y=y_of(point.entered),
            width=slot * 0.7,
            height=bottom - y_of(point.entered),
        )
        when = _bucket_label(point, bucket)
        svg.element(bar, "title", f"{when}: {point.entered} entered, {point.converted} converted")
        cx, cy = x + slot / 2, y_of(point.converted)
        line.append(f"{cx:.1f},{cy:.1f}")
        svg.element(markers, "rect", x=cx - 2.5, y=cy - 2.5, width=5, height=5)
    if line:
        svg.element(
            root,
            "polyline",
            points=" ".join(line),
            fill="none",
            stroke=svg.VERMILLION,
            stroke_width=2,
            class_="conversion-line",
        )
    ticks = svg.element(root, "g", class_="x-axis", font_size=10, fill=svg.MUTED)
    if points:
        middle = len(points) // 2
        for index, x, anchor in (
            (0, left, "start"),
            (middle, left + (middle + 0.5) * slot, "middle"),
            (len(points) - 1, right, "end"),
        ):
            label = _bucket_label(points[index], bucket)
            svg.element(ticks, "text", label, x=x, y=bottom + 14, text_anchor=anchor)
    legend = svg.element(root, "g", class_="legend", font_size=11, fill=svg.INK)
    svg.element(legend, "rect", x=left, y=height - 24, width=12, height=12, fill=svg.SKY_BLUE)
    svg.element(legend, "text", f"entries ({total_in})", x=left + 16, y=height - 14)
    svg.element(
        legend,
        "line",
        x1=left + 150,
        y1=height - 18,
        x2=left + 172,
        y2=height - 18,
        stroke=svg.VERMILLION,
        stroke_width=2,
    )
    svg.element(
        legend, "rect", x=left + 158.5, y=height - 20.5, width=5, height=5, fill=svg.VERMILLION
    )
    svg.element(legend, "text", f"conversions ({total_out})", x=left + 178, y=height - 14)
    return svg.to_string(root)


def timing_chart(rows: Sequence[StageTiming]) -> str:
    """Per stage: the median time to convert as a bar, the 90th percentile as a tick."""
    row_height = 48
    height = len(rows) * row_height + 8
    longest = max((r.p90_seconds or r.median_seconds or 0.0 for r in rows), default=0.0)
    scale = BAR_WIDTH / longest if longest > 0 else 0.0
    root = svg.root(
        WIDTH,
        height,
        title="Time to convert per stage",
        description="For each stage, the median and 90th percentile of the time from entering "
        "it to converting.",
        class_="timing",
    )
    for index, row in enumerate(rows):
        top = index * row_height + 4
        group = svg.element(root, "g", class_="timing-stage", data_stage=row.stage)
        text = svg.element(group, "text", x=0, y=top + 12, font_size=12, fill=svg.INK)
        svg.element(text, "tspan", svg.clip(row.stage, 28), font_weight="bold")
        if row.median_seconds is None:
            svg.element(text, "tspan", ": no one converted yet", fill=svg.MUTED)
            continue
        words = (
            f": median {fmt.duration(row.median_seconds)} · 90% within "
            f"{fmt.duration(row.p90_seconds)} · {fmt.count(row.converted)} converted"
        )
        svg.element(text, "tspan", words)
        svg.element(group, "rect", x=0, y=top + 20, width=BAR_WIDTH, height=12, fill=svg.TRACK)
        svg.element(
            group,
            "rect",
            x=0,
            y=top + 20,
            width=row.median_seconds * scale,
            height=12,
            fill=svg.BLUISH_GREEN,
            class_="median",
        )
        if row.p90_seconds is not None:
            x = row.p90_seconds * scale
            svg.element(
                group,
                "line",
                x1=x,
                y1=top + 16,
                x2=x,
                y2=top + 36,
                stroke=svg.BLACK,
                stroke_width=2,
                class_="p90",
            )
    return svg.to_string(root)
