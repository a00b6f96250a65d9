"""The journey page's experiments-and-holdout section over real Postgres: each group's bar,
whisker and words carry the numbers of ``GET /api/journeys/{id}/experiments``."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import pytest

from journeyman.orchestrator.dashboard import experiment_charts
from journeyman.orchestrator.dashboard.svg import SVG_NS
from journeyman.orchestrator.storage.experiment_reports import Comparison, Rate

from . import seed
from .conftest import WRITE_KEY, Dash
from .html import svg, table
from .sections_seed import JOURNEY, JOURNEY_ID, seed_sections

NS = {"s": SVG_NS}
PAGE = f"/dashboard/journeys/{JOURNEY_ID}"
BAR = 370.0


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


def whisker_ends(path: str) -> tuple[float, float]:
    found = re.match(r"M([\d.]+) [\d.]+H([\d.]+)", path)
    assert found is not None, path
    return float(found[1]), float(found[2])


def check_group(group: ET.Element, api: dict[str, Any], scale: float, baseline: str) -> None:
    """A group's row shows its API numbers: bar, whisker, counts and comparison."""
    counts = f"{api['conversions']} of {api['entrants']} converted"
    if api["pending"]:
        counts += f" \u00b7 {api['pending']} pending"
    assert counts in words(group)
    bar = one(group, "s:rect[@class='rate-bar']")
    assert float(bar.get("width", "")) == pytest.approx(api["rate"] * scale, abs=0.01)
    low, high = whisker_ends(one(group, "s:path[@class='interval']").get("d", ""))
    assert (low, high) == pytest.approx(
        (api["rate_low"] * scale, api["rate_high"] * scale), abs=0.06
    )
    interval = f"{pct(api['rate_low'])[:-1]}\u2013{pct(api['rate_high'])}"
    assert words(one(group, "s:text[@class='rate-text']")) == (
        f"{pct(api['rate'])} \u00b7 95% interval {interval}"
    )
    if api.get("difference") is not None:
        versus = (
            f"{pts(api['difference'])} pts vs {baseline} ({pts(api['difference_low'])} to "
            f"{pts(api['difference_high'])} pts) \u00b7 p {api['p_value']:.3f}"
        )
        assert words(one(group, "s:text[@class='versus']")) == versus


async def seeded(dash: Dash) -> str:
    version = await dash.deploy(JOURNEY)
    await seed_sections(dash.pool, dash.http, WRITE_KEY, version=version)
    return version


async def test_each_variant_is_a_bar_with_its_interval_against_the_control(dash: Dash) -> None:
    await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/experiments")
    [offer] = report["experiments"]
    variants = {v["name"]: v for v in offer["variants"]}
    # Newcombe's example (a), as seeded: the API and the seed agree before the page is read.
    counts = {n: (v["entrants"], v["conversions"], v["pending"]) for n, v in variants.items()}
    assert counts == {"plain": (80, 48, 4), "discount": (70, 56, 3)}
    assert offer["decision"]["winner"] == "discount"

    chart = svg(page, "experiment")
    groups = chart.findall("s:g[@data-group]", NS)
    assert [g.get("data-group") for g in groups] == ["plain", "discount"]
    scale = BAR / 1.0  # every interval ends below 100 %, above 50 %
    for group in groups:
        check_group(group, variants[group.get("data-group", "")], scale, "the control")
    plain, discount = groups
    assert plain.get("class") == "group baseline"
    assert words(one(plain, ".//s:tspan[@class='tag']")) == " \u00b7 control"
    assert plain.find("s:text[@class='versus']", NS) is None
    assert " \u00b7 winner" in [words(t) for t in discount.findall(".//s:tspan[@class='tag']", NS)]
    verdict = one(discount, "s:text[@class='verdict']")
    assert words(verdict) == "significantly better than the control"
    assert verdict.get("font-weight") == "bold"
    # The control's rate is marked across every bar, and labelled.
    marks = chart.findall(".//s:line[@class='baseline-rate']", NS)
    assert len(marks) == 2
    assert [float(m.get("x1", "")) for m in marks] == pytest.approx([0.6 * BAR] * 2)
    assert words(one(chart, "s:text[@class='baseline-label']")) == "control: 60.0%"

    rows = {a["data-group"]: c for a, c in table(page, "variants")}
    for name, cells in rows.items():
        api = variants[name]
        assert (cells["entrants"], cells["conversions"], cells["pending"]) == (
            str(api["entrants"]),
            str(api["conversions"]),
            str(api["pending"]),
        )
        assert cells["rate"] == pct(api["rate"])
    assert rows["discount"]["difference"] == f"{pts(variants['discount']['difference'])} pts"
    assert rows["discount"]["p_value"] == f"{variants['discount']['p_value']:.3f}"
    assert rows["plain"]["verdict"] == "the baseline"
    assert "Winner: discount" in page


