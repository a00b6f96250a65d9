"""Why customers leave, as SVG: per stage, a bar per exit reason, held-out customers apart.

Each bar is a share of the stage's entrants on a 0-100 % track, with its reason and count
written above it, so the bars compare at a glance and nothing depends on colour. Held-out
customers (``entry.holdout``: no messages) leave for reasons of their own, so they are one
hatched row under a dashed rule, never mixed into the treated customers' reasons.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from journeyman.orchestrator.storage.exits import HOLDOUT
from journeyman.orchestrator.storage.funnel import StageFunnel

from . import formatting as fmt
from . import svg

WIDTH: Final = 390
BAR_WIDTH: Final = 370.0
HEADER: Final = 24
ROW: Final = 34
HOLDOUT_PATTERN: Final = "jm-holdout-exits"

# Each reason keeps its colour on every chart; the label beside the bar carries the meaning.
REASON_COLOURS: Final[dict[str, str]] = {
    "timeout": svg.ORANGE,
    "exit_rule": svg.VERMILLION,
    "exit_step": svg.REDDISH_PURPLE,
    "no_goal": svg.SKY_BLUE,
    "goto": svg.BLUISH_GREEN,
    "migration": svg.BLUE,
}
OTHER_COLOUR: Final = svg.MUTED


@dataclass(frozen=True)
class ReasonCount:
    reason: str
    customers: int


@dataclass(frozen=True)
class StageLeaves:
    """One stage's leaves without converting: treated customers by reason, held-out ones apart."""

    stage: str
    entered: int
    in_plan: bool  # False for a stage only older versions had
    reasons: tuple[ReasonCount, ...]
    held_out: int

    @property
    def treated(self) -> int:
        return sum(r.customers for r in self.reasons)

    @property
    def any(self) -> bool:
        return self.treated + self.held_out > 0


def stage_leaves(rows: Sequence[StageFunnel], plan_stages: Sequence[str]) -> list[StageLeaves]:
    """The funnel's ``exits_by_reason`` per stage, its ``holdout`` entry apart."""
    return [
        StageLeaves(
            stage=row.stage,
            entered=row.entered,
            in_plan=row.stage in plan_stages,
            reasons=tuple(
                ReasonCount(reason, count)
                for reason, count in row.exits_by_reason.items()
                if reason != HOLDOUT
            ),
            held_out=row.exits_by_reason.get(HOLDOUT, 0),
        )
        for row in rows
    ]


def _share(count: int, entered: int) -> float:
    # A goto can bring a customer back to leave a stage twice: the bar still ends at 100 %.
    return min(count, entered) / entered if entered else 0.0


def _row(group: ET.Element, label: str, count: int, entered: int, fill: str, y: float) -> None:
    text = svg.element(group, "text", x=0, y=y + 10, font_size=12, fill=svg.INK)
    svg.element(text, "tspan", svg.clip(label, 34), class_="reason-label").tail = ": "
    svg.element(text, "tspan", fmt.count(count), font_weight="bold", class_="reason-count")
    svg.element(text, "tspan", f" \u00b7 {fmt.rate(count, entered)} of entrants", fill=svg.MUTED)
    svg.element(group, "rect", x=0, y=y + 15, width=BAR_WIDTH, height=10, fill=svg.TRACK)
    svg.element(
        group,
        "rect",
        x=0,
        y=y + 15,
        width=_share(count, entered) * BAR_WIDTH,
        height=10,
        fill=fill,
        stroke=svg.BLACK if fill.startswith("url(") else None,
        stroke_width=1 if fill.startswith("url(") else None,
        class_="reason-bar",
    )


def _height(stage: StageLeaves) -> int:
    rows = len(stage.reasons) + (1 if stage.held_out else 0)
    return HEADER + max(rows, 1) * ROW + (6 if stage.held_out else 0) + 8


def exits_chart(stages: Sequence[StageLeaves]) -> str:
    """Per stage: a bar per reason treated customers left for, and held-out leaves apart."""
    height = sum(_height(s) for s in stages) + 4
    treated = sum(s.treated for s in stages)
    held = sum(s.held_out for s in stages)
    root = svg.root(
        WIDTH,
        height,
        title="Left without converting, by reason",
        description=f"{fmt.count(treated)} treated customers left a stage without converting, "
        f"and {fmt.count(held)} held-out customers; each bar is a share of the stage's entrants.",
        class_="exits",
    )
    svg.stripes(root, HOLDOUT_PATTERN, ground="#ffffff", stripe=svg.MUTED)
    y = 0.0
    for stage in stages:
        group = svg.element(root, "g", class_="exit-stage", data_stage=stage.stage)
        head = svg.element(group, "text", x=0, y=y + 16, font_size=13, fill=svg.INK)
        svg.element(head, "tspan", svg.clip(stage.stage, 30), font_weight="bold")
        entered = f" \u00b7 {fmt.count(stage.entered)} entered"
        if not stage.in_plan:
            entered += " (older versions)"
        svg.element(head, "tspan", entered, fill=svg.MUTED)
        row_y = y + HEADER
        if not stage.any:
            svg.element(
                group,
                "text",
                "no one left without converting",
                x=0,
                y=row_y + 14,
                font_size=12,
                fill=svg.MUTED,
            )
        for found in stage.reasons:
            reason = svg.element(group, "g", class_="reason", data_reason=found.reason)
            colour = REASON_COLOURS.get(found.reason, OTHER_COLOUR)
            _row(
                reason,
                fmt.reason_label(found.reason),
                found.customers,
                stage.entered,
                colour,
                row_y,
            )
            row_y += ROW
        if stage.held_out:
            # A dashed rule sets the held-out customers apart from the treated ones' reasons.
            svg.element(
                group,
                "line",
                x1=0,
                y1=row_y + 1,
                x2=BAR_WIDTH,
                y2=row_y + 1,
                stroke=svg.MUTED,
                stroke_dasharray="4 3",
            )
            reason = svg.element(group, "g", class_="reason holdout", data_reason=HOLDOUT)
            fill = f"url(#{HOLDOUT_PATTERN})"
            _row(reason, fmt.reason_label(HOLDOUT), stage.held_out, stage.entered, fill, row_y + 6)
        y += _height(stage)
    return svg.to_string(root)
