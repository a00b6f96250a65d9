"""The map and the charts, parsed back as XML: shapes, labels and live keys where they belong."""

from __future__ import annotations

import itertools
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta

import pytest

from journeyman.orchestrator.dashboard import board as boards
from journeyman.orchestrator.dashboard import charts, metro, readings, time_charts
from journeyman.orchestrator.dashboard import formatting as fmt
from journeyman.orchestrator.dashboard.svg import HATCH_ID, SVG_NS
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.proportions import wilson
from journeyman.orchestrator.storage.funnel import StageFunnel
from journeyman.orchestrator.storage.stage_reports import StageTiming, TrendPoint
from journeyman.orchestrator.storage.touchpoint_report import TouchpointKpis
from journeyman.workflows.plan import Plan

from .seed import JOURNEY

NS = {"s": SVG_NS}


def plan() -> Plan:
    return compile_source(JOURNEY, source="seed")


def stage_row(name: str, entered: int, converted: int, exited: int = 0, moved_on: int = 0,
              goal: int = 0) -> StageFunnel:  # fmt: skip
    current = entered - converted - exited - moved_on - goal
    rate = round(converted / entered, 4) if entered else 0.0
    return StageFunnel(name, entered, current, converted, rate, moved_on, exited, goal)


def touch(step: str, stage: str | None, channel: str, *, sent: int = 0, opened: int = 0,
          clicked: int = 0, conversions: int = 0) -> TouchpointKpis:  # fmt: skip
    return TouchpointKpis(
        step, stage, channel, sent, sent, sent, opened, clicked, 0, 0, 0, 0, 0, 0, 0, 0,
        conversions,
    )  # fmt: skip


FUNNEL = [
    stage_row("awareness", 200, 120, exited=30, moved_on=10),
    stage_row("consideration", 120, 40, exited=60),
    stage_row("purchase", 40, 0, goal=25),
]
TOUCHPOINTS = [
    touch("welcome", "awareness", "email", sent=200, opened=90, clicked=30, conversions=2),
    touch("tips", "awareness", "sms", sent=150, clicked=12, conversions=5),
    touch("comparison", "consideration", "email", sent=120, opened=60, conversions=9),
    touch("vip-offer", "consideration", "email", sent=10, conversions=9),
    touch("sample-kit", "consideration", "email", sent=40, conversions=1),
    touch("thanks", "purchase", "email", sent=40),
]


def parse(text: str) -> ET.Element:
    root = ET.fromstring(text)
    assert root.tag == f"{{{SVG_NS}}}svg"
    assert root.get("role") == "img"
    assert root.find("s:title", NS) is not None and root.find("s:desc", NS) is not None
    return root


def one(node: ET.Element, path: str) -> ET.Element:
    found = node.find(path, NS)
    assert found is not None, path
    return found


def words(node: ET.Element) -> str:
    return "".join(node.itertext())


def live_values(root: ET.Element) -> dict[str, str]:
    """Each live key's shown value: an attribute's when the element names one, else its text."""
    found: dict[str, str] = {}
    for node in root.iter():
        key = node.get("data-live")
        if key is None:
            continue
        attribute = node.get("data-live-attr")
        found[key] = node.get(attribute, "") if attribute else words(node)
    return found


@pytest.fixture
def board() -> boards.Board:
    return boards.build(plan(), FUNNEL, TOUCHPOINTS)


def test_the_board_marks_the_drop_off_and_key_stations(board: boards.Board) -> None:
    assert [s.name for s in board.stages] == ["awareness", "consideration", "purchase"]
    assert [s.dropped for s in board.stages] == [40, 60, 0]
    assert board.dropoff is not None and board.dropoff.name == "consideration"
    keys = {st.step_id for s in board.stages for st in s.stations if st.key}
    # Ties for the most conversions are all key; a stage with none has no key station.
    assert keys == {"tips", "comparison", "vip-offer"}
    assert board.totals == boards.Totals(entered=200, current=40 + 20 + 15, converted=25)
    [consideration] = [s for s in board.stages if s.name == "consideration"]
    assert [(st.step_id, st.nested_in) for st in consideration.stations] == [
        ("comparison", None),
        ("vip-offer", "hesitating"),
        ("sample-kit", "hesitating"),
    ]


