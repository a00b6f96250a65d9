"""Two versions side by side as SVG: conversion, exits by reason, time to convert.

Every pair of bars is labelled with its version's letter (A, B) beside the bar and its numbers
in words, so the two colours (orange for A, blue for B) only repeat what the letters say.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from . import formatting as fmt
from . import svg

if TYPE_CHECKING:
    from .comparison import ExitPair, Side, StagePair

WIDTH: Final = 390
BAR_X: Final = 20.0  # the letter sits left of the bar
BAR_WIDTH: Final = WIDTH - BAR_X - 2
COLOURS: Final = {"A": svg.ORANGE, "B": svg.BLUE}


def _letter(parent: ET.Element, letter: str, y: float) -> None:
    svg.element(parent, "text", letter, x=0, y=y, font_size=13, font_weight="bold", fill=svg.INK)


def _bar(parent: ET.Element, letter: str, share: float, y: float, height: float) -> None:
    svg.element(parent, "rect", x=BAR_X, y=y, width=BAR_WIDTH, height=height, fill=svg.TRACK)
    svg.element(
        parent,
        "rect",
        x=BAR_X,
        y=y,
        width=min(max(share, 0.0), 1.0) * BAR_WIDTH,
        height=height,
        fill=COLOURS[letter],
        class_="bar",
    )


def _legend(root: ET.Element, y: float, versions: tuple[str, str]) -> None:
    group = svg.element(root, "g", class_="legend", font_size=11, fill=svg.INK)
    for index, (letter, version) in enumerate(zip(("A", "B"), versions, strict=True)):
        x = index * 190
        svg.element(group, "rect", x=x, y=y - 10, width=12, height=12, fill=COLOURS[letter])
        svg.element(group, "text", f"{letter}: version {svg.clip(version, 14)}", x=x + 16, y=y)


def side_text(side: Side) -> str:
    if not side.entered:
        return "no entries"
    return (
        f"{fmt.count(side.converted)} of {fmt.count(side.entered)} converted \u00b7 "
        f"{fmt.percent(side.rate)} ({fmt.interval(side.rate_low, side.rate_high)})"
    )


def difference_text(pair: StagePair) -> str:
    if not pair.comparable:
        missing = " and ".join(
            letter for letter, side in (("A", pair.a), ("B", pair.b)) if not side.entered
        )
        return f"B \u2212 A: nothing to compare, no entries in {missing}"
    interval = fmt.points_interval(pair.difference_low, pair.difference_high)
    text = f"B \u2212 A: {fmt.points(pair.difference)} ({interval})"
    if pair.p_value is None:
        return text + " \u00b7 no test possible"
    word = "significant" if pair.significant else "not significant"
    return text + f" \u00b7 p {fmt.p_value(pair.p_value)} \u00b7 {word}"


def _stage_head(parent: ET.Element, pair: StagePair, y: float) -> None:
    head = svg.element(parent, "text", x=0, y=y, font_size=13, fill=svg.INK)
    svg.element(head, "tspan", svg.clip(pair.stage, 30), font_weight="bold")
    if not (pair.in_a and pair.in_b):
        where = "only in A" if pair.in_a else "only in B" if pair.in_b else "older versions"
        svg.element(head, "tspan", f" \u00b7 {where}", fill=svg.MUTED)


def conversion_pairs(pairs: Sequence[StagePair], versions: tuple[str, str]) -> str:
    """Per stage: A's and B's conversion rate with its Wilson interval, and B - A."""
    block = 118
    height = len(pairs) * block + 26
    root = svg.root(
        WIDTH,
        height,
        title="Conversion per stage, version A against version B",
        description="For each stage, the share of each version's entrants who converted with "
        "its 95% Wilson interval, and the difference B minus A with its interval and p-value.",
        class_="compare-conversion",
    )
    for index, pair in enumerate(pairs):
        y = index * block + 16.0
        group = svg.element(root, "g", class_="pair", data_stage=pair.stage)
        _stage_head(group, pair, y)
        for offset, letter, side in ((0, "A", pair.a), (38, "B", pair.b)):
            row = svg.element(group, "g", class_=f"side side-{letter.lower()}")
            top = y + 10 + offset
            _letter(row, letter, top + 12)
            _bar(row, letter, side.rate, top, 14)
            if side.entered:
                svg.element(
                    row,
                    "path",
                    d=svg.whisker(
                        BAR_X + side.rate_low * BAR_WIDTH,
                        BAR_X + side.rate_high * BAR_WIDTH,
                        top + 7,
                    ),
                    stroke=svg.BLACK,
                    stroke_width=1.5,
                    fill="none",
                    class_="interval",
                )
            svg.element(
                row,
                "text",
                side_text(side),
                x=BAR_X,
                y=top + 28,
                font_size=11.5,
                fill=svg.INK,
                class_="side-text",
            )
        significant = bool(pair.significant)
        svg.element(
            group,
            "text",
            difference_text(pair),
            x=0,
            y=y + 96,
            font_size=12,
            font_weight="bold" if significant else None,
            fill=svg.INK,
            class_="difference",
        )
    _legend(root, height - 6, versions)
    return svg.to_string(root)


def exit_pairs(pairs: Sequence[ExitPair], versions: tuple[str, str]) -> str:
    """Per stage and reason: A's and B's leaves as shares of the stage's entrants."""
    block = 50
    stages: list[str] = []
    for pair in pairs:
        if pair.stage not in stages:
            stages.append(pair.stage)
    head = 22
    height = len(pairs) * block + len(stages) * head + 26
    root = svg.root(
        WIDTH,
        height,
        title="Left without converting by reason, version A against version B",
        description="For each stage and reason, how many of each version's entrants left "
        "without converting, and their share of the stage's entrants.",
        class_="compare-exits",
    )
    y = 0.0
    for stage in stages:
        y += head
        svg.element(
            root, "text", svg.clip(stage, 40), x=0, y=y - 6, font_size=13, font_weight="bold"
        )
        for pair in (p for p in pairs if p.stage == stage):
            group = svg.element(
                root, "g", class_="exit-pair", data_stage=stage, data_reason=pair.reason
            )
            words = svg.element(group, "text", x=0, y=y + 12, font_size=12, fill=svg.INK)
            svg.element(words, "tspan", fmt.reason_label(pair.reason), class_="reason-label")
            svg.element(
                words,
                "tspan",
                f": A {fmt.count(pair.a)} ({fmt.percent(pair.a_share)}) \u00b7 "
                f"B {fmt.count(pair.b)} ({fmt.percent(pair.b_share)})",
                class_="counts",
            )
            for offset, letter, share in ((18, "A", pair.a_share), (32, "B", pair.b_share)):
                row = svg.element(group, "g", class_=f"side side-{letter.lower()}")
                _letter(row, letter, y + offset + 10)
                _bar(row, letter, share, y + offset, 10)
            y += block
    _legend(root, height - 6, versions)
    return svg.to_string(root)


