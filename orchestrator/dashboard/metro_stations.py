"""The stations of the journey map: send steps with their numbers, observed touchpoints, and
the goal and KPI lines of both.

A send step is a tick on the line, a ringed circle when it is key; an observed touchpoint (a
touchpoint the engine does not send: the website, social media, an event, a store) is a
hollow square. A touchpoint with a declared goal and KPI says them on a line of its own:
``goal: conversion · orders 12 (9 customers)``, on two lines when one would not fit a 390-wide
map. Every number carries ``data-live`` with its key (``formatting``).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable, Sequence
from typing import Final

from . import formatting as fmt
from . import svg
from .board import Measure, Observed, Station

LINE_X: Final = 28
TEXT_X: Final = 54
LABEL_CHARS: Final = 38
STATION_ROW: Final = 60
OBSERVED_ROW: Final = 46  # a name and one line of goal and KPI
MEASURE_LINE: Final = 15  # each line of a goal and KPI
# What fits on one line of small text across a 390-wide map; longer goal and KPI lines wrap
# onto two, and each part is clipped (the whole text is in the station's title).
MEASURE_CHARS: Final = 50
GOAL_CHARS: Final = 40
KPI_CHARS: Final = 24
# Room for numbers to grow while the page is open without running off the map.
NUMBER_SLACK: Final = 2

# Plain text, or a live number: (live key, value).
Part = str | tuple[str, str]
Line = list[Part]
Key = Callable[[str], str]


def measure_lines(measure: Measure, key: Key) -> list[Line]:
    """A touchpoint's goal and KPI in words: ``goal: conversion · orders 12 (9 customers)``,
    on two lines when one would not fit; none when it declares neither."""
    goal = f"goal: {svg.clip(measure.goal, GOAL_CHARS)}" if measure.goal else None
    if measure.kpi is None:
        return [[f"{goal} · no KPI"]] if goal else []
    kpi: Line = [
        f"{'' if goal else 'KPI: '}{svg.clip(measure.kpi, KPI_CHARS)} ",
        (key("kpi_count"), fmt.count(measure.count)),
        " (",
        (key("kpi_customers_text"), fmt.customers(measure.customers)),
        ")",
    ]
    if goal is None:
        return [kpi]
    one: Line = [goal, " · ", *kpi]
    if _length(one) + 2 * NUMBER_SLACK <= MEASURE_CHARS:
        return [one]
    return [[goal], kpi]


def _length(line: Line) -> int:
    return sum(len(part if isinstance(part, str) else part[1]) for part in line)


def _station_lines(station: Station) -> list[Line]:
    return measure_lines(station.measure, fmt.kpi_key(station.step_id, "message"))


def _observed_lines(seen: Observed) -> list[Line]:
    return measure_lines(seen.measure, fmt.kpi_key(seen.touchpoint_id, "observed"))


def station_height(station: Station) -> int:
    """The map's height of a send step's row: its name, two lines of numbers, its goal and KPI."""
    return STATION_ROW + MEASURE_LINE * len(_station_lines(station))


def observed_height(seen: Observed) -> int:
    """The map's height of an observed touchpoint's row: its name, its goal and KPI."""
    return OBSERVED_ROW + MEASURE_LINE * max(len(_observed_lines(seen)) - 1, 0)


def live(parent: ET.Element, key: str, value: str) -> None:
    """A number the live stream updates, after whatever ``parent`` already holds."""
    svg.element(parent, "tspan", value, data_live=key)


def write(parent: ET.Element, line: Line) -> None:
    """A line of text and live numbers."""
    for part in line:
        if isinstance(part, str):
            say(parent, part)
        else:
            live(parent, *part)


def _measure(node: ET.Element, lines: Sequence[Line], y: float) -> None:
    """The goal and KPI lines, the first at ``y``."""
    for index, line in enumerate(lines):
        text = svg.element(
            node,
            "text",
            x=TEXT_X,
            y=y + index * MEASURE_LINE,
            font_size=11.5,
            fill=svg.INK,
            class_="measure",
        )
        write(text, line)


def _described(measure: Measure) -> str:
    """The goal and KPI for a title: what a screen reader and a hover tell in full."""
    said = []
    if measure.goal:
        said.append(f"goal {measure.goal}")
    if measure.kpi is not None:
        said.append(f"KPI {measure.kpi}, counting {measure.kpi_event}")
    return "; ".join(said)


def say(parent: ET.Element, text: str) -> None:
    """Plain text after whatever ``parent`` already holds."""
    inside = list(parent)
    if inside:
        inside[-1].tail = (inside[-1].tail or "") + text
    else:
        parent.text = (parent.text or "") + text


def send_station(group: ET.Element, station: Station, colour: str, y: int) -> None:
    """A send step at ``y``: its mark on the line, its name, its numbers, its goal and KPI."""
    step = station.step_id
    node = svg.element(
        group,
        "g",
        class_="station key" if station.key else "station",
        data_step=step,
    )
    kind = "key touchpoint" if station.key else "touchpoint"
    described = _described(station.measure)
    title = f"{step} ({station.channel}), {kind}" + (f"; {described}" if described else "")
    svg.element(node, "title", title)
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
    say(stats, "sent ")
    live(stats, fmt.step_key(step, "sent"), fmt.count(station.sent))
    if station.channel == "email":
        say(stats, " · opened ")
        live(stats, fmt.step_key(step, "opened_rate"), fmt.rate(station.opened, station.sent))
    say(stats, " · clicked ")
    live(stats, fmt.step_key(step, "clicked_rate"), fmt.rate(station.clicked, station.sent))
    outcome = svg.element(node, "text", x=TEXT_X, y=y + 21, font_size=11.5, fill=svg.INK)
    say(outcome, "conversions (last touch): ")
    live(outcome, fmt.step_key(step, "conversions"), fmt.count(station.conversions))
    if station.key:
        say(outcome, " · key touchpoint")
    _measure(node, _station_lines(station), y + 36)


def observed_mark(parent: ET.Element, y: float, *, class_: str) -> None:
    """The mark of an observed touchpoint: a hollow square centred on the line at ``y``."""
    svg.element(
        parent,
        "rect",
        x=LINE_X - 7,
        y=y - 7,
        width=14,
        height=14,
        fill="#ffffff",
        stroke=svg.INK,
        stroke_width=2.5,
        class_=class_,
    )


def observed_station(group: ET.Element, seen: Observed, y: int) -> None:
    """An observed touchpoint: a hollow square on the line, its name, its goal and KPI."""
    name = seen.touchpoint_id
    node = svg.element(group, "g", class_="station observed", data_observed=name)
    described = _described(seen.measure)
    svg.element(node, "title", f"{name}, observed touchpoint (not sent); {described}")
    observed_mark(node, y, class_="marker")
    svg.element(
        node,
        "text",
        svg.clip(f"{name} · observed", LABEL_CHARS),
        x=TEXT_X,
        y=y - 4,
        font_size=13,
        fill=svg.INK,
        class_="station-name",
    )
    _measure(node, _observed_lines(seen), y + 12)