def test_no_drop_off_and_no_key_station_before_anyone_leaves() -> None:
    quiet = boards.build(plan(), [stage_row("awareness", 3, 0)], [])
    assert quiet.dropoff is None
    assert not any(st.key for s in quiet.stages for st in s.stations)
    text = metro.metro_map(quiet, journey_name="Spring")
    root = parse(text)
    assert root.find(".//s:g[@class='stage dropoff']", NS) is None
    assert "no one has left without converting yet" in words(one(root, "s:desc"))


def test_the_metro_map_draws_one_line_with_a_segment_per_stage(board: boards.Board) -> None:
    root = parse(metro.metro_map(board, journey_name="Spring campaign"))
    assert words(one(root, "s:title")) == "Journey map of Spring campaign"
    stages = root.findall("s:g[@data-stage]", NS)
    assert [g.get("data-stage") for g in stages] == ["awareness", "consideration", "purchase"]
    segments = [g.find("s:line[@class='segment']", NS) for g in stages]
    assert all(s is not None for s in segments)
    xs = {s.get("x1") for s in segments if s is not None} | {
        s.get("x2") for s in segments if s is not None
    }
    assert len(xs) == 1, "one straight line"
    # Each segment starts where the one before it ends (or overlaps it): one unbroken line.
    ends = [(float(s.get("y1", 0)), float(s.get("y2", 0))) for s in segments if s is not None]
    for (_, end), (start, _) in itertools.pairwise(ends):
        assert start <= end
    # A colour per stage, each a different one.
    assert len({s.get("stroke") for s in segments if s is not None}) == 3


def test_stations_are_the_send_steps_with_key_ones_circled(board: boards.Board) -> None:
    root = parse(metro.metro_map(board, journey_name="Spring"))
    stations = root.findall(".//s:g[@data-step]", NS)
    assert [g.get("data-step") for g in stations] == [
        "welcome",
        "tips",
        "comparison",
        "vip-offer",
        "sample-kit",
        "thanks",
    ]
    for station in stations:
        key = station.get("data-step") in {"tips", "comparison", "vip-offer"}
        assert (station.get("class") == "station key") is key
        # A circle for a key station, a tick for any other: the shape says it, not a colour.
        assert (station.find("s:circle", NS) is not None) is key
        assert (station.find("s:rect", NS) is not None) is not key
    by_step = {g.get("data-step"): words(g) for g in stations}
    assert "welcome · email" in by_step["welcome"]
    assert "sent 200 · opened 45.0% · clicked 15.0%" in by_step["welcome"]
    assert "conversions (last touch): 2" in by_step["welcome"]
    # No open rate for a channel without opens; nested steps are marked as such.
    assert "opened" not in by_step["tips"] and "sent 150 · clicked 8.0%" in by_step["tips"]
    names = {g.get("data-step"): words(one(g, "s:text[@class='station-name']")) for g in stations}
    assert names["vip-offer"] == "↳ vip-offer · email"
    assert names["comparison"] == "comparison · email"
    assert one(stations[2], "s:title").text == "comparison (email), key touchpoint"
    assert "key touchpoint" in by_step["comparison"]


def test_each_stage_shows_entered_in_now_and_conversion(board: boards.Board) -> None:
    root = parse(metro.metro_map(board, journey_name="Spring"))
    awareness = root.find("s:g[@data-stage='awareness']", NS)
    assert awareness is not None
    assert "entered 200 · in now 40 · converted 60.0%" in words(awareness)
    values = live_values(root)
    assert values[fmt.stage_key("awareness", "entered")] == "200"
    assert values[fmt.stage_key("awareness", "current")] == "40"
    assert values[fmt.stage_key("consideration", "rate")] == "33.3%"
    assert values[fmt.step_key("comparison", "conversions")] == "9"


