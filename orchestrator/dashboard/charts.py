"""Conversion charts as SVG: the funnel with its Wilson intervals, and the tiny conversion
bar of the journeys list (trends and time to convert are in ``time_charts``).

Every chart names its numbers in text next to the shapes, so nothing depends on reading a
colour or a length; the shapes make comparisons quick.
"""

from __future__ import annotations

from typing import Final

from . import formatting as fmt
from . import svg
from .board import Board, Stage

WIDTH: Final = 390
BAR_WIDTH: Final = 370.0
FUNNEL_ROW: Final = 62


def _interval_text(stage: Stage) -> str:
    if stage.entered == 0:
        return "no entries yet"
    low, high = stage.interval
    return f"95% interval {low * 100:.1f}\u2013{high * 100:.1f}%"


def _whisker(stage: Stage, y: float) -> str:
    """The interval as a path: a line from low to high with a cap at each end."""
    low, high = stage.interval
    return svg.whisker(low * BAR_WIDTH, high * BAR_WIDTH, y)


def _bar_width(stage: Stage) -> str:
    share = min(stage.converted, stage.entered) / stage.entered if stage.entered else 0.0
    return f"{share * BAR_WIDTH:.1f}"


def funnel_numbers(board: Board) -> dict[str, str]:
    """The funnel's live values: each bar's width, interval path and interval text."""
    out: dict[str, str] = {}
    for index, stage in enumerate(board.stages):
        out[fmt.funnel_key(stage.name, "bar")] = _bar_width(stage)
        out[fmt.funnel_key(stage.name, "ci")] = _whisker(stage, _bar_top(index) + 7)
        out[fmt.funnel_key(stage.name, "interval")] = _interval_text(stage)
    return out


def _bar_top(index: int) -> float:
    return index * FUNNEL_ROW + 22.0


def funnel_chart(board: Board) -> str:
    """Per stage: the conversion rate as a bar on a 0-100 % scale, its Wilson interval as
    a whisker, and the counts in words."""
    stages = board.stages
    height = len(stages) * FUNNEL_ROW + 24
    root = svg.root(
        WIDTH,
        height,
        title="Conversion per stage",
        description="For each stage, the share of those who entered it that converted, with "
        "its 95% Wilson interval.",
        class_="funnel",
    )
    for index, stage in enumerate(stages):
        top = _bar_top(index)
        group = svg.element(root, "g", class_="funnel-stage", data_stage=stage.name)
        name = svg.element(group, "text", x=0, y=top - 7, font_size=13, fill=svg.INK)
        svg.element(name, "tspan", svg.clip(stage.name, 28), font_weight="bold").tail = ": "
        live = svg.element(name, "tspan", fmt.count(stage.converted))
        live.set("data-live", fmt.stage_key(stage.name, "converted"))
        live.tail = " of "
        entered = svg.element(name, "tspan", fmt.count(stage.entered))
        entered.set("data-live", fmt.stage_key(stage.name, "entered"))
        entered.tail = " converted"
        if not stage.in_plan:
            entered.tail += " (older versions)"
        svg.element(group, "rect", x=0, y=top, width=BAR_WIDTH, height=14, fill=svg.TRACK)
        svg.element(
            group,
            "rect",
            x=0,
            y=top,
            width=_bar_width(stage),
            height=14,
            fill=svg.BLUE,
            class_="rate-bar",
            data_live=fmt.funnel_key(stage.name, "bar"),
            data_live_attr="width",
        )
        svg.element(
            group,
            "path",
            d=_whisker(stage, top + 7),
            stroke=svg.BLACK,
            stroke_width=1.5,
            fill="none",
            class_="interval",
            data_live=fmt.funnel_key(stage.name, "ci"),
            data_live_attr="d",
        )
        words = svg.element(group, "text", x=0, y=top + 30, font_size=12, fill=svg.INK)
        rate = svg.element(
            words, "tspan", fmt.rate(stage.converted, stage.entered), font_weight="bold"
        )
        rate.set("data-live", fmt.stage_key(stage.name, "rate"))
        rate.tail = " · "
        interval = svg.element(words, "tspan", _interval_text(stage), fill=svg.MUTED)
        interval.set("data-live", fmt.funnel_key(stage.name, "interval"))
        if stage.dropoff:
            interval.tail = " · busiest drop-off"
    axis = svg.element(root, "g", class_="axis", font_size=11, fill=svg.MUTED)
    for share in (0.0, 0.5, 1.0):
        anchor = {0.0: "start", 0.5: "middle", 1.0: "end"}[share]
        svg.element(
            axis,
            "text",
            fmt.percent(share).replace(".0", ""),
            x=share * BAR_WIDTH,
            y=height - 4,
            text_anchor=anchor,
        )
    return svg.to_string(root)


def rate_bar(converted: int, entered: int) -> str:
    """A tiny bar of ``converted / entered`` for the journeys list (its text sits beside it)."""
    share = min(converted, entered) / entered if entered else 0.0
    root = svg.root(
        100,
        12,
        title=f"Converted: {fmt.rate(converted, entered)}",
        description=f"{converted} of {entered} converted",
        class_="rate",
    )
    svg.element(root, "rect", x=0, y=0, width=100, height=12, rx=2, fill=svg.TRACK)
    svg.element(
        root,
        "rect",
        x=0,
        y=0,
        width=share * 100,
        height=12,
        rx=2,
        fill=svg.BLUE,
        class_="rate-fill",
    )
    return svg.to_string(root)