async def test_the_holdout_uplift_is_drawn_against_the_held_out_customers(dash: Dash) -> None:
    version = await seeded(dash)
    page = (await dash.http.get(PAGE, headers=dash.admin)).text
    holdout = (await dash.api(f"/api/journeys/{JOURNEY_ID}/experiments"))["holdout"]
    assert holdout["versions"] == [version]
    treated, held_out = holdout["treated"], holdout["held_out"]
    # The seed: 40 treated runs (10 converted, 19 left, 11 still in), 10 held out (2, 6, 2).
    assert (treated["entrants"], treated["conversions"], treated["pending"]) == (29, 10, 11)
    assert (held_out["entrants"], held_out["conversions"], held_out["pending"]) == (8, 2, 2)

    chart = svg(page, "holdout")
    groups = chart.findall("s:g[@data-group]", NS)
    assert [g.get("data-group") for g in groups] == ["treated", "held out"]
    check_group(groups[0], {**treated, **comparison(holdout)}, BAR, "held out")
    check_group(groups[1], held_out, BAR, "held out")
    assert groups[1].get("class") == "group baseline"
    uplift = re.search(r'<p class="uplift" data-field="uplift">(.*?)</p>', page, re.S)
    assert uplift is not None
    said = " ".join(re.sub(r"<[^>]+>", "", uplift.group(1)).split())
    assert said.startswith(
        f"Uplift {pts(holdout['uplift'])} pts (95% interval {pts(holdout['uplift_low'])} to "
        f"{pts(holdout['uplift_high'])} pts), p {holdout['p_value']:.3f}: not significant"
    )
    rows = {a["data-group"]: c for a, c in table(page, "holdout-groups")}
    assert rows["treated"]["entrants"] == "29" and rows["held out"]["rate"] == "25.0%"


def comparison(holdout: dict[str, Any]) -> dict[str, Any]:
    return {
        "difference": holdout["uplift"],
        "difference_low": holdout["uplift_low"],
        "difference_high": holdout["uplift_high"],
        "p_value": holdout["p_value"],
    }


async def test_only_the_version_asked_for_counts(dash: Dash) -> None:
    version = await seeded(dash)
    page = await dash.http.get(PAGE, params={"version": version}, headers=dash.admin)
    report = await dash.api(f"/api/journeys/{JOURNEY_ID}/experiments?version={version}")
    # The seeded entrants have no run of this version: none of them count for it.
    assert [v["entrants"] for v in report["experiments"][0]["variants"]] == [0, 0]
    chart = svg(page.text, "experiment")
    assert chart.find(".//s:rect[@class='rate-bar']", NS) is None
    texts = [words(t) for t in chart.findall(".//s:text[@class='rate-text']", NS)]
    assert texts == ["no entrants with a known outcome yet"] * 2
    assert words(one(chart, ".//s:text[@class='verdict']")) == "no test possible yet"
    held = {a["data-group"]: c for a, c in table(page.text, "holdout-groups")}
    assert held["treated"]["entrants"] == str(report["holdout"]["treated"]["entrants"])


async def test_a_journey_without_experiment_or_holdout_says_so(dash: Dash) -> None:
    await dash.deploy(seed.JOURNEY)
    page = (await dash.http.get(f"/dashboard/journeys/{seed.JOURNEY_ID}", headers=dash.admin)).text
    report = await dash.api(f"/api/journeys/{seed.JOURNEY_ID}/experiments")
    assert report["experiments"] == [] and report["holdout"] is None
    assert "This journey has no experiment step and holds no one out." in page
    assert 'class="experiment"' not in page and 'class="holdout"' not in page


def group(rate: float, high: float, versus: Comparison | None = None) -> experiment_charts.Group:
    counts = Rate(100, round(rate * 100), 0, rate, max(rate - 0.02, 0.0), high)
    return experiment_charts.Group("v", versus is None, counts, versus)


@pytest.mark.parametrize(
    ("high", "ceiling"), [(0.03, 0.05), (0.05, 0.05), (0.07, 0.1), (0.22, 0.25), (0.9, 1.0)]
)
def test_low_rates_get_a_scale_of_their_own(high: float, ceiling: float) -> None:
    assert experiment_charts.ceiling([group(0.01, high)]) == ceiling
    root = ET.fromstring(
        experiment_charts.rates_chart(
            [group(0.01, high)],
            title="t",
            description="d",
            baseline="the control",
            baseline_tag="control",
            class_="experiment",
        )
    )
    axis = [words(t) for t in root.findall("s:g[@class='axis']/s:text", NS)]
    assert axis == ["0%", f"{ceiling * 50:g}%", f"{ceiling * 100:g}%"]


@pytest.mark.parametrize(
    ("versus", "said"),
    [
        (Comparison(-0.1, -0.2, -0.01, -0.5, 0.01, True), "significantly worse than the control"),
        (
            Comparison(0.05, -0.01, 0.11, 0.2, 0.2, False),
            "not significant: no clear difference from the control yet",
        ),
        (Comparison(0.0, -0.1, 0.1, None, None, None), "no test possible yet"),
        (None, "no test possible yet"),
    ],
)
def test_the_verdict_in_words(versus: Comparison | None, said: str) -> None:
    assert experiment_charts.verdict(versus, "the control") == said
