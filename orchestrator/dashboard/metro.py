"""The journey map, drawn like a metro line: one line, a coloured segment per stage.

The line runs top to bottom (a strip map, as on a platform sign), so labels have the width of
the screen on a laptop and on a phone alike. Along each stage's segment sit its touchpoints
as stations (``metro_stations``): first the touchpoints the engine does not send but
measures (``observe``: the website, social media, an event, a store) as hollow squares, then
its send steps, a tick for a touchpoint and a ringed circle (the interchange symbol) for a
key touchpoint, each with its goal and KPI when the journey declares them. Each stage's
header says how many entered, are in it now and converted; the busiest drop-off is hatched
and labelled, so it reads without colour.

Every number carries ``data-live`` with its key (``formatting``), for the live updates.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

from . import formatting as fmt
from . import metro_stations as stations
from . import svg
from .board import Board, Stage
from .metro_stations import LABEL_CHARS as LABEL_CHARS
from .metro_stations import LINE_X as LINE_X
from .metro_stations import TEXT_X as TEXT_X
from .metro_stations import live, say

WIDTH: Final = 390
TOP: Final = 12
STAGE_HEADER: Final = 58
DROPOFF_LINE: Final = 18
EMPTY_ROW: Final = 60
STAGE_GAP: Final = 10
LEGEND: Final = 106


def _stage_height(stage: Stage) -> int:
    rows = sum(stations.observed_height(o) for o in stage.observed)
    rows += sum(stations.station_height(s) for s in stage.stations)
    return STAGE_HEADER + (DROPOFF_LINE if stage.dropoff else 0) + (rows or EMPTY_ROW)


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
    say(stats, "entered ")
    live(stats, fmt.stage_key(stage.name, "entered"), fmt.count(stage.entered))
    say(stats, " · in now ")
    live(stats, fmt.stage_key(stage.name, "current"), fmt.count(stage.current))
    say(stats, " · converted ")
    live(stats, fmt.stage_key(stage.name, "rate"), fmt.rate(stage.converted, stage.entered))
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
        say(mark, "Busiest drop-off: ")
        live(mark, fmt.stage_key(stage.name, "dropped"), fmt.count(stage.dropped))
        say(mark, " left without converting")
        below += DROPOFF_LINE
    return below


def _legend(svg_root: ET.Element, y: int) -> None:
    group = svg.element(svg_root, "g", class_="legend", font_size=12, fill=svg.INK)
    svg.element(group, "rect", x=LINE_X, y=y + 7, width=13, height=6, fill=svg.BLUE)
    svg.element(group, "text", "touchpoint (send step)", x=TEXT_X, y=y + 14)
    svg.element(
        group, "circle", cx=LINE_X, cy=y + 32, r=8, fill="#ffffff", stroke=svg.BLACK, stroke_width=3
    )
    svg.element(group, "text", "key touchpoint: most conversions in its stage", x=TEXT_X, y=y + 36)
    stations.observed_mark(group, y + 54, class_="observed-key")
    svg.element(group, "text", "observed touchpoint: measured, not sent", x=TEXT_X, y=y + 58)
    svg.element(
        group,
        "rect",
        x=LINE_X - 12,
        y=y + 70,
        width=24,
        height=16,
        fill=f"url(#{svg.HATCH_ID})",
        stroke=svg.VERMILLION,
    )
    label = "busiest drop-off (most left without converting)"
    svg.element(group, "text", label, x=TEXT_X, y=y + 82)


def metro_map(board: Board, *, journey_name: str) -> str:
    """The map of the board's plan stages as an SVG document."""
    stages = [s for s in board.stages if s.in_plan]
    height = TOP + sum(_stage_height(s) + STAGE_GAP for s in stages) + LEGEND
    found = board.dropoff
    observed = sum(len(s.observed) for s in stages)
    touchpoints = sum(len(s.stations) for s in stages) + observed
    summary = f"{len(stages)} stages and {touchpoints} touchpoints"
    summary += f" ({observed} observed, not sent)" if observed else ""
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
        if not stage.stations and not stage.observed:
            svg.element(
                group, "text", "no touchpoints", x=TEXT_X, y=row + 20, font_size=12, fill=svg.MUTED
            )
        for seen in stage.observed:
            stations.observed_station(group, seen, row + 22)
            row += stations.observed_height(seen)
        for station in stage.stations:
            stations.send_station(group, station, colour, row + stations.STATION_ROW // 2)
            row += stations.station_height(station)
        y += height_here + STAGE_GAP
    _legend(root, y + 8)
    return svg.to_string(root)
