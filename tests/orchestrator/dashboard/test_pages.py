"""The dashboard's pages over real Postgres: the numbers they show are the JSON API's."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

import pytest

from journeyman.orchestrator.customers.sweep_segments import sweep_segments
from journeyman.orchestrator.dashboard import JourneyRef, formatting, views

from .conftest import WRITE_KEY, Dash
from .html import live_values, svg
from .seed import EXPECTED, JOURNEY, JOURNEY_ID, STAGES, transitions

NS = {"s": "http://www.w3.org/2000/svg"}
PAUSED = """
id: quiet
name: Quiet journey
entry: {event: Signed Up}
stages:
  - name: only
    touchpoints:
      - send: {id: hello, subject: "Hello", body: "Hi"}
"""


def rate(value: float) -> str:
    return f"{value * 100:.1f}%"


async def test_the_journeys_list_shows_each_journey_with_its_numbers(dash: Dash) -> None:
    version = await dash.seeded()
    await dash.deploy(PAUSED)
    paused = await dash.http.post("/api/journeys/quiet/pause", headers=dash.admin)
    assert paused.status_code == 200
    await dash.sign_in()
    response = await dash.http.get("/dashboard")
    assert response.status_code == 200
    rows = dict(re.findall(r'<tr data-journey="([^"]+)">(.*?)</tr>', response.text, re.S))
    assert list(rows) == ["quiet", JOURNEY_ID]
    spring = rows[JOURNEY_ID]
    assert '<a href="/dashboard/journeys/spring">Spring campaign</a>' in spring
    assert '<span class="status status-active">active</span>' in spring
    assert f'<code title="1 version(s) deployed">{version}</code>' in spring
    assert f'data-field="current">{EXPECTED.current}<' in spring
    assert f'data-field="entered">{EXPECTED.entered}<' in spring
    assert f'<span data-field="rate">{rate(EXPECTED.converted / EXPECTED.entered)}</span>' in spring
    assert "(1 of 7)" in spring
    assert re.search(r'width="14.29"[^>]*class="rate-fill"', spring)  # 1 of 7, 100 wide
    quiet = rows["quiet"]
    assert '<span class="status status-paused">paused</span>' in quiet
    assert 'data-field="entered">0<' in quiet and "\u2013" in quiet


async def test_with_no_journey_the_list_says_how_to_deploy_one(dash: Dash) -> None:
    await dash.sign_in()
    page = (await dash.http.get("/dashboard")).text
    assert "No journey is deployed yet." in page


async def test_the_journey_page_shows_what_the_json_api_says(dash: Dash) -> None:
    await dash.seeded()
    await dash.sign_in()
    response = await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}")
    assert response.status_code == 200
    shown = live_values(response.text)

    funnel = await dash.api(f"/api/journeys/{JOURNEY_ID}/funnel")
    assert [s["stage"] for s in funnel["stages"]] == STAGES
    for stage in funnel["stages"]:
        name = stage["stage"]
        assert shown[formatting.stage_key(name, "entered")] == str(stage["entered"])
        assert shown[formatting.stage_key(name, "current")] == str(stage["current"])
        assert shown[formatting.stage_key(name, "converted")] == str(stage["converted"])
        assert shown[formatting.stage_key(name, "rate")] == rate(stage["conversion_rate"])
        dropped = stage["moved_on"] + stage["exited"]
        assert shown[formatting.stage_key(name, "dropped")] == str(dropped)
        assert shown[formatting.stage_key(name, "goal")] == str(stage["goal"])
        # And what the seed says, independently of both.
        assert (stage["entered"], stage["current"], stage["converted"]) == EXPECTED.funnel[name]

    touchpoints = await dash.api(f"/api/journeys/{JOURNEY_ID}/touchpoints")
    assert [t["step_id"] for t in touchpoints["touchpoints"]] == [
        "welcome", "tips", "comparison", "vip-offer", "sample-kit", "thanks",
    ]  # fmt: skip
    for row in touchpoints["touchpoints"]:
        for field in ("sent", "delivered", "opened", "clicked", "failed", "conversions"):
            assert shown[formatting.step_key(row["step_id"], field)] == str(row[field]), field
    welcome = {t["step_id"]: t for t in touchpoints["touchpoints"]}["welcome"]
    assert (welcome["sent"], welcome["opened"], welcome["clicked"]) == (6, 2, 1)
    assert shown[formatting.step_key("welcome", "opened_rate")] == "33.3%"
    assert shown[formatting.step_key("comparison", "conversions")] == "1"

    assert shown[formatting.journey_key("entered")] == str(EXPECTED.entered)
    assert shown[formatting.journey_key("current")] == str(EXPECTED.current)
    assert shown[formatting.journey_key("converted")] == str(EXPECTED.converted)
    assert shown[formatting.journey_key("rate")] == "14.3%"


async def test_the_map_marks_the_drop_off_and_the_key_station(dash: Dash) -> None:
    await dash.seeded()
    page = (await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}", headers=dash.admin)).text
    metro = svg(page, "metro")
    assert [g.get("data-stage") for g in metro.findall("s:g[@data-stage]", NS)] == STAGES
    marked = metro.findall("s:g[@class='stage dropoff']", NS)
    assert [g.get("data-stage") for g in marked] == [EXPECTED.dropoff]
    keys = {g.get("data-step") for g in metro.findall(".//s:g[@class='station key']", NS)}
    assert keys == EXPECTED.key_stations
    # The stage table says it in words too.
    row = re.search(r'<tr data-stage="consideration" class="dropoff">(.*?)</tr>', page, re.S)
    assert row is not None and "busiest drop-off" in row.group(1)
    funnel = svg(page, "funnel")
    assert len(funnel.findall("s:g[@class='funnel-stage']", NS)) == 3


async def test_trends_and_time_to_convert_are_drawn(dash: Dash) -> None:
    await dash.seeded()
    by_day = (await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}", headers=dash.admin)).text
    today = datetime.now(UTC).strftime("%Y-%m-%d")
    # Today's row of the trend table: 7 entries, 1 conversion by the journey's goal.
    assert re.search(
        rf'<th scope="row">{today}</th>\s*<td class="num">7</td><td class="num">1</td>', by_day
    )
    trends = svg(by_day, "trends")
    assert len(trends.findall("s:g[@class='entries']/s:rect", NS)) == 31  # 30 days, cut in UTC
    timing = svg(by_day, "timing")
    stages = [g.get("data-stage") for g in timing.findall("s:g[@data-stage]", NS)]
    assert stages == STAGES
    by_hour = await dash.http.get(
        f"/dashboard/journeys/{JOURNEY_ID}", params={"bucket": "hour"}, headers=dash.admin
    )
    assert by_hour.status_code == 200
    assert '<strong aria-current="page">By hour, last 48 hours</strong>' in by_hour.text
    assert len(svg(by_hour.text, "trends").findall("s:g[@class='entries']/s:rect", NS)) == 49


async def test_the_version_selector_narrows_the_numbers(dash: Dash) -> None:
    first = await dash.seeded()
    second = await dash.deploy(JOURNEY.replace("name: Spring campaign", "name: Spring, again"))
    await transitions(dash.pool, "n1", [(None, "awareness", "entered")], version=second)
    everything = live_values(
        (await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}", headers=dash.admin)).text
    )
    assert everything[formatting.stage_key("awareness", "entered")] == "8"
    response = await dash.http.get(
        f"/dashboard/journeys/{JOURNEY_ID}", params={"version": first}, headers=dash.admin
    )
    page = response.text
    assert live_values(page)[formatting.stage_key("awareness", "entered")] == "7"
    assert f'<option value="{first}" selected>version {first}</option>' in page
    assert f'<option value="{second}" >version {second} (active)</option>' in page
    assert "<h1>Spring campaign</h1>" in page  # the plan of the version asked for
    assert f"/dashboard/journeys/{JOURNEY_ID}/live?version={first}" in page
    api = await dash.api(f"/api/journeys/{JOURNEY_ID}/funnel?version={first}")
    assert api["stages"][0]["entered"] == 7


@pytest.mark.parametrize(
    ("path", "status", "message"),
    [
        ("/dashboard/journeys/nope", 404, "No journey &#39;nope&#39; is deployed."),
        ("/dashboard/journeys/spring?version=0000", 404, "has no version &#39;0000&#39;"),
        ("/dashboard/journeys/spring?bucket=week", 400, "bucket must be &#39;day&#39; or"),
    ],
)
async def test_unknown_journeys_versions_and_buckets_are_clear_4xx(
    dash: Dash, path: str, status: int, message: str
) -> None:
    await dash.seeded()
    response = await dash.http.get(path, headers=dash.admin)
    assert response.status_code == status
    assert message in response.text
    assert 'role="alert"' in response.text


async def test_pages_allow_only_their_own_script_and_are_never_cached(dash: Dash) -> None:
    await dash.seeded()
    response = await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}", headers=dash.admin)
    policy = response.headers["content-security-policy"]
    nonce = re.search(r"script-src 'nonce-([^']+)'", policy)
    assert nonce is not None
    scripts = re.findall(r"<script([^>]*)>", response.text)
    assert scripts == [f' nonce="{nonce.group(1)}"']
    assert "default-src 'none'" in policy and "connect-src 'self'" in policy
    assert response.headers["cache-control"] == "no-store"
    again = await dash.http.get(f"/dashboard/journeys/{JOURNEY_ID}", headers=dash.admin)
    assert again.headers["content-security-policy"] != policy  # a fresh nonce each time


async def test_section_hooks_get_the_journey_and_fill_their_slot(
    dash: Dash, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = await dash.seeded()
    seen: list[JourneyRef] = []

    async def experiments(_: Any, ref: JourneyRef) -> dict[str, Any]:
        seen.append(ref)
        return {"variants": 2}

    monkeypatch.setitem(views.SECTIONS, "experiments", experiments)
    page = await views.journey_page(dash.pool, JOURNEY_ID, version=version)
    assert page.sections["experiments"] == {"variants": 2}
    assert [(r.journey_id, r.plan.version, r.version, r.versions) for r in seen] == [
        (JOURNEY_ID, version, version, (version,))
    ]
    # Every slot has its section's hook.
    assert (
        set(page.sections)
        == set(views.SECTIONS)
        == {
            "exits_and_cohorts",
            "experiments",
            "emotions",
        }
    )
    assert all(hook is not None for hook in views.SECTIONS.values())


# --- customers --------------------------------------------------------------------------------

PRO = """
id: pro
name: Pro plan
kind: persona
when: profile.plan == "pro"
"""


async def ingest(dash: Dash, kind: str, body: dict[str, Any]) -> None:
    response = await dash.http.post(f"/v1/{kind}", json=body, auth=(WRITE_KEY, ""))
    assert response.status_code == 200, response.text


async def test_the_customer_page_shows_profile_segments_and_journeys(dash: Dash) -> None:
    await dash.seeded()
    deployed = await dash.http.post("/api/segments", content=PRO, headers=dash.admin)
    assert deployed.status_code == 201, deployed.text
    await ingest(
        dash,
        "identify",
        {"userId": "c5", "anonymousId": "anon-5", "traits": {"plan": "pro", "city": "Taipei"}},
    )
    await sweep_segments(dash.pool, index=dash.services.index, now=datetime.now(UTC))
    await dash.sign_in()

    found = await dash.http.get("/dashboard/customers", params={"q": " anon-5 "})
    assert found.status_code == 303
    assert found.headers["location"] == "/dashboard/customers/anon-5"
    response = await dash.http.get(found.headers["location"])
    assert response.status_code == 200
    page = response.text
    assert "<h1>Customer <code>c5</code></h1>" in page
    assert "You asked for <code>anon-5</code>" in page
    assert '<tr><th scope="row">city</th><td>Taipei</td></tr>' in page
    assert '<li data-segment="pro"><strong>Pro plan</strong>' in page
    running = re.search(r'<table class="runs">(.*?)</table>', page, re.S)
    assert running is not None
    assert '<a href="/dashboard/journeys/spring">Spring campaign</a>' in running.group(1)
    assert '<td data-field="stage">awareness</td>' in running.group(1)
    assert "Positions: not configured" in page
    view = await dash.api("/api/customers/c5")
    assert [r["stage"] for r in view["journeys"]["running"]] == ["awareness"]


async def test_finished_journeys_are_listed_with_how_they_ended(dash: Dash) -> None:
    await dash.seeded()
    page = (await dash.http.get("/dashboard/customers/c1", headers=dash.admin)).text
    finished = re.search(r'<table class="runs finished">(.*?)</table>', page, re.S)
    assert finished is not None
    assert '<td data-field="status">converted</td>' in finished.group(1)
    assert "Not in any journey now." in page


async def test_customer_ids_with_slashes_and_unknown_ids(dash: Dash) -> None:
    await ingest(dash, "identify", {"userId": "shop/42", "traits": {"plan": "free"}})
    await dash.sign_in()
    found = await dash.http.get("/dashboard/customers", params={"q": "shop/42"})
    assert found.headers["location"] == "/dashboard/customers/shop%2F42"
    page = await dash.http.get(found.headers["location"])
    assert page.status_code == 200 and "<code>shop/42</code>" in page.text
    missing = await dash.http.get("/dashboard/customers", params={"q": "nobody"})
    assert missing.status_code == 404
    assert "No customer was seen under the id &#39;nobody&#39;." in missing.text
    direct = await dash.http.get("/dashboard/customers/nobody")
    assert direct.status_code == 404
    blank = await dash.http.get("/dashboard/customers", params={"q": ""})
    assert blank.status_code == 200 and "<h1>Find a customer</h1>" in blank.text
