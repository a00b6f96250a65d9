"""Experiment and holdout results as SVG: each group's conversion rate with its Wilson interval.

One row per group (an experiment's variants, or the treated and held-out customers): the rate
as a bar, its 95 % interval as a whisker, the counts and the comparison with the baseline (the
control, or the held-out customers) in words. The baseline's rate is a dashed line down the
chart, labelled, so every other bar is read against it; the baseline's own row says so too.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from journeyman.orchestrator.storage.experiment_reports import Comparison, Rate

from . import formatting as fmt
from . import svg

WIDTH: Final = 390
BAR_WIDTH: Final = 370.0
TOP: Final = 26
ROW: Final = 88  # a compared group's row; the baseline's has no comparison lines
BASELINE_ROW: Final = 58
# Scale ends: the smallest that holds every interval, so low rates are not squeezed flat.
CEILINGS: Final = (0.05, 0.1, 0.2, 0.25, 0.5, 1.0)


@dataclass(frozen=True)
class Group:
    """A variant, or the treated or held-out customers, with its rate and its comparison."""

    name: str
    baseline: bool  # the control, or the held-out customers
    rate: Rate
    versus: Comparison | None  # None for the baseline itself
    winner: bool = False


def verdict(versus: Comparison | None, baseline: str) -> str:
    """The comparison in words: significant or not, and which way."""
    if versus is None or versus.significant is None or versus.difference is None:
        return "no test possible yet"
    if not versus.significant:
        return f"not significant: no clear difference from {baseline} yet"
    return f"significantly {'better' if versus.difference > 0 else 'worse'} than {baseline}"


def ceiling(groups: Sequence[Group]) -> float:
    """The scale's end: the first of ``CEILINGS`` at or above every interval's high end."""
    highest = max((g.rate.rate_high for g in groups if g.rate.entrants), default=0.0)
    return next(c for c in CEILINGS if highest <= c + 1e-9)


def counts_text(rate: Rate) -> str:
    text = f"{fmt.count(rate.conversions)} of {fmt.count(rate.entrants)} converted"
    if rate.pending:
        text += f" \u00b7 {fmt.count(rate.pending)} pending"
    return text


def rate_text(rate: Rate) -> str:
    if not rate.entrants:
        return "no entrants with a known outcome yet"
    interval = fmt.interval(rate.rate_low, rate.rate_high)
    return f"{fmt.share(rate.rate)} \u00b7 95% interval {interval}"


def versus_text(versus: Comparison | None, baseline: str) -> str:
    """The difference from the baseline with its interval and p-value."""
    if versus is None or versus.difference is None:
        return f"no difference to show: {baseline} or this group has no entrants yet"
    return (
        f"{fmt.points(versus.difference)} vs {baseline} "
        f"({fmt.points_interval(versus.difference_low, versus.difference_high)}) \u00b7 "
        f"p {fmt.p_value(versus.p_value)}"
    )


def rates_chart(
    groups: Sequence[Group],
    *,
    title: str,
    description: str,
    baseline: str,
    baseline_tag: str,
    class_: str,
) -> str:
    """Each group's rate, interval and comparison. ``baseline`` names the baseline in a
    comparison (``the control``, ``held out``), ``baseline_tag`` marks its row (``control``)."""
    top = ceiling(groups)
    scale = BAR_WIDTH / top
    height = TOP + sum(BASELINE_ROW if g.baseline else ROW for g in groups) + 18
    root = svg.root(WIDTH, height, title=title, description=description, class_=class_)
    base = next((g for g in groups if g.baseline), None)
    base_x = (
        base.rate.rate * scale
        if base is not None and base.rate.entrants and base.rate.rate is not None
        else None
    )
    y = float(TOP)
    for group in groups:
        row = svg.element(
            root,
            "g",
            class_="group baseline" if group.baseline else "group",
            data_group=group.name,
        )
        name = svg.element(row, "text", x=0, y=y + 12, font_size=13, fill=svg.INK)
        svg.element(name, "tspan", svg.clip(group.name, 24), font_weight="bold")
        if group.baseline:
            svg.element(name, "tspan", f" \u00b7 {baseline_tag}", class_="tag")
        if group.winner:
            svg.element(name, "tspan", " \u00b7 winner", font_weight="bold", class_="tag")
        svg.element(name, "tspan", " \u00b7 " + counts_text(group.rate), fill=svg.MUTED)
        svg.element(row, "rect", x=0, y=y + 18, width=BAR_WIDTH, height=14, fill=svg.TRACK)
        if group.rate.entrants:
            svg.element(
                row,
                "rect",
                x=0,
                y=y + 18,
                width=(group.rate.rate or 0.0) * scale,
                height=14,
                fill=svg.SKY_BLUE if group.baseline else svg.BLUE,
                class_="rate-bar",
            )
            svg.element(
                row,
                "path",
                d=svg.whisker(group.rate.rate_low * scale, group.rate.rate_high * scale, y + 25),
                stroke=svg.BLACK,
                stroke_width=1.5,
                fill="none",
                class_="interval",
            )
        if base_x is not None:
            # The baseline's rate across each bar, to read every other rate against.
            svg.element(
                row,
                "line",
                x1=base_x,
                y1=y + 15,
                x2=base_x,
                y2=y + 35,
                stroke=svg.BLACK,
                stroke_width=1.5,
                stroke_dasharray="3 2",
                class_="baseline-rate",
            )
        svg.element(
            row,
            "text",
            rate_text(group.rate),
            x=0,
            y=y + 48,
            font_size=12,
            fill=svg.INK,
            class_="rate-text",
        )
        if not group.baseline:
            svg.element(
                row,
                "text",
                versus_text(group.versus, baseline),
                x=0,
                y=y + 63,
                font_size=11.5,
                fill=svg.INK,
                class_="versus",
            )
            significant = group.versus is not None and bool(group.versus.significant)
            svg.element(
                row,
                "text",
                verdict(group.versus, baseline),
                x=0,
                y=y + 78,
                font_size=11.5,
                font_weight="bold" if significant else None,
                fill=svg.INK if significant else svg.MUTED,
                class_="verdict",
            )
        y += BASELINE_ROW if group.baseline else ROW
    if base is not None and base_x is not None:
        x = base_x
        label = f"{baseline_tag}: {fmt.share(base.rate.rate)}"
        anchor = "end" if x > BAR_WIDTH / 2 else "start"
        svg.element(
            root,
            "text",
            label,
            x=x,
            y=TOP - 10,
            font_size=11,
            fill=svg.INK,
            text_anchor=anchor,
            class_="baseline-label",
        )
    axis = svg.element(root, "g", class_="axis", font_size=11, fill=svg.MUTED)
    for share, anchor in ((0.0, "start"), (0.5, "middle"), (1.0, "end")):
        label = f"{share * top * 100:g}%"
        svg.element(axis, "text", label, x=share * BAR_WIDTH, y=height - 4, text_anchor=anchor)
    return svg.to_string(root)
