"""The journey page's exits-and-cohorts section over real Postgres: the chart and the tables
show the numbers of the funnel, exits and cohorts APIs."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

import pytest

from journeyman.orchestrator.dashboard import exit_charts
from journeyman.orchestrator.dashboard import formatting as fmt
from journeyman.orchestrator.dashboard.svg import SVG_NS
from journeyman.orchestrator.storage.funnel import StageFunnel

from .conftest import WRITE_KEY, Dash
from .html import svg, table
from .sections_seed import JOURNEY, JOURNEY_ID, STAGES, second_version, seed_sections

NS = {"s": SVG_NS}
PAGE = f"/dashboard/journeys/{JOURNEY_ID}"


def words(node: ET.Element) -> str:
    return "".join(node.itertext())


def one(node: ET.Element, path: str) -> ET.Element:
    found = node.find(path, NS)
    assert found is not None, path
    return found


async def seeded(dash: Dash) -> str:
    version = await dash.deploy(JOURNEY)
    await seed_sections(dash.pool, dash.http, WRITE_KEY, version=version)
    return version


async def test_exits_by_reason_are_bars_per_stage_with_held_out_customers_apart(
    dash: Dash,
) -> None:
    await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    chart = svg(page, "exits")
    funnel = await dash.api(f"/api/journeys/{JOURNEY_ID}/funnel")
    drawn = chart.findall("s:g[@class='exit-stage']", NS)
    assert [g.get("data-stage") for g in drawn] == [s["stage"] for s in funnel["stages"]]
    for stage, group in zip(funnel["stages"], drawn, strict=True):
        entered = stage["entered"]
        assert f"{entered} entered" in words(group)
        reasons = group.findall("s:g[@data-reason]", NS)
        by_reason = stage["exits_by_reason"]
        # Treated customers' reasons in the API's order, the held-out ones last.
        assert [g.get("data-reason") for g in reasons] == list(by_reason)
        for reason in reasons:
            count = by_reason[reason.get("data-reason")]
            assert words(one(reason, ".//s:tspan[@class='reason-count']")) == str(count)
            label = words(one(reason, ".//s:tspan[@class='reason-label']"))
            assert label == fmt.reason_label(reason.get("data-reason") or "")
            assert f"{count / entered * 100:.1f}% of entrants" in words(reason)
            bar = one(reason, "s:rect[@class='reason-bar']")
            assert float(bar.get("width", "")) == pytest.approx(count / entered * 370, abs=0.01)
    # What the seed wrote, independently of the API.
    welcome = {s["stage"]: s for s in funnel["stages"]}["welcome"]
    assert welcome["exits_by_reason"] == {"timeout": 8, "exit_rule": 3, "holdout": 6}
    held = one(chart, ".//s:g[@data-stage='welcome']/s:g[@class='reason holdout']")
    assert "held out (no messages): 6" in words(held)
    assert one(held, "s:rect[@class='reason-bar']").get("fill") == "url(#jm-holdout-exits)"
    # The dashed rule that sets them apart sits just above their row.
    rule = one(chart, ".//s:g[@data-stage='welcome']/s:line")
    assert rule.get("stroke-dasharray") == "4 3"
    purchase = one(chart, "s:g[@data-stage='purchase']")
    assert "no one left without converting" in words(purchase)


async def test_the_exits_table_lists_the_exits_reports_rows(dash: Dash) -> None:
    await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    rows = table(page, "exits")
    report = (await dash.api(f"/api/journeys/{JOURNEY_ID}/exits"))["exits"]
    assert [(r["stage"], r["reason"], r["detail"], r["treated"], r["holdout"]) for r in report] == [
        ("welcome", "timeout", None, 8, 6),
        ("welcome", "exit_rule", "Unsubscribed", 3, 0),
        ("consideration", "exit_step", "not interested", 8, 0),
    ]
    assert len(rows) == len(report)
    for (attrs, cells), row in zip(rows, report, strict=True):
        assert (attrs["data-stage"], attrs["data-outcome"], attrs["data-reason"]) == (
            row["stage"],
            row["outcome"],
            row["reason"],
        )
        assert cells == {
            "treated": str(row["treated"]),
            "holdout": str(row["holdout"]),
            "total": str(row["total"]),
        }


def heat(count: int, entered: int) -> str:
    """The shading a cell should have: one level per fifth of the entrants, none for 0."""
    return f"heat-{math.ceil(count / entered * 5)}" if count and entered else "heat-0"


async def test_cohorts_by_entry_week_show_the_cohorts_report(dash: Dash) -> None:
    await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/cohorts")
    assert report["stages"] == STAGES and report["weeks"] == 12
    rows = table(page, "cohorts")
    assert [a["data-week"] for a, _ in rows] == [c["week"] for c in report["cohorts"]]
    for (_, cells), cohort in zip(rows, report["cohorts"], strict=True):
        entered = cohort["entered"]
        assert cells["entered"] == str(entered)
        for stage in STAGES:
            reached = cohort["reached"][stage]
            share = f"{reached / entered * 100:.1f}%" if entered else fmt.NONE
            assert cells[f"reached:{stage}"] == f"{reached} {share}"
        converted = cohort["converted"]
        rate = f"{cohort['conversion_rate'] * 100:.1f}%" if entered else fmt.NONE
        assert cells["converted"] == f"{converted} {rate}"
        for field in ("exited", "completed", "active"):
            assert cells[field] == str(cohort[field])
    # Shading: one level per fifth of the week's entrants, numbers stated in the cell too.
    for cohort in report["cohorts"]:
        row = re.search(rf'<tr data-week="{cohort["week"]}">(.*?)</tr>', page, re.S)
        assert row is not None
        for stage in STAGES:
            expected = heat(cohort["reached"][stage], cohort["entered"])
            assert f'class="num {expected}" data-field="reached:{stage}"' in row.group(1)
    # The seed's fifty runs entered over the last four weeks, thirteen of them this week.
    assert sum(c["entered"] for c in report["cohorts"]) == 50
    assert report["cohorts"][-1]["entered"] == 13
    assert [c["entered"] for c in report["cohorts"][:8]] == [0] * 8


async def test_a_journey_no_one_left_shows_what_is_missing(dash: Dash) -> None:
    await dash.deploy(JOURNEY)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    assert "No one has left a stage without converting yet." in page
    assert "No one entered in the last 12 weeks." in page
    assert 'class="exits"' not in page and 'class="cohorts"' not in page


async def test_the_version_asked_for_narrows_exits_and_cohorts(dash: Dash) -> None:
    first = await seeded(dash)
    second = await dash.deploy(JOURNEY.replace("name: Offers", "name: Offers, again"))
    await second_version(dash.pool, version=second)
    for version, timeouts in ((first, 8), (second, 4), (None, 12)):
        params = {"version": version} if version else {}
        page = await dash.http.get(PAGE, params=params, headers=dash.admin)
        rows = {(a["data-stage"], a["data-reason"]): c for a, c in table(page.text, "exits")}
        assert rows[("welcome", "timeout")]["treated"] == str(timeouts)
        report = await dash.api(
            f"/api/journeys/{JOURNEY_ID}/exits" + (f"?version={version}" if version else "")
        )
        assert [(r["stage"], r["reason"]) for r in report["exits"]] == list(rows)


def stage(name: str, entered: int, reasons: dict[str, int]) -> StageFunnel:
    left = sum(reasons.values())
    return StageFunnel(name, entered, entered - left, 0, 0.0, 0, left, exits_by_reason=reasons)


def test_a_bar_never_runs_past_its_track_and_every_reason_has_words() -> None:
    # A goto can bring a customer back to leave twice: more leaves than entrants.
    rows = [
        stage("welcome", 4, {"goto": 6, "merge": 1}),
        stage("legacy", 2, {"no-such-reason": 1, "holdout": 1}),
    ]
    leaves = exit_charts.stage_leaves(rows, ["welcome"])
    root = ET.fromstring(exit_charts.exits_chart(leaves))
    goto = one(root, ".//s:g[@data-reason='goto']")
    assert float(one(goto, "s:rect[@class='reason-bar']").get("width", "")) == 370
    assert "jumped away (goto): 6" in words(goto)
    merge = one(root, ".//s:g[@data-reason='merge']")
    assert one(merge, "s:rect[@class='reason-bar']").get("fill") == exit_charts.OTHER_COLOUR
    legacy = one(root, "s:g[@data-stage='legacy']")
    assert "2 entered (older versions)" in words(legacy)
    # A reason the dashboard has no words for is shown as it is stored.
    assert "no-such-reason: 1" in words(legacy)
    assert [g.get("data-reason") for g in legacy.findall("s:g", NS)] == [
        "no-such-reason",
        "holdout",
    ]
    assert "treated customers left" in words(one(root, "s:desc"))
