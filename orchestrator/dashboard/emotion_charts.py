"""The emotion curve as SVG: average satisfaction across the journey's stages.

The stages run left to right in the journey's order, the average answer on the common 0-10
scale (docs/emotions.md) up the side; each point is labelled with its average and its number
of answers. A stage without answers is a gap in the line, marked "no answers": not a zero.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

from journeyman.orchestrator.storage.satisfaction import EmotionPoint

from . import formatting as fmt
from . import svg

WIDTH: Final = 390
LEFT: Final = 28.0
RIGHT: Final = WIDTH - 6.0
TOP: Final = 48.0
BOTTOM: Final = 188.0
SCALE_TOP: Final = 10.0
CHAR_WIDTH: Final = 6.5  # about, at the labels' 11 px


def x_of(index: int, count: int) -> float:
    slot = (RIGHT - LEFT) / max(count, 1)
    return LEFT + (index + 0.5) * slot


def y_of(average: float) -> float:
    clamped = min(max(average, 0.0), SCALE_TOP)
    return BOTTOM - clamped / SCALE_TOP * (BOTTOM - TOP)


def _path(points: Sequence[EmotionPoint]) -> str:
    """The line through the stages with answers, broken where a stage has none."""
    parts: list[str] = []
    joined = False
    for index, point in enumerate(points):
        if point.average is None:
            joined = False
            continue
        command = "L" if joined else "M"
        parts.append(f"{command}{x_of(index, len(points)):.1f} {y_of(point.average):.1f}")
        joined = True
    return "".join(parts)


def _answers(count: int) -> str:
    return f"{fmt.count(count)} answer{'' if count == 1 else 's'}"


def _summary(points: Sequence[EmotionPoint]) -> str:
    said = [
        f"{p.stage} {fmt.score(p.average)} ({_answers(p.answers)})"
        if p.average is not None
        else f"{p.stage} no answers"
        for p in points
    ]
    return "Average satisfaction from 0 to 10 per stage: " + "; ".join(said) + "."


def emotion_curve(points: Sequence[EmotionPoint]) -> str:
    """The curve over ``points``: one per stage, in the journey's order."""
    count = len(points)
    slot = (RIGHT - LEFT) / max(count, 1)
    # Names alternate between two lines when the slots are too narrow for them side by side.
    staggered = slot < 90
    root = svg.root(
        WIDTH,
        BOTTOM + (36 if staggered else 22),
        title="Emotion curve: how customers feel along the journey",
        description=_summary(points),
        class_="emotions",
    )
    svg.element(
        root,
        "text",
        "average answer, 0 (least satisfied) to 10 (most)",
        x=0,
        y=14,
        font_size=11,
        fill=svg.MUTED,
    )
    grid = svg.element(root, "g", class_="grid", font_size=10, fill=svg.MUTED)
    for value in (0.0, 2.5, 5.0, 7.5, 10.0):
        y = y_of(value)
        svg.element(grid, "line", x1=LEFT, y1=y, x2=RIGHT, y2=y, stroke=svg.TRACK)
        if value in (0.0, 5.0, 10.0):
            svg.element(grid, "text", f"{value:g}", x=LEFT - 6, y=y + 3, text_anchor="end")
    path = _path(points)
    if path:
        svg.element(
            root,
            "path",
            d=path,
            fill="none",
            stroke=svg.BLUE,
            stroke_width=2.5,
            stroke_linejoin="round",
            class_="curve",
        )
    chars = max(6, int((slot * (2 if staggered else 1) - 6) / CHAR_WIDTH))
    for index, point in enumerate(points):
        x = x_of(index, count)
        name = point.stage or ""
        group = svg.element(root, "g", class_="stage-point", data_stage=name)
        label_y = BOTTOM + 16 + (14 if staggered and index % 2 else 0)
        svg.element(
            group,
            "text",
            svg.clip(name, chars),
            x=x,
            y=label_y,
            font_size=11,
            fill=svg.INK,
            text_anchor="middle",
            class_="stage-label",
        )
        if point.average is None:
            svg.element(group, "title", f"{name}: no answers yet")
            svg.element(
                group,
                "text",
                "no answers",
                x=x,
                y=BOTTOM - 6,
                font_size=10,
                fill=svg.MUTED,
                text_anchor="middle",
                class_="no-answers",
            )
            continue
        y = y_of(point.average)
        average, answers = fmt.score(point.average), fmt.count(point.answers)
        svg.element(group, "title", f"{name}: average {average} from {_answers(point.answers)}")
        svg.element(
            group,
            "circle",
            cx=x,
            cy=y,
            r=5.5,
            fill=svg.BLUE,
            stroke="#ffffff",
            stroke_width=2,
            class_="point",
        )
        svg.element(
            group,
            "text",
            average,
            x=x,
            y=y - 22,
            font_size=13,
            font_weight="bold",
            fill=svg.INK,
            text_anchor="middle",
            class_="average",
        )
        svg.element(
            group,
            "text",
            f"n={answers}",
            x=x,
            y=y - 9,
            font_size=10,
            fill=svg.MUTED,
            text_anchor="middle",
            class_="answers",
        )
    return svg.to_string(root)
