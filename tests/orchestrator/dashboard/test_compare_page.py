"""The compare page over real Postgres: two versions side by side, with the numbers of
``GET /api/journeys/{id}/compare``; how the journey page links to it; its clear 4xx."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any
from urllib.parse import urlencode

import pytest

from journeyman.orchestrator.dashboard import comparison_charts
from journeyman.orchestrator.dashboard import formatting as fmt
from journeyman.orchestrator.dashboard.comparison import Side, StagePair
from journeyman.orchestrator.dashboard.svg import SVG_NS

from .conftest import WRITE_KEY, Dash
from .html import svg, table
from .sections_seed import JOURNEY, JOURNEY_ID, SECOND, STAGES, second_version, seed_sections

NS = {"s": SVG_NS}
JOURNEY_PAGE = f"/dashboard/journeys/{JOURNEY_ID}"
X, WIDTH = comparison_charts.BAR_X, comparison_charts.BAR_WIDTH


def words(node: ET.Element) -> str:
    return "".join(node.itertext())


def one(node: ET.Element, path: str) -> ET.Element:
    found = node.find(path, NS)
    assert found is not None, path
    return found


def pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def pts(value: float) -> str:
    return f"{value * 100:+.1f}"


async def two_versions(dash: Dash) -> tuple[str, str]:
    first = await dash.deploy(JOURNEY)
    await seed_sections(dash.pool, dash.http, WRITE_KEY, version=first)
    second = await dash.deploy(SECOND)
    await second_version(dash.pool, version=second)
    return first, second


def compare_url(a: str, b: str) -> str:
    return f"{JOURNEY_PAGE}/compare?{urlencode({'a': a, 'b': b})}"


def side_text(api: dict[str, Any], letter: str) -> str:
    entered, converted = api[f"{letter}_entered"], api[f"{letter}_converted"]
    if not entered:
        return "no entries"
    interval = f"{pct(api[f'{letter}_rate_low'])[:-1]}\u2013{pct(api[f'{letter}_rate_high'])}"
    return f"{converted} of {entered} converted \u00b7 {pct(api[f'{letter}_rate'])} ({interval})"


async def test_conversion_side_by_side_shows_the_compare_reports_numbers(dash: Dash) -> None:
    a, b = await two_versions(dash)
    response = await dash.http.get(compare_url(a, b), headers=dash.admin)
    assert response.status_code == 200
    page = response.text
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/compare?a={a}&b={b}")
    assert [s["stage"] for s in report["stages"]] == STAGES
    welcome = report["stages"][0]
    # The seed: a's 50 runs, 20 converted out of welcome (10 more by the journey's goal, who
    # left consideration, count there); b's 20 runs, 12 converted.
    assert (welcome["a_entered"], welcome["a_converted"]) == (50, 22)
    assert (welcome["b_entered"], welcome["b_converted"]) == (20, 12)

    chart = svg(page, "compare-conversion")
    pairs = chart.findall("s:g[@class='pair']", NS)
    assert [p.get("data-stage") for p in pairs] == STAGES
    for pair, api in zip(pairs, report["stages"], strict=True):
        for letter in ("a", "b"):
            side = one(pair, f"s:g[@class='side side-{letter}']")
            bar = one(side, "s:rect[@class='bar']")
            rate = api[f"{letter}_rate"]
            assert float(bar.get("width", "")) == pytest.approx(rate * WIDTH, abs=0.01)
            assert words(one(side, "s:text[@class='side-text']")) == side_text(api, letter)
            whisker = side.find("s:path[@class='interval']", NS)
            if api[f"{letter}_entered"]:
                assert whisker is not None
                ends = re.match(r"M([\d.]+) [\d.]+H([\d.]+)", whisker.get("d", ""))
                assert ends is not None
                low, high = api[f"{letter}_rate_low"], api[f"{letter}_rate_high"]
                assert (float(ends[1]), float(ends[2])) == pytest.approx(
                    (X + low * WIDTH, X + high * WIDTH), abs=0.06
                )
            else:
                assert whisker is None
        difference = words(one(pair, "s:text[@class='difference']"))
        if api["a_entered"] and api["b_entered"]:
            assert difference.startswith(
                f"B \u2212 A: {pts(api['difference'])} pts ({pts(api['difference_low'])} to "
                f"{pts(api['difference_high'])} pts) \u00b7 p {api['p_value']:.3f}"
            )
        else:
            assert difference == "B \u2212 A: nothing to compare, no entries in A and B"

    rows = {attrs["data-stage"]: cells for attrs, cells in table(page, "compare-stages")}
    for api in report["stages"]:
        cells = rows[api["stage"]]
        for letter in ("a", "b"):
            assert cells[f"{letter}_entered"] == str(api[f"{letter}_entered"])
            assert cells[f"{letter}_converted"] == str(api[f"{letter}_converted"])
    assert rows["welcome"]["a_rate"] == pct(welcome["a_rate"])
    assert rows["welcome"]["difference"] == f"{pts(welcome['difference'])} pts"
    assert rows["welcome"]["p_value"] == f"{welcome['p_value']:.3f}"
    assert rows["purchase"]["difference"] == "\u2013"  # no entries on either side


async def test_exits_and_time_to_convert_side_by_side(dash: Dash) -> None:
    a, b = await two_versions(dash)
    page = (await dash.http.get(compare_url(a, b), headers=dash.admin)).text
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/compare?a={a}&b={b}")
    leaves = report["exits"]
    assert [(e["stage"], e["reason"], e["a"], e["b"]) for e in leaves] == [
        ("welcome", "timeout", 8, 4),
        ("welcome", "exit_rule", 3, 0),
        ("welcome", "holdout", 6, 0),
        ("consideration", "exit_step", 8, 0),
    ]
    chart = svg(page, "compare-exits")
    drawn = chart.findall("s:g[@class='exit-pair']", NS)
    assert [(g.get("data-stage"), g.get("data-reason")) for g in drawn] == [
        (e["stage"], e["reason"]) for e in leaves
    ]
    for group, api in zip(drawn, leaves, strict=True):
        assert words(one(group, ".//s:tspan[@class='counts']")) == (
            f": A {api['a']} ({pct(api['a_rate'])}) \u00b7 B {api['b']} ({pct(api['b_rate'])})"
        )
        assert words(one(group, ".//s:tspan[@class='reason-label']")) == fmt.reason_label(
            api["reason"]
        )
        bars = group.findall(".//s:rect[@class='bar']", NS)
        assert [float(r.get("width", "")) for r in bars] == pytest.approx(
            [api["a_rate"] * WIDTH, api["b_rate"] * WIDTH], abs=0.01
        )
    rows = table(page, "compare-exits")
    assert [(c["a"], c["a_share"], c["b"], c["b_share"]) for _, c in rows] == [
        (str(e["a"]), pct(e["a_rate"]), str(e["b"]), pct(e["b_rate"])) for e in leaves
    ]

    timing = {attrs["data-stage"]: cells for attrs, cells in table(page, "compare-timing")}
    for api in report["stages"]:
        cells = timing[api["stage"]]
        for letter in ("a", "b"):
            assert cells[f"{letter}_median"] == fmt.duration(api[f"{letter}_median_seconds"])
            assert cells[f"{letter}_p90"] == fmt.duration(api[f"{letter}_p90_seconds"])
    drawn_timing = svg(page, "compare-timing").findall("s:g[@class='pair']", NS)
    assert [g.get("data-stage") for g in drawn_timing] == STAGES
    purchase = words(drawn_timing[2])
    assert "A: no one converted" in purchase and "B: no one converted" in purchase


async def test_the_journey_page_links_to_the_comparison(dash: Dash) -> None:
    first = await dash.deploy(JOURNEY)
    one_version = (await dash.http.get(JOURNEY_PAGE, headers=dash.admin)).text
    assert "/compare" not in one_version
    second = await dash.deploy(SECOND)
    page = (await dash.http.get(JOURNEY_PAGE, headers=dash.admin)).text
    link = re.search(r'<p class="compare-link"><a href="([^"]+)">', page)
    assert link is not None
    assert link.group(1).replace("&amp;", "&") == compare_url(first, second)
    form = re.search(r'<form method="get" action="([^"]+)" class="version-picker compare', page)
    assert form is not None and form.group(1) == f"{JOURNEY_PAGE}/compare"
    assert f'<option value="{first}" selected>version {first}</option>' in page
    assert f'<option value="{second}" selected>version {second} (active)</option>' in page
    # The comparison links back, and offers the sides swapped.
    compare = (await dash.http.get(compare_url(first, second), headers=dash.admin)).text
    assert f'<a href="{JOURNEY_PAGE}">' in compare
    swap = f'<a href="?{urlencode({"a": second, "b": first})}">Swap A and B</a>'
    assert swap.replace("&", "&amp;") in compare


@pytest.mark.parametrize(
    ("query", "status", "message"),
    [
        ("", 400, "Name the two versions to compare as a and b"),
        ("?a={first}", 400, "Name the two versions to compare as a and b"),
        ("?a={first}&b={first}", 400, "A and b must be two different versions."),
        ("?a={first}&b=0000", 404, "Journey &#39;offers&#39; has no version &#39;0000&#39;."),
    ],
)
async def test_a_comparison_that_cannot_be_made_is_a_clear_4xx(
    dash: Dash, query: str, status: int, message: str
) -> None:
    first = await dash.deploy(JOURNEY)
    response = await dash.http.get(
        f"{JOURNEY_PAGE}/compare{query.format(first=first)}", headers=dash.admin
    )
    assert response.status_code == status
    assert message in response.text and 'role="alert"' in response.text


async def test_an_unknown_journey_and_a_visitor_not_signed_in(dash: Dash) -> None:
    response = await dash.http.get("/dashboard/journeys/nope/compare?a=1&b=2", headers=dash.admin)
    assert response.status_code == 404
    assert "No journey &#39;nope&#39; is deployed." in response.text
    anonymous = await dash.http.get(f"{JOURNEY_PAGE}/compare?a=1&b=2")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"].startswith("/dashboard/sign-in?next=")


def side(entered: int, converted: int) -> Side:
    return Side(entered, converted, 0, converted / entered if entered else 0.0, 0, 1, None, None)


def test_a_stage_only_one_version_had_is_named_so() -> None:
    only_b = StagePair("loyalty", False, True, side(0, 0), side(10, 4), 0.4, -0.1, 0.7, None)
    root = ET.fromstring(comparison_charts.conversion_pairs([only_b], ("v1", "v2")))
    assert "loyalty \u00b7 only in B" in words(one(root, ".//s:g[@class='pair']/s:text"))
    said = words(one(root, ".//s:text[@class='difference']"))
    assert said == "B \u2212 A: nothing to compare, no entries in A"
    legend = [words(t) for t in root.findall("s:g[@class='legend']/s:text", NS)]
    assert legend == ["A: version v1", "B: version v2"]
