"""The dashboard in headless Chromium: sign in, the journeys, the map, live numbers, the
touchpoints' goals and KPIs (observed touchpoints too), the sections (exits and cohorts,
experiments and holdout, the emotion curve), two versions compared, on a laptop and on a
phone."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    ViewportSize,
    expect,
)

from journeyman.orchestrator.api import Services
from journeyman.orchestrator.dashboard import formatting, session

from ..orchestrator.dashboard import kpi_seed, sections_seed
from ..orchestrator.dashboard.seed import EXPECTED, JOURNEY, JOURNEY_ID, STAGES, seed, transitions
from .conftest import ADMIN_TOKEN, WRITE_KEY, Served, artifacts_dir

DESKTOP: ViewportSize = {"width": 1280, "height": 900}
PHONE: ViewportSize = {"width": 390, "height": 844}


@dataclass
class Seeded:
    api: Served
    version: str
    pool: Any

    async def json(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=self.api.url, headers=headers) as http:
            response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def seeded(live_api: Served, services: Services) -> Seeded:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=live_api.url, headers=headers) as http:
        response = await http.post("/api/journeys", content=JOURNEY)
    assert response.status_code == 201, response.text
    version: str = response.json()["version"]
    await seed(services.pool, version=version)
    return Seeded(live_api, version, services.pool)


@dataclass
class Tab:
    context: BrowserContext
    page: Page
    console: list[ConsoleMessage]

    def problems(self) -> list[str]:
        """Console errors and warnings: a script error or a blocked resource shows here."""
        return [m.text for m in self.console if m.type in ("error", "warning")]


async def open_tab(browser: Browser, viewport: ViewportSize, **options: Any) -> Tab:
    context = await browser.new_context(viewport=viewport, **options)
    console: list[ConsoleMessage] = []

    def keep(message: ConsoleMessage) -> None:
        console.append(message)

    context.on("console", keep)
    return Tab(context, await context.new_page(), console)


@pytest.fixture
async def desktop(browser: Browser) -> AsyncIterator[Tab]:
    tab = await open_tab(browser, DESKTOP)
    yield tab
    await tab.context.close()


async def sign_in(tab: Tab, api: Served, path: str = "/dashboard") -> None:
    await tab.page.goto(f"{api.url}{path}")
    assert tab.page.url.startswith(f"{api.url}/dashboard/sign-in")
    await tab.page.fill("#token", ADMIN_TOKEN)
    await tab.page.click("button[type=submit].primary")
    await tab.page.wait_for_url(f"{api.url}{path}")


async def fits_its_card(page: Page, selector: str) -> None:
    """The table is whole inside its frame: nothing to scroll to, its last heading in view."""
    wrap = page.locator(f".table-wrap:has({selector})")
    hidden = await wrap.evaluate("element => element.scrollWidth - element.clientWidth")
    assert hidden <= 0, f"{selector} overflows its card by {hidden}px"
    frame = await wrap.bounding_box()
    last = await page.locator(f"{selector} thead th").last.bounding_box()
    assert frame is not None and last is not None
    assert last["x"] + last["width"] <= frame["x"] + frame["width"] + 0.5


async def live(page: Page, key: str) -> str:
    """The text of the first element showing the live number ``key``."""
    text = await page.locator(f'[data-live="{key}"]').first.text_content()
    assert text is not None
    return text


async def test_a_wrong_token_is_refused_and_sets_no_cookie(seeded: Seeded, desktop: Tab) -> None:
    page = desktop.page
    await page.goto(f"{seeded.api.url}/dashboard")
    await page.fill("#token", "adm_not_it")
    await page.click("button[type=submit].primary")
    alert = page.locator("[role=alert]")
    await alert.wait_for()
    assert "That is not the admin token." in (await alert.text_content() or "")
    assert await desktop.context.cookies() == []
    assert await page.get_attribute("#token", "aria-invalid") == "true"


async def test_signed_in_the_journeys_list_shows_the_journey_and_its_numbers(
    seeded: Seeded, desktop: Tab
) -> None:
    await sign_in(desktop, seeded.api)
    [cookie] = await desktop.context.cookies()
    assert cookie["name"] == session.COOKIE_NAME
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert ADMIN_TOKEN not in cookie["value"]
    # Scripts cannot read it.
    assert await desktop.page.evaluate("document.cookie") == ""

    row = desktop.page.locator(f'tr[data-journey="{JOURNEY_ID}"]')
    await row.wait_for()
    assert await row.locator("th a").text_content() == "Spring campaign"
    assert await row.locator(".status").text_content() == "active"
    assert await row.locator('[data-field="entered"]').text_content() == str(EXPECTED.entered)
    assert await row.locator('[data-field="current"]').text_content() == str(EXPECTED.current)
    assert await row.locator('[data-field="rate"]').text_content() == "14.3%"
    await desktop.page.screenshot(path=str(artifacts_dir() / "dashboard-journeys.png"))

    # The search box leads to a customer: where they are, and their profile.
    async with httpx.AsyncClient(base_url=seeded.api.url) as http:
        identify = {"userId": "c5", "traits": {"first_name": "Mei", "city": "Taipei"}}
        response = await http.post("/v1/identify", json=identify, auth=(WRITE_KEY, ""))
        assert response.status_code == 200, response.text
    await desktop.page.fill("#customer-search", "c5")
    await desktop.page.click("text=Find customer")
    await desktop.page.wait_for_url(f"{seeded.api.url}/dashboard/customers/c5")
    run = desktop.page.locator(f'table.runs tr[data-journey="{JOURNEY_ID}"]')
    assert await run.locator('[data-field="stage"]').text_content() == "awareness"
    assert "Taipei" in (await desktop.page.locator("#traits").text_content() or "")
    await desktop.page.screenshot(path=str(artifacts_dir() / "dashboard-customer.png"))
    assert desktop.problems() == []


async def test_the_journey_page_draws_the_map_with_the_numbers_of_the_api(
    seeded: Seeded, desktop: Tab, browser: Browser
) -> None:
    await sign_in(desktop, seeded.api)
    page = desktop.page
    await page.click(f'tr[data-journey="{JOURNEY_ID}"] th a')
    await page.wait_for_url(f"{seeded.api.url}/dashboard/journeys/{JOURNEY_ID}")

    metro = page.locator("svg.metro")
    stages = metro.locator("g.stage")
    assert await stages.count() == len(STAGES)
    assert [await stages.nth(i).get_attribute("data-stage") for i in range(len(STAGES))] == STAGES
    stations = metro.locator("g.station")
    assert await stations.count() == 6
    assert await metro.locator("g.station.key").get_attribute("data-step") == "comparison"
    dropoff = metro.locator("g.stage.dropoff")
    assert await dropoff.get_attribute("data-stage") == EXPECTED.dropoff
    assert await dropoff.locator(".dropoff-label").text_content() == (
        "Busiest drop-off: 3 left without converting"
    )
    assert await dropoff.locator("rect.hatch").is_visible()

    funnel = await seeded.json(f"/api/journeys/{JOURNEY_ID}/funnel")
    for stage in funnel["stages"]:
        name = stage["stage"]
        assert await live(page, formatting.stage_key(name, "entered")) == str(stage["entered"])
        assert await live(page, formatting.stage_key(name, "current")) == str(stage["current"])
        assert await live(page, formatting.stage_key(name, "rate")) == (
            f"{stage['conversion_rate'] * 100:.1f}%"
        )
    touchpoints = await seeded.json(f"/api/journeys/{JOURNEY_ID}/touchpoints")
    for row in touchpoints["touchpoints"]:
        for field in ("sent", "opened", "clicked", "conversions"):
            assert await live(page, formatting.step_key(row["step_id"], field)) == str(row[field])
    # Wide tables stay inside their card: the stage table's last column is not cut off.
    await fits_its_card(page, "table.stages")
    await page.screenshot(path=str(artifacts_dir() / "dashboard-journey.png"), full_page=True)
    assert desktop.problems() == []

    # The same page on a phone: it fits the screen's width (wide tables scroll in place).
    phone = await open_tab(browser, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        await sign_in(phone, seeded.api, f"/dashboard/journeys/{JOURNEY_ID}")
        overflow = await phone.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        box = await phone.page.locator("svg.metro").bounding_box()
        assert box is not None and box["width"] <= PHONE["width"]
        assert await live(phone.page, formatting.journey_key("entered")) == str(EXPECTED.entered)
        await phone.page.screenshot(
            path=str(artifacts_dir() / "dashboard-journey-phone.png"), full_page=True
        )
        assert phone.problems() == []
    finally:
        await phone.context.close()


async def test_numbers_change_in_the_open_page_without_a_reload(
    seeded: Seeded, desktop: Tab
) -> None:
    await sign_in(desktop, seeded.api, f"/dashboard/journeys/{JOURNEY_ID}")
    page = desktop.page
    # Locator assertions, not wait_for_function: the page's policy forbids evaluating strings.
    await expect(page.locator("#live-status")).to_have_text(re.compile(r"^Live"))
    await page.evaluate("window.stillTheSamePage = true")
    key = formatting.stage_key("awareness", "entered")
    assert await live(page, key) == "7"

    started = time.monotonic()
    await transitions(seeded.pool, "c8", [(None, "awareness", "entered")], version=seeded.version)
    await expect(page.locator(f'[data-live="{key}"]').first).to_have_text("8", timeout=10_000)
    assert time.monotonic() - started < 5
    assert await live(page, formatting.journey_key("entered")) == "8"
    assert await live(page, formatting.stage_key("awareness", "current")) == "2"
    # The funnel's bar moved with it: 4 of 8 converted is half the scale.
    bar = page.locator('[data-live="funnel:awareness:bar"]')
    assert await bar.get_attribute("width") == "185.0"
    assert await page.evaluate("window.stillTheSamePage") is True
    await asyncio.sleep(0.2)  # let the highlight start, for the screenshot
    await page.screenshot(path=str(artifacts_dir() / "dashboard-journey-live.png"))
    assert desktop.problems() == []


@pytest.fixture
async def launched(live_api: Served, services: Services) -> Seeded:
    """The ``launch`` journey: goals and KPIs, observed touchpoints, KPI events ingested."""
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=live_api.url, headers=headers) as http:
        response = await http.post("/api/journeys", content=kpi_seed.JOURNEY)
    assert response.status_code == 201, response.text
    version: str = response.json()["version"]
    async with httpx.AsyncClient(base_url=live_api.url) as http:
        await kpi_seed.seed_kpis(services.pool, http, WRITE_KEY, version=version)
    return Seeded(live_api, version, services.pool)


def said(row: dict[str, Any]) -> str:
    """A touchpoint's goal and KPI as the map says them, from the touchpoints API's row."""
    customers = row["kpi_customers"]
    kpi = f"{row['kpi']} {row['kpi_count']} ({customers} customer{'s' * (customers != 1)})"
    return f"goal: {row['goal']} · {kpi}"


async def test_the_map_shows_goals_kpis_and_observed_touchpoints(
    launched: Seeded, desktop: Tab, browser: Browser
) -> None:
    path = f"/dashboard/journeys/{kpi_seed.JOURNEY_ID}"
    await sign_in(desktop, launched.api, path)
    page = desktop.page
    await expect(page.locator("#live-status")).to_have_text(re.compile(r"^Live"))
    await page.evaluate("window.stillTheSamePage = true")

    report = await launched.json(f"/api/journeys/{kpi_seed.JOURNEY_ID}/touchpoints")
    rows = {t["step_id"]: t for t in report["touchpoints"]}
    metro = page.locator("svg.metro")
    observed = metro.locator("g.station.observed")
    assert await observed.count() == len(kpi_seed.OBSERVED)
    for index, name in enumerate(kpi_seed.OBSERVED):
        station = observed.nth(index)
        assert await station.get_attribute("data-observed") == name
        assert await station.locator("rect.marker").is_visible()
        assert await station.locator(".station-name").text_content() == f"{name} · observed"
        assert await station.locator(".measure").text_content() == said(rows[name])
        # Placed in its stage.
        stage = metro.locator(
            f'g.stage[data-stage="{rows[name]["stage"]}"] [data-observed="{name}"]'
        )
        assert await stage.count() == 1
    offer = metro.locator('g.station[data-step="offer"] .measure')
    assert await offer.text_content() == said(rows["offer"])
    assert (rows["offer"]["kpi_count"], rows["offer"]["kpi_customers"]) == kpi_seed.EXPECTED[
        "offer"
    ]
    invite = metro.locator('g.station[data-step="invite"] .measure')
    assert await invite.text_content() == "goal: awareness · no KPI"
    legend = await metro.locator("g.legend").text_content()
    assert legend is not None and "observed touchpoint: measured, not sent" in legend

    table = page.locator("table.touchpoints")
    website = table.locator('tr[data-step="website"]')
    assert await website.locator('[data-field="kind"]').text_content() == "observed"
    assert await website.locator('[data-field="goal"]').text_content() == "traffic"
    assert await website.locator('[data-field="kpi_count"]').text_content() == "3"
    assert await website.locator('[data-field="kpi_customers"]').text_content() == "2"
    await page.screenshot(path=str(artifacts_dir() / "dashboard-journey-kpis.png"), full_page=True)

    # k5, still in awareness, visits the website twice: the map and the table count them
    # without a reload.
    async with httpx.AsyncClient(base_url=launched.api.url) as http:
        for _ in range(2):
            await kpi_seed.page_view(http, WRITE_KEY, "k5")
    count = page.locator(f'[data-live="{formatting.observed_key("website", "kpi_count")}"]')
    await expect(count.first).to_have_text("5", timeout=15_000)
    await expect(website.locator('[data-field="kpi_count"]')).to_have_text("5")
    assert await observed.first.locator(".measure").text_content() == (
        "goal: traffic · visits 5 (2 customers)"
    )
    assert await page.evaluate("window.stillTheSamePage") is True
    assert desktop.problems() == []

    # On a phone the map fits the screen, and every goal and KPI line stays within it.
    phone = await open_tab(browser, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        await sign_in(phone, launched.api, path)
        overflow = await phone.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        drawn = await phone.page.locator("svg.metro").bounding_box()
        assert drawn is not None and drawn["width"] <= PHONE["width"]
        lines = phone.page.locator("svg.metro .measure")
        assert await lines.count() == 4
        for index in range(await lines.count()):
            box = await lines.nth(index).bounding_box()
            assert box is not None
            assert box["x"] + box["width"] <= drawn["x"] + drawn["width"] + 0.5
        await phone.page.screenshot(
            path=str(artifacts_dir() / "dashboard-journey-kpis-phone.png"), full_page=True
        )
        assert phone.problems() == []
    finally:
        await phone.context.close()


@dataclass
class Offers:
    """The ``offers`` journey with an experiment, a holdout, answers and two versions."""

    api: Served
    first: str
    second: str

    async def json(self, path: str) -> Any:
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        async with httpx.AsyncClient(base_url=self.api.url, headers=headers) as http:
            response = await http.get(path)
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture
async def offers(live_api: Served, services: Services) -> Offers:
    headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    async with httpx.AsyncClient(base_url=live_api.url, headers=headers) as http:
        first = await http.post("/api/journeys", content=sections_seed.JOURNEY)
        assert first.status_code == 201, first.text
        await sections_seed.seed_sections(
            services.pool, http, WRITE_KEY, version=first.json()["version"]
        )
        second = await http.post("/api/journeys", content=sections_seed.SECOND)
        assert second.status_code == 201, second.text
    await sections_seed.second_version(services.pool, version=second.json()["version"])
    return Offers(live_api, first.json()["version"], second.json()["version"])


async def test_the_journey_page_shows_exits_cohorts_experiments_and_feelings(
    offers: Offers, desktop: Tab, browser: Browser
) -> None:
    path = f"/dashboard/journeys/{sections_seed.JOURNEY_ID}"
    await sign_in(desktop, offers.api, path)
    page = desktop.page
    for selector in (
        "#emotions svg.emotions",
        "#exits svg.exits",
        "#cohorts table.cohorts",
        "#experiments svg.experiment",
        "#experiments svg.holdout",
    ):
        await expect(page.locator(selector)).to_be_visible()

    # The emotion curve sits under the map, in its column: the feelings along the same stages.
    map_box = await page.locator("svg.metro").bounding_box()
    curve_box = await page.locator("svg.emotions").bounding_box()
    assert map_box is not None and curve_box is not None
    assert curve_box["y"] > map_box["y"] + map_box["height"]
    assert abs(curve_box["x"] - map_box["x"]) < 2
    points = page.locator("svg.emotions g.stage-point")
    assert [await points.nth(i).get_attribute("data-stage") for i in range(3)] == (
        sections_seed.STAGES
    )
    emotions = await offers.json(f"/api/journeys/{sections_seed.JOURNEY_ID}/emotions")
    welcome = emotions["stages"][0]
    assert await points.nth(0).locator(".average").text_content() == f"{welcome['average']:.1f}"
    assert await points.nth(0).locator(".answers").text_content() == f"n={welcome['answers']}"
    assert await points.nth(2).locator(".no-answers").text_content() == "no answers"

    experiments = await offers.json(f"/api/journeys/{sections_seed.JOURNEY_ID}/experiments")
    [offer] = experiments["experiments"]
    winner = page.locator('article[data-step="offer-test"] [data-field="winner"]')
    assert "Winner: discount" in (await winner.text_content() or "")
    discount = {v["name"]: v for v in offer["variants"]}["discount"]
    verdict = page.locator('svg.experiment g[data-group="discount"] .verdict')
    assert await verdict.text_content() == "significantly better than the control"
    assert discount["significant"] is True
    uplift = experiments["holdout"]["uplift"]
    shown = await page.locator('[data-field="uplift"] strong').text_content()
    assert shown == f"Uplift {uplift * 100:+.1f} pts"

    for selector in ("table.stages", "table.exits"):
        await fits_its_card(page, selector)
    await page.screenshot(
        path=str(artifacts_dir() / "dashboard-journey-sections.png"), full_page=True
    )
    assert desktop.problems() == []

    phone = await open_tab(browser, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        await sign_in(phone, offers.api, path)
        overflow = await phone.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        for selector in ("svg.emotions", "svg.exits", "svg.experiment", "svg.holdout"):
            box = await phone.page.locator(selector).bounding_box()
            assert box is not None and box["width"] <= PHONE["width"], selector
        await phone.page.screenshot(
            path=str(artifacts_dir() / "dashboard-journey-sections-phone.png"), full_page=True
        )
        assert phone.problems() == []
    finally:
        await phone.context.close()


async def test_two_versions_are_compared_side_by_side(
    offers: Offers, desktop: Tab, browser: Browser
) -> None:
    journey = f"/dashboard/journeys/{sections_seed.JOURNEY_ID}"
    await sign_in(desktop, offers.api, journey)
    page = desktop.page
    # The version selector links to the comparison of the active version with the one before.
    await page.click(".compare-link a")
    compare = f"{journey}/compare?a={offers.first}&b={offers.second}"
    await page.wait_for_url(f"{offers.api.url}{compare}")
    for selector in ("svg.compare-conversion", "svg.compare-exits", "svg.compare-timing"):
        await expect(page.locator(selector)).to_be_visible()

    report = await offers.json(
        f"/api/journeys/{sections_seed.JOURNEY_ID}/compare?a={offers.first}&b={offers.second}"
    )
    welcome = report["stages"][0]
    row = page.locator('table.compare-stages tr[data-stage="welcome"]')
    assert await row.locator('[data-field="a_entered"]').text_content() == str(welcome["a_entered"])
    assert await row.locator('[data-field="b_rate"]').text_content() == (
        f"{welcome['b_rate'] * 100:.1f}%"
    )
    assert await row.locator('[data-field="difference"]').text_content() == (
        f"{welcome['difference'] * 100:+.1f} pts"
    )
    await page.screenshot(path=str(artifacts_dir() / "dashboard-compare.png"), full_page=True)
    assert desktop.problems() == []

    phone = await open_tab(browser, PHONE, device_scale_factor=2, is_mobile=True, has_touch=True)
    try:
        await sign_in(phone, offers.api, compare)
        overflow = await phone.page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0
        await phone.page.screenshot(
            path=str(artifacts_dir() / "dashboard-compare-phone.png"), full_page=True
        )
        assert phone.problems() == []
    finally:
        await phone.context.close()