def _timing_text(letter: str, side: Side) -> str:
    if side.median_seconds is None:
        return f"{letter}: no one converted"
    return (
        f"{letter}: median {fmt.duration(side.median_seconds)} \u00b7 90% within "
        f"{fmt.duration(side.p90_seconds)}"
    )


def timing_pairs(pairs: Sequence[StagePair], versions: tuple[str, str]) -> str:
    """Per stage: A's and B's median time to convert (bar) and 90th percentile (tick)."""
    block = 90
    height = len(pairs) * block + 26
    longest = max(
        (
            seconds
            for pair in pairs
            for side in (pair.a, pair.b)
            for seconds in (side.median_seconds, side.p90_seconds)
            if seconds is not None
        ),
        default=0.0,
    )
    root = svg.root(
        WIDTH,
        height,
        title="Time to convert per stage, version A against version B",
        description="For each stage and version, the median time from entering the stage to "
        "converting (the bar) and the time within which 90% of the converted did (the tick).",
        class_="compare-timing",
    )
    for index, pair in enumerate(pairs):
        y = index * block + 16.0
        group = svg.element(root, "g", class_="pair", data_stage=pair.stage)
        _stage_head(group, pair, y)
        for offset, letter, side in ((10, "A", pair.a), (42, "B", pair.b)):
            row = svg.element(group, "g", class_=f"side side-{letter.lower()}")
            top = y + offset
            svg.element(
                row,
                "text",
                _timing_text(letter, side),
                x=BAR_X,
                y=top + 10,
                font_size=11.5,
                fill=svg.INK,
                class_="side-text",
            )
            _letter(row, letter, top + 25)
            median = side.median_seconds / longest if longest and side.median_seconds else 0.0
            _bar(row, letter, median, top + 15, 10)
            if longest and side.p90_seconds is not None:
                x = BAR_X + side.p90_seconds / longest * BAR_WIDTH
                svg.element(
                    row,
                    "line",
                    x1=x,
                    y1=top + 12,
                    x2=x,
                    y2=top + 28,
                    stroke=svg.BLACK,
                    stroke_width=2,
                    class_="p90",
                )
    _legend(root, height - 6, versions)
    return svg.to_string(root)
