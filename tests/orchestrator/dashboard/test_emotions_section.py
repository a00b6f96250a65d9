"""The journey page's emotion curve over real Postgres: points, labels and tables carry the
numbers of ``GET /api/journeys/{id}/emotions``, for answers sent through the ingest API."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

import pytest

from journeyman.orchestrator.dashboard import emotion_charts
from journeyman.orchestrator.dashboard.svg import SVG_NS
from journeyman.orchestrator.storage.satisfaction import EmotionPoint

from .conftest import WRITE_KEY, Dash
from .html import svg, table
from .sections_seed import JOURNEY, JOURNEY_ID, STAGES, seed_sections

NS = {"s": SVG_NS}
PAGE = f"/dashboard/journeys/{JOURNEY_ID}"


def words(node: ET.Element) -> str:
    return "".join(node.itertext())


def one(node: ET.Element, path: str) -> ET.Element:
    found = node.find(path, NS)
    assert found is not None, path
    return found


def height_of(average: float) -> float:
    """Where an average sits: 0 on the plot's bottom line, 10 on its top one."""
    top, bottom = emotion_charts.TOP, emotion_charts.BOTTOM
    return bottom - average / 10 * (bottom - top)


def dash_or(value: float | None, digits: str = ".1f") -> str:
    return "\u2013" if value is None else format(value, digits)


async def seeded(dash: Dash) -> str:
    version = await dash.deploy(JOURNEY)
    await seed_sections(dash.pool, dash.http, WRITE_KEY, version=version)
    return version


async def test_the_curve_runs_along_the_stages_with_averages_and_answers(dash: Dash) -> None:
    await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/emotions")
    stages = report["stages"]
    assert [s["stage"] for s in stages] == STAGES
    # What the seed sent: welcome score 9 and 6, CSAT 4 and 2, NPS 10 and 3; consideration
    # CSAT 5 and NPS 8; nothing in purchase; one CSAT of 9 rejected.
    welcome = [(9 - 1) * 10 / 9, (4 - 1) * 2.5, 10, 3, (6 - 1) * 10 / 9, (2 - 1) * 2.5]
    assert stages[0]["average"] == pytest.approx(sum(welcome) / 6)
    assert (stages[0]["answers"], stages[0]["rejected"]) == (6, 1)
    assert (stages[1]["average"], stages[1]["answers"]) == (pytest.approx(9.0), 2)
    assert (stages[2]["average"], stages[2]["answers"]) == (None, 0)

    chart = svg(page, "emotions")
    points = chart.findall("s:g[@class='stage-point']", NS)
    assert [p.get("data-stage") for p in points] == STAGES
    xs = []
    for point, api in zip(points, stages, strict=True):
        label = one(point, "s:text[@class='stage-label']")
        xs.append(float(label.get("x", "")))
        assert words(label) == api["stage"]
        if api["average"] is None:
            assert point.find("s:circle", NS) is None
            assert words(one(point, "s:text[@class='no-answers']")) == "no answers"
            continue
        circle = one(point, "s:circle[@class='point']")
        assert float(circle.get("cy", "")) == pytest.approx(height_of(api["average"]), abs=0.01)
        assert float(circle.get("cx", "")) == pytest.approx(xs[-1])
        assert words(one(point, "s:text[@class='average']")) == f"{api['average']:.1f}"
        assert words(one(point, "s:text[@class='answers']")) == f"n={api['answers']}"
    assert xs == sorted(xs)  # left to right in the journey's order
    # One line from welcome to consideration; purchase, without answers, is a gap.
    path = one(chart, "s:path[@class='curve']").get("d", "")
    assert re.fullmatch(r"M[\d.]+ [\d.]+L[\d.]+ [\d.]+", path)
    assert "purchase no answers" in words(one(chart, "s:desc"))

    rows = {a["data-stage"]: c for a, c in table(page, "emotion-stages")}
    for api in stages:
        cells = rows[api["stage"]]
        assert cells["answers"] == str(api["answers"])
        assert cells["average"] == dash_or(api["average"])
        assert cells["csat_average"].split(" ")[0] == dash_or(api["csat_average"])
        assert cells["score_average"].split(" ")[0] == dash_or(api["score_average"])
        nps = "\u2013" if api["nps"] is None else f"{round(api['nps']):+d}"
        assert cells["nps"].split(" ")[0] == nps
    # NPS where it was asked: two answers in welcome, a 10 and a 3: 50 % - 50 %.
    assert rows["welcome"]["nps"] == "+0 (1/0/1)"
    assert "1 answer(s) could not be counted" in page


async def test_touchpoints_show_the_answers_given_after_their_messages(dash: Dash) -> None:
    await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/emotions")
    rows = table(page, "emotion-touchpoints")
    assert [a["data-step"] for a, _ in rows] == [t["step_id"] for t in report["touchpoints"]]
    for (_, cells), api in zip(rows, report["touchpoints"], strict=True):
        assert cells["answers"] == str(api["answers"])
        assert cells["average"] == dash_or(api["average"])
    hello = {t["step_id"]: t for t in report["touchpoints"]}["hello"]
    assert hello["answers"] == 5  # t36 answered before any message: welcome only


async def test_the_curve_sits_under_the_map(dash: Dash) -> None:
    await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    column = re.search(r'<div class="column">\s*<section id="map".*?</div>\s*\n</div>', page, re.S)
    assert column is not None
    assert '<section id="emotions"' in column.group(0)
    assert page.index('id="map"') < page.index('id="emotions"') < page.index('id="funnel"')


async def test_without_answers_the_section_says_how_to_send_them(dash: Dash) -> None:
    await dash.deploy(JOURNEY)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    assert "No satisfaction answers yet." in page
    assert 'class="emotions"' not in page
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/emotions")
    assert all(s["answers"] == 0 for s in report["stages"])


def point(stage: str, average: float | None, answers: int = 1) -> EmotionPoint:
    return EmotionPoint(
        stage, None, answers if average is not None else 0, 0, average,
        0, None, 0, None, None, 0, 0, 0, 0, None,
    )  # fmt: skip


def test_a_stage_without_answers_breaks_the_line() -> None:
    root = ET.fromstring(
        emotion_charts.emotion_curve(
            [point("a", 5.0), point("b", None), point("c", 7.0), point("d", 10.0, 1200)]
        )
    )
    path = one(root, "s:path[@class='curve']").get("d", "")
    # a alone, then c to d: no segment crosses b.
    assert re.fullmatch(r"M[\d.]+ [\d.]+M[\d.]+ [\d.]+L[\d.]+ [\d.]+", path)
    d = one(root, "s:g[@data-stage='d']")
    assert float(one(d, "s:circle").get("cy", "")) == pytest.approx(emotion_charts.TOP)
    assert words(one(d, "s:text[@class='answers']")) == "n=1,200"


def test_many_stages_alternate_their_names_on_two_lines() -> None:
    names = [f"a-rather-long-stage-{n}" for n in range(7)]
    root = ET.fromstring(emotion_charts.emotion_curve([point(n, 5.0) for n in names]))
    labels = root.findall(".//s:text[@class='stage-label']", NS)
    heights = [float(t.get("y", "")) for t in labels]
    assert heights[0] == heights[2] != heights[1] == heights[3]
    # Each name keeps to its share of the width, cut with an ellipsis; the title has it whole.
    assert all(words(t).endswith("\u2026") for t in labels)
    titles = [words(t) for t in root.findall(".//s:g[@class='stage-point']/s:title", NS)]
    assert titles[0] == "a-rather-long-stage-0: average 5.0 from 1 answer"
