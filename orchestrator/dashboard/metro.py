"""The journey map, drawn like a metro line: one line, a coloured segment per stage.

The line runs top to bottom (a strip map, as on a platform sign), so labels have the width of
the screen on a laptop and on a phone alike. Along each stage's segment sit its touchpoints
(send steps) as stations: a tick for a touchpoint, a ringed circle (the interchange symbol)
for a key touchpoint. Each stage's header says how many entered, are in it now and
converted; the busiest drop-off is hatched and labelled, so it reads without colour.

Every number carries ``data-live`` with its key (``formatting``), for the live updates.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from . import formatting as fmt
from . import svg
from .board import Board, Stage, Station

WIDTH: Final = 390
LINE_X: Final = 28
TEXT_X: Final = 54
TOP: Final = 12
STAGE_HEADER: Final = 58
DROPOFF_LINE: Final = 18
STATION_ROW: Final = 60
STAGE_GAP: Final = 10
LEGEND: Final = 84
LABEL_CHARS: Final = 38


def _stage_height(stage: Stage) -> int:
    rows = max(len(stage.stations), 1)
    return STAGE_HEADER + (DROPOFF_LINE if stage.dropoff else 0) + rows * STATION_ROW


def _live(parent: ET.Element, key: str, value: str) -> None:
    svg.element(parent, "tspan", value, data_live=key)


def _say(parent: ET.Element, text: str) -> None:
    """Plain text after whatever ``parent`` already holds."""
    inside = list(parent)
    if inside:
        inside[-1].tail = (inside[-1].tail or "") + text
    else:
        parent.text = (parent.text or "") + text


def _header(group: ET.Element, stage: Stage, colour: str, y: int) -> int:
    """The stage's name and numbers; returns where its stations start."""
    svg.element(group, "rect", x=LINE_X - 14, y=y, width=28, height=12, rx=6, fill=colour)
    svg.element(
        group,
        "text",
        svg.clip(stage.name, LABEL_CHARS),
        x=TEXT_X,
        y=y + 11,
        font_size=15,
        font_weight="bold",
        fill=svg.INK,
        class_="stage-name",
    )
    stats = svg.element(group, "text", x=TEXT_X, y=y + 31, font_size=12, fill=svg.INK)
    _say(stats, "entered ")
    _live(stats, fmt.stage_key(stage.name, "entered"), fmt.count(stage.entered))
    _say(stats, " · in now ")
    _live(stats, fmt.stage_key(stage.name, "current"), fmt.count(stage.current))
    _say(stats, " · converted ")
    _live(stats, fmt.stage_key(stage.name, "rate"), fmt.rate(stage.converted, stage.entered))
    below = y + STAGE_HEADER - 10
    if stage.dropoff:
        mark = svg.element(
            group,
            "text",
            x=TEXT_X,
            y=y + 50,
            font_size=12,
            font_weight="bold",
            fill=svg.WARN_TEXT,
            class_="dropoff-label",
        )
        _say(mark, "Busiest drop-off: ")
        _live(mark, fmt.stage_key(stage.name, "dropped"), fmt.count(stage.dropped))
        _say(mark, " left without converting")
        below += DROPOFF_LINE
    return below


def _station(group: ET.Element, station: Station, colour: str, y: int) -> None:
    step = station.step_id
    node = svg.element(
        group,
        "g",
        class_="station key" if station.key else "station",
        data_step=step,
    )
    kind = "key touchpoint" if station.key else "touchpoint"
    svg.element(node, "title", f"{step} ({station.channel}), {kind}")
    if station.key:
        svg.element(
            node, "circle", cx=LINE_X, cy=y, r=9, fill="#ffffff", stroke=svg.BLACK, stroke_width=3
        )
    else:
        svg.element(node, "rect", x=LINE_X, y=y - 3, width=13, height=6, fill=colour)
    label = f"{'↳ ' if station.nested_in else ''}{step} · {station.channel}"
    svg.element(
        node,
        "text",
        svg.clip(label, LABEL_CHARS),
        x=TEXT_X,
        y=y - 10,
        font_size=13,
        font_weight="bold" if station.key else None,
        fill=svg.INK,
        class_="station-name",
    )
    stats = svg.element(node, "text", x=TEXT_X, y=y + 6, font_size=11.5, fill=svg.MUTED)
    _say(stats, "sent ")
    _live(stats, fmt.step_key(step, "sent"), fmt.count(station.sent))
    if station.channel == "email":
        _say(stats, " · opened ")
        _live(stats, fmt.step_key(step, "opened_rate"), fmt.rate(station.opened, station.sent))
    _say(stats, " · clicked ")
    _live(stats, fmt.step_key(step, "clicked_rate"), fmt.rate(station.clicked, station.sent))
    outcome = svg.element(node, "text", x=TEXT_X, y=y + 21, font_size=11.5, fill=svg.INK)
    _say(outcome, "conversions (last touch): ")
    _live(outcome, fmt.step_key(step, "conversions"), fmt.count(station.conversions))
    if station.key:
        _say(outcome, " · key touchpoint")