def test_the_busiest_drop_off_is_hatched_and_labelled(board: boards.Board) -> None:
    root = parse(metro.metro_map(board, journey_name="Spring"))
    assert root.find(f".//s:pattern[@id='{HATCH_ID}']", NS) is not None
    marked = root.findall(".//s:g[@class='stage dropoff']", NS)
    assert [g.get("data-stage") for g in marked] == ["consideration"]
    [stage] = marked
    band = stage.find("s:g[@class='dropoff-band']", NS)
    assert band is not None
    hatch = band.find("s:rect[@class='hatch']", NS)
    assert hatch is not None and hatch.get("fill") == f"url(#{HATCH_ID})"
    label = stage.find("s:text[@class='dropoff-label']", NS)
    assert label is not None
    assert words(label) == "Busiest drop-off: 60 left without converting"
    # Only that stage carries the mark.
    assert len(root.findall(".//s:text[@class='dropoff-label']", NS)) == 1
    assert "busiest drop-off: consideration, 60 left" in words(one(root, "s:desc"))


def test_labels_are_escaped_and_long_ones_clipped() -> None:
    source = JOURNEY.replace("id: welcome", "id: welcome-to-our-spring-collection-of-night-creams")
    odd = compile_source(source, source="odd")
    text = metro.metro_map(
        boards.build(odd, [stage_row("awareness", 1, 0)], []), journey_name="<Spring & co>"
    )
    root = parse(text)  # would raise on unescaped markup
    assert words(one(root, "s:title")) == "Journey map of <Spring & co>"
    [first] = root.findall(".//s:g[@data-step]", NS)[:1]
    name = first.find("s:text[@class='station-name']", NS)
    assert name is not None and words(name).endswith("…")
    assert len(words(name)) == metro.LABEL_CHARS


def test_the_funnel_draws_rates_with_wilson_intervals(board: boards.Board) -> None:
    root = parse(charts.funnel_chart(board))
    groups = root.findall("s:g[@class='funnel-stage']", NS)
    assert [g.get("data-stage") for g in groups] == ["awareness", "consideration", "purchase"]
    for group, row in zip(groups, FUNNEL, strict=True):
        bar = group.find("s:rect[@class='rate-bar']", NS)
        assert bar is not None
        expected = row.converted / row.entered * charts.BAR_WIDTH
        assert float(bar.get("width", "")) == pytest.approx(expected, abs=0.06)
        low, high = wilson(row.converted, row.entered)
        whisker = group.find("s:path[@class='interval']", NS)
        assert whisker is not None
        d = whisker.get("d", "")
        assert d.startswith(f"M{low * charts.BAR_WIDTH:.1f} ")
        assert f"H{high * charts.BAR_WIDTH:.1f}" in d
        text = words(group)
        assert f"{row.converted} of {row.entered} converted" in text
        assert f"95% interval {low * 100:.1f}\u2013{high * 100:.1f}%" in text
    assert "busiest drop-off" in words(groups[1])
    assert "busiest drop-off" not in words(groups[0])
    # The bars' geometry is live too, with the same values the stream sends.
    assert {k: v for k, v in live_values(root).items() if k.startswith("funnel:")} == (
        charts.funnel_numbers(board)
    )


def test_a_stage_without_entries_has_the_whole_scale_as_its_interval() -> None:
    empty = boards.build(plan(), [stage_row("awareness", 0, 0)], [])
    root = parse(charts.funnel_chart(empty))
    group = root.find("s:g[@class='funnel-stage']", NS)
    assert group is not None
    assert "no entries yet" in words(group)
    whisker = group.find("s:path[@class='interval']", NS)
    assert whisker is not None and whisker.get("d", "").startswith(
        f"M0.0 29.0H{charts.BAR_WIDTH:.1f}"
    )


