"""Goals and KPIs on the journey map and in the touchpoints table: observed touchpoints as
stations of their own shape, send steps with their goal and KPI, numbers equal to the
touchpoints API's, kept current by the live stream."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET

import httpx
import pytest

from journeyman.orchestrator.dashboard import board as boards
from journeyman.orchestrator.dashboard import formatting as fmt
from journeyman.orchestrator.dashboard import metro, metro_stations, readings
from journeyman.orchestrator.dashboard.svg import SVG_NS
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage.funnel import StageFunnel
from journeyman.orchestrator.storage.kpis import TouchpointKind
from journeyman.orchestrator.storage.touchpoint_report import TouchpointKpis

from . import kpi_seed
from .conftest import WRITE_KEY, Dash, served
from .html import live_values, svg, table
from .kpi_seed import EXPECTED, JOURNEY, JOURNEY_ID, OBSERVED
from .seed import message
from .test_live import Events

NS = {"s": SVG_NS}


def touch(
    touchpoint: str,
    stage: str,
    kind: TouchpointKind,
    *,
    goal: str | None = None,
    kpi: str | None = None,
    counted: tuple[int, int] | None = None,
    sent: int = 0,
) -> TouchpointKpis:
    """A row of the touchpoints report."""
    count, customers = counted if counted is not None else (None, None)
    return TouchpointKpis(
        step_id=touchpoint, stage=stage, channel="email" if kind == "message" else None,
        total=sent, sent=sent, delivered=sent, opened=0, clicked=0, unsubscribed=0, failed=0,
        bounced=0, complained=0, suppressed=0, suppressed_rule=0, skipped=0, capped=0,
        conversions=0, kind=kind, goal=goal, kpi=kpi, kpi_event=None, kpi_count=count,
        kpi_customers=customers,
    )  # fmt: skip


FUNNEL = [
    StageFunnel("awareness", 5, 2, 3, 0.6, 0, 0, 0),
    StageFunnel("purchase", 3, 3, 0, 0.0, 0, 0, 0),
]
ROWS = [
    touch("website", "awareness", "observed", goal="traffic", kpi="visits", counted=(1234, 56)),
    touch("launch-event", "awareness", "observed", goal="awareness", kpi="attendees",
          counted=(1, 1)),
    touch("invite", "awareness", "message", goal="awareness", sent=5),
    touch("offer", "purchase", "message", goal="conversion", kpi="orders", counted=(12, 9),
          sent=3),
]  # fmt: skip


def words(node: ET.Element) -> str:
    return "".join(node.itertext())


def one(node: ET.Element, path: str) -> ET.Element:
    found = node.find(path, NS)
    assert found is not None, path
    return found


def measures(node: ET.Element) -> list[str]:
    return [words(t) for t in node.findall("s:text[@class='measure']", NS)]


def drawn(board: boards.Board) -> ET.Element:
    return ET.fromstring(metro.metro_map(board, journey_name="Night-repair launch"))


@pytest.fixture
def board() -> boards.Board:
    return boards.build(compile_source(JOURNEY, source="launch"), FUNNEL, ROWS)


def test_observed_touchpoints_are_hollow_squares_in_their_stage(board: boards.Board) -> None:
    root = drawn(board)
    awareness = root.find("s:g[@data-stage='awareness']", NS)
    assert awareness is not None
    found = awareness.findall("s:g[@class='station observed']", NS)
    assert [g.get("data-observed") for g in found] == OBSERVED
    line = awareness.find("s:line[@class='segment']", NS)
    assert line is not None
    top, bottom = float(line.get("y1", "")), float(line.get("y2", ""))
    for station in found:
        # A hollow square centred on the line: a shape of its own, not a colour.
        assert station.find("s:circle", NS) is None
        [marker] = station.findall("s:rect", NS)
        assert marker.get("class") == "marker"
        width, height = float(marker.get("width", "")), float(marker.get("height", ""))
        assert width == height
        assert float(marker.get("x", "")) + width / 2 == metro_stations.LINE_X
        assert marker.get("fill") == "#ffffff" and marker.get("stroke") is not None
        assert top <= float(marker.get("y", "")) <= bottom
    website, event = found
    assert words(one(website, "s:text[@class='station-name']")) == "website · observed"
    assert measures(website) == ["goal: traffic · visits 1,234 (56 customers)"]
    assert measures(event) == ["goal: awareness · attendees 1 (1 customer)"]
    title = website.find("s:title", NS)
    assert title is not None
    assert title.text == (
        "website, observed touchpoint (not sent); goal traffic; KPI visits, counting page"
    )
    # Observed touchpoints come first in their stage, above its send steps, none elsewhere.
    [invite] = awareness.findall("s:g[@data-step]", NS)
    name_y = [float(one(g, "s:text").get("y", "")) for g in [*found, invite]]
    assert name_y == sorted(name_y)
    assert root.findall("s:g[@data-stage='purchase']/s:g[@class='station observed']", NS) == []
    # The legend explains the shape, and the description counts them.
    legend = root.find("s:g[@class='legend']", NS)
    assert legend is not None and legend.find("s:rect[@class='observed-key']", NS) is not None
    assert "observed touchpoint: measured, not sent" in words(legend)
    assert "2 stages and 4 touchpoints (2 observed, not sent);" in words(one(root, "s:desc"))


def test_send_stations_say_their_goal_and_kpi(board: boards.Board) -> None:
    root = drawn(board)
    stations = {g.get("data-step"): g for g in root.findall(".//s:g[@data-step]", NS)}
    assert measures(stations["offer"]) == ["goal: conversion · orders 12 (9 customers)"]
    # A goal without a KPI says so; the message numbers are still there.
    assert measures(stations["invite"]) == ["goal: awareness · no KPI"]
    assert "sent 5" in words(stations["invite"])
    title = stations["offer"].find("s:title", NS)
    assert title is not None and title.text == (
        "offer (email), touchpoint; goal conversion; KPI orders, counting Order Completed"
    )


def test_a_station_without_goal_or_kpi_draws_no_line_for_them() -> None:
    source = JOURNEY.replace(", goal: awareness}", "}")
    plan = compile_source(source, source="plain")
    root = drawn(boards.build(plan, FUNNEL, []))
    invite = root.find(".//s:g[@data-step='invite']", NS)
    assert invite is not None and measures(invite) == []
    # Before the report is read, the KPIs show zeros, not blanks.
    offer = root.find(".//s:g[@data-step='offer']", NS)
    assert offer is not None and measures(offer) == ["goal: conversion · orders 0 (0 customers)"]


def test_long_goals_and_kpis_wrap_onto_two_lines_and_are_clipped() -> None:
    goal = "win back lapsed night-cream buyers before the winter starts"
    kpi = "orders of the full-size night-repair cream"
    source = JOURNEY.replace("goal: conversion", f'goal: "{goal}"').replace(
        "name: orders", f'name: "{kpi}"'
    )
    plan = compile_source(source, source="long")
    root = drawn(boards.build(plan, FUNNEL, []))
    offer = root.find(".//s:g[@data-step='offer']", NS)
    assert offer is not None
    first, second = measures(offer)
    assert first == f"goal: {goal[: metro_stations.GOAL_CHARS - 1]}…"
    assert second == f"{kpi[: metro_stations.KPI_CHARS - 1]}… 0 (0 customers)"
    for line in (first, second):
        assert len(line) <= metro_stations.MEASURE_CHARS
    title = offer.find("s:title", NS)
    assert title is not None and goal in (title.text or "") and kpi in (title.text or "")
    # The second line pushes what follows down: the stage is taller than with one line.
    short = drawn(boards.build(compile_source(JOURNEY, source="short"), FUNNEL, []))
    assert float(root.get("viewBox", "").split()[3]) == pytest.approx(
        float(short.get("viewBox", "").split()[3]) + metro_stations.MEASURE_LINE
    )


def test_every_kpi_on_the_map_reads_as_the_page_numbers(board: boards.Board) -> None:
    numbers = readings.page_numbers(board, "active")
    shown: dict[str, str] = {}
    for node in drawn(board).iter():
        key = node.get("data-live")
        if key is not None:
            shown[key] = words(node)
    for key, value in shown.items():
        assert numbers[key] == value, key
    assert shown[fmt.observed_key("website", "kpi_count")] == "1,234"
    assert numbers[fmt.observed_key("website", "kpi_customers")] == "56"
    assert shown[fmt.step_key("offer", "kpi_customers_text")] == "9 customers"
    # A send step without a KPI has no KPI numbers; an observed touchpoint no message numbers.
    assert fmt.step_key("invite", "kpi_count") not in numbers
    assert fmt.step_key("website", "sent") not in numbers


# --- over real Postgres, through the API ---------------------------------------------------


async def seeded(dash: Dash) -> str:
    version = await dash.deploy(JOURNEY)
    await kpi_seed.seed_kpis(dash.pool, dash.http, WRITE_KEY, version=version)
    return version


async def test_the_page_shows_the_kpis_the_touchpoints_api_counts(dash: Dash) -> None:
    await seeded(dash)
    response = await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}", headers=dash.admin)
    assert response.status_code == 200
    page = response.text
    shown = live_values(page)
    api = await dash.api(f"/api/journeys/{JOURNEY_ID}/touchpoints")
    rows = {t["step_id"]: t for t in api["touchpoints"]}
    assert list(rows) == ["website", "launch-event", "invite", "offer"]
    # The API counts what the seed says, independently of both.
    assert {k: (r["kpi_count"], r["kpi_customers"]) for k, r in rows.items() if r["kpi"]} == (
        EXPECTED
    )

    drawing = svg(page, "metro")
    for touchpoint in ("website", "launch-event", "offer"):
        row = rows[touchpoint]
        where = "observed" if row["kind"] == "observed" else "step"
        station = drawing.find(f".//s:g[@data-{where}='{touchpoint}']", NS)
        assert station is not None, touchpoint
        customers = row["kpi_customers"]
        said = f"{row['kpi']} {row['kpi_count']} ({customers} customer{'s' * (customers != 1)})"
        assert measures(station) == [f"goal: {row['goal']} · {said}"]
        key = fmt.kpi_key(touchpoint, row["kind"])
        assert shown[key("kpi_count")] == str(row["kpi_count"])
        assert shown[key("kpi_customers")] == str(row["kpi_customers"])
    observed = drawing.findall(".//s:g[@class='station observed']", NS)
    assert [g.get("data-observed") for g in observed] == OBSERVED

    # The table: a row per touchpoint of the API, with its kind, goal and KPI.
    found = table(page, "touchpoints")
    assert [attrs["data-step"] for attrs, _ in found] == list(rows)
    for attrs, cells in found:
        row = rows[attrs["data-step"]]
        assert attrs["data-kind"] == cells["kind"] == row["kind"]
        assert cells["goal"] == row["goal"]
        if row["kpi"] is None:
            assert (cells["kpi"], cells["kpi_count"], cells["kpi_customers"]) == (fmt.NONE,) * 3
        else:
            assert cells["kpi"] == f"{row['kpi']} {row['kpi_event']}"
            assert cells["kpi_count"] == str(row["kpi_count"])
            assert cells["kpi_customers"] == str(row["kpi_customers"])
        if row["kind"] == "observed":
            # It sends nothing: its message columns do not apply.
            assert cells["sent"] == cells["conversions"] == fmt.NONE
        else:
            assert cells["sent"] == str(row["sent"])
    [website] = [cells for attrs, cells in found if attrs["data-step"] == "website"]
    assert website["kpi"] == "visits page"  # the KPI's name, and what counts one


async def test_an_observed_touchpoint_named_like_an_older_send_step(dash: Dash) -> None:
    older = JOURNEY.replace("id: website", "id: site").replace(
        "- send: {id: invite,",
        "- send: {id: website, subject: Hi, body: Hi}\n      - send: {id: invite,",
    )
    first = await dash.deploy(older)
    await message(dash.pool, "k9", "website", "email", "sent", version=first, journey_id=JOURNEY_ID)
    await seeded(dash)
    page = (await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}", headers=dash.admin)).text
    shown = live_values(page)  # asserts that every key reads the same wherever it is shown
    # The older version's send step and the observed touchpoint keep their own numbers.
    assert shown[fmt.step_key("website", "sent")] == "1"
    assert shown[fmt.observed_key("website", "kpi_count")] == str(EXPECTED["website"][0])
    kinds = [(a["data-step"], a["data-kind"]) for a, _ in table(page, "touchpoints")]
    assert ("website", "observed") in kinds and ("website", "message") in kinds


async def test_the_stream_carries_the_kpi_counts_and_their_changes(dash: Dash) -> None:
    version = await seeded(dash)
    plan = await readings.plan_of(dash.pool, JOURNEY_ID, version)
    assert plan is not None
    count = fmt.observed_key("website", "kpi_count")
    who = fmt.observed_key("website", "kpi_customers_text")
    async with (
        served(dash.app) as url,
        httpx.AsyncClient(base_url=url, headers=dash.admin, timeout=30) as http,
        http.stream("GET", f"/dashboard/journeys/{JOURNEY_ID}/live") as response,
    ):
        events = Events(response)
        first = await events.numbers()
        board = await readings.read_board(dash.pool, plan, version=None)
        assert first == readings.page_numbers(board, "active")
        assert (first[count], first[who]) == ("3", "2 customers")
        assert first[fmt.step_key("offer", "kpi_count")] == "3"

        # k5, still in awareness, visits the website twice more: the stream says so at its
        # next reading of the touchpoints (every fifth poll).
        started = time.monotonic()
        await kpi_seed.page_view(dash.http, WRITE_KEY, "k5")
        await kpi_seed.page_view(dash.http, WRITE_KEY, "k5")
        changed = await events.numbers(within=15)
        while changed[count] == "3":
            changed = await events.numbers(within=15)
        assert time.monotonic() - started < 12
        assert (changed[count], changed[who]) == ("5", "2 customers")
        assert changed[fmt.observed_key("website", "kpi_customers")] == "2"
        assert changed[fmt.LAYOUT_KEY] == first[fmt.LAYOUT_KEY]