def _legend(svg_root: ET.Element, y: int) -> None:
    group = svg.element(svg_root, "g", class_="legend", font_size=12, fill=svg.INK)
    svg.element(group, "rect", x=LINE_X, y=y + 7, width=13, height=6, fill=svg.BLUE)
    svg.element(group, "text", "touchpoint (send step)", x=TEXT_X, y=y + 14)
    svg.element(
        group, "circle", cx=LINE_X, cy=y + 32, r=8, fill="#ffffff", stroke=svg.BLACK, stroke_width=3
    )
    svg.element(group, "text", "key touchpoint: most conversions in its stage", x=TEXT_X, y=y + 36)
    svg.element(
        group,
        "rect",
        x=LINE_X - 12,
        y=y + 48,
        width=24,
        height=16,
        fill=f"url(#{svg.HATCH_ID})",
        stroke=svg.VERMILLION,
    )
    label = "busiest drop-off (most left without converting)"
    svg.element(group, "text", label, x=TEXT_X, y=y + 60)


def metro_map(board: Board, *, journey_name: str) -> str:
    """The map of the board's plan stages as an SVG document."""
    stages = [s for s in board.stages if s.in_plan]
    height = TOP + sum(_stage_height(s) + STAGE_GAP for s in stages) + LEGEND
    found = board.dropoff
    touchpoints = sum(len(s.stations) for s in stages)
    summary = f"{len(stages)} stages and {touchpoints} touchpoints"
    summary += (
        f"; busiest drop-off: {found.name}, {fmt.count(found.dropped)} left without converting"
        if found is not None
        else "; no one has left without converting yet"
    )
    root = svg.root(
        WIDTH,
        height,
        title=f"Journey map of {journey_name}",
        description=summary,
        class_="metro",
    )
    svg.hatch_pattern(root)
    y = TOP
    for index, stage in enumerate(stages):
        colour = svg.LINE_COLOURS[index % len(svg.LINE_COLOURS)]
        height_here = _stage_height(stage)
        group = svg.element(
            root,
            "g",
            class_="stage dropoff" if stage.dropoff else "stage",
            data_stage=stage.name,
        )
        if stage.dropoff:
            # A pale ground keeps the labels readable; the hatched strip and the dashed
            # border mark the stage in grey print and for colour-blind readers alike.
            band = svg.element(group, "g", class_="dropoff-band")
            svg.element(
                band,
                "rect",
                x=2,
                y=y - 4,
                width=WIDTH - 4,
                height=height_here + 2,
                rx=6,
                fill=svg.WARN_GROUND,
                stroke=svg.VERMILLION,
                stroke_width=2,
                stroke_dasharray="6 3",
            )
            svg.element(
                band,
                "rect",
                x=4,
                y=y - 2,
                width=12,
                height=height_here - 2,
                fill=f"url(#{svg.HATCH_ID})",
                class_="hatch",
            )
        # The segment: this stage's stretch of the one line, reaching the next stage.
        svg.element(
            group,
            "line",
            x1=LINE_X,
            y1=y + 6,
            x2=LINE_X,
            y2=y + height_here + (STAGE_GAP + 6 if index < len(stages) - 1 else -12),
            stroke=colour,
            stroke_width=8,
            class_="segment",
        )
        row = _header(group, stage, colour, y)
        if not stage.stations:
            svg.element(
                group, "text", "no touchpoints", x=TEXT_X, y=row + 20, font_size=12, fill=svg.MUTED
            )
        for station in stage.stations:
            _station(group, station, colour, row + STATION_ROW // 2)
            row += STATION_ROW
        y += height_here + STAGE_GAP
    _legend(root, y + 8)
    return svg.to_string(root)