def test_trends_draw_entries_as_bars_and_conversions_as_a_line() -> None:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    points = [
        TrendPoint(start + timedelta(days=i), entered, converted)
        for i, (entered, converted) in enumerate([(4, 0), (10, 3), (0, 0), (7, 7)])
    ]
    root = parse(time_charts.trends_chart(points, bucket="day"))
    bars = root.findall("s:g[@class='entries']/s:rect", NS)
    assert len(bars) == 4
    heights = [float(b.get("height", "")) for b in bars]
    assert heights[2] == 0 and heights[1] == max(heights)
    assert heights[0] / heights[1] == pytest.approx(0.4)
    assert [words(one(b, "s:title")) for b in bars][1] == "Mar 02: 10 entered, 3 converted"
    line = root.find("s:polyline[@class='conversion-line']", NS)
    assert line is not None and len(line.get("points", "").split()) == 4
    markers = root.findall("s:g[@class='conversions']/s:rect", NS)
    assert len(markers) == 4  # square markers: the line reads without its colour
    legend = words(one(root, "s:g[@class='legend']"))
    assert "entries (21)" in legend and "conversions (10)" in legend
    axis = [words(t) for t in root.findall("s:g[@class='x-axis']/s:text", NS)]
    assert axis == ["Mar 01", "Mar 03", "Mar 04"]


def test_an_empty_trend_still_draws_its_axes() -> None:
    root = parse(time_charts.trends_chart([], bucket="hour"))
    assert root.findall("s:g[@class='entries']/s:rect", NS) == []
    assert words(one(root, "s:title")) == "Entries and conversions per hour"


def test_time_to_convert_shows_median_bars_and_p90_ticks() -> None:
    rows = [
        StageTiming("awareness", 10, 6, 3600.0, 7200.0, 6, 0, 1, 1, 0, 2),
        StageTiming("consideration", 6, 0, None, None, 0, 0, 0, 2, 0, 4),
    ]
    root = parse(time_charts.timing_chart(rows))
    awareness = root.find("s:g[@data-stage='awareness']", NS)
    assert awareness is not None
    median = awareness.find("s:rect[@class='median']", NS)
    tick = awareness.find("s:line[@class='p90']", NS)
    assert median is not None and tick is not None
    assert float(median.get("width", "")) == pytest.approx(time_charts.BAR_WIDTH / 2)
    assert float(tick.get("x1", "")) == pytest.approx(time_charts.BAR_WIDTH)
    assert "median 1h · 90% within 2h · 6 converted" in words(awareness)
    consideration = root.find("s:g[@data-stage='consideration']", NS)
    assert consideration is not None
    assert "no one converted yet" in words(consideration)
    assert consideration.find("s:rect[@class='median']", NS) is None


def test_the_rate_bar_fills_its_share() -> None:
    root = parse(charts.rate_bar(1, 4))
    fill = root.find("s:rect[@class='rate-fill']", NS)
    assert fill is not None and float(fill.get("width", "")) == 25
    assert words(one(root, "s:title")) == "Converted: 25.0%"
    assert one(parse(charts.rate_bar(0, 0)), "s:rect[@class='rate-fill']").get("width") == "0"


def test_every_live_key_on_the_map_and_funnel_has_a_value_in_the_page_numbers(
    board: boards.Board,
) -> None:
    numbers = readings.page_numbers(board, "active")
    for text in (metro.metro_map(board, journey_name="Spring"), charts.funnel_chart(board)):
        for key, shown in live_values(parse(text)).items():
            assert numbers[key] == shown, key
    assert (
        numbers[fmt.LAYOUT_KEY] == f"{board.version}|consideration|tips,comparison,vip-offer|active"
    )


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "\u2013"), (12.4, "12s"), (60, "1m"), (3660, "1h 1m"), (7200, "2h"),
     (90000, "1d 1h"), (86400 * 3, "3d")],
)  # fmt: skip
def test_durations_read_in_two_units_at_most(seconds: float | None, text: str) -> None:
    assert fmt.duration(seconds) == text


def test_rates_and_counts_read_the_same_everywhere() -> None:
    assert fmt.count(1234567) == "1,234,567"
    assert fmt.rate(1, 3) == "33.3%"
    assert fmt.rate(0, 0) == "\u2013"
