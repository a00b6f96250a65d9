"""journeyman.js in a real browser: the demo shop, another site's page, outages and refusals,
with what reached the ``events`` table as the proof."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlencode

import httpx
from playwright.async_api import Page
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.routing import Route

import journeyman
from journeyman.orchestrator.api import Services, create_app

from .conftest import (
    REPO,
    WRITE_KEY,
    Ingested,
    RecordingFront,
    Served,
    Visitor,
    artifacts_dir,
    serving,
)

SNIPPET = REPO / "orchestrator" / "api" / "static" / "journeyman.js"
SHOP_TITLE = "Lumen Beauty · Night Renewal Serum"
CAMPAIGN = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "night-renewal"}


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


async def queued(page: Page) -> int:
    """Messages the snippet keeps in localStorage until the API accepts them."""
    count: int = await page.evaluate(
        "Object.keys(localStorage).filter(k => k.startsWith('journeyman.queue.')).length"
    )
    return count


async def snippet_ready(page: Page) -> None:
    await page.wait_for_function("window.journeyman && typeof journeyman.flush === 'function'")


def shop_url(api: Served, write_key: str = WRITE_KEY, **params: str) -> str:
    return f"{api.url}/demo/shop?{urlencode({'writeKey': write_key, **params})}"


# --- served over HTTP (no browser needed) ---------------------------------------------------


async def test_the_snippet_is_served_as_cacheable_javascript(live_api: Served) -> None:
    async with httpx.AsyncClient(base_url=live_api.url) as http:
        response = await http.get("/js/journeyman.js")
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/javascript")
        assert response.headers["cache-control"] == "public, max-age=300"
        assert response.content == SNIPPET.read_bytes()
        etag = response.headers["etag"]
        again = await http.get("/js/journeyman.js", headers={"If-None-Match": etag})
        assert again.status_code == 304
        assert again.content == b""
        stale = await http.get("/js/journeyman.js", headers={"If-None-Match": '"other"'})
        assert stale.status_code == 200


async def test_the_snippet_names_the_package_version() -> None:
    declared = re.search(r'const VERSION = "([^"]+)";', SNIPPET.read_text())
    assert declared is not None
    assert declared.group(1) == journeyman.__version__


async def test_the_demo_shop_is_served_without_a_write_key(live_api: Served) -> None:
    async with httpx.AsyncClient(base_url=live_api.url) as http:
        response = await http.get("/demo/shop")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert '<script src="/js/journeyman.js"></script>' in response.text
    assert WRITE_KEY not in response.text


async def test_ingest_allows_any_origin_without_credentials(live_api: Served) -> None:
    origin = {"Origin": "https://shop.example"}
    async with httpx.AsyncClient(base_url=live_api.url) as http:
        preflight = await http.options(
            "/v1/batch",
            headers={
                **origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "*"
        assert "POST" in preflight.headers["access-control-allow-methods"]
        allowed = preflight.headers["access-control-allow-headers"].lower()
        assert "authorization" in allowed and "content-type" in allowed
        assert "access-control-allow-credentials" not in preflight.headers

        message = {"type": "track", "event": "Product Viewed", "anonymousId": "a-1"}
        accepted = await http.post(
            "/v1/batch",
            content=json.dumps({"writeKey": WRITE_KEY, "batch": [message]}),
            headers={**origin, "Content-Type": "text/plain"},
        )
        assert accepted.status_code == 200, accepted.text
        assert accepted.headers["access-control-allow-origin"] == "*"
        assert "retry-after" in accepted.headers["access-control-expose-headers"].lower()
        assert "access-control-allow-credentials" not in accepted.headers

        # A refusal must be readable by the page too, or it could not tell it from an outage.
        refused = await http.post(
            "/v1/batch", json={"writeKey": "wk_wrong", "batch": [message]}, headers=origin
        )
        assert refused.status_code == 401
        assert refused.headers["access-control-allow-origin"] == "*"

        admin = await http.get("/api/journeys", headers=origin)
        assert "access-control-allow-origin" not in admin.headers
        admin_preflight = await http.options(
            "/api/journeys",
            headers={**origin, "Access-Control-Request-Method": "GET"},
        )
        assert "access-control-allow-origin" not in admin_preflight.headers


# --- in Chromium ----------------------------------------------------------------------------


async def test_a_visit_to_the_demo_shop_is_stored(
    live_api: Served, ingested: Ingested, visitor: Visitor
) -> None:
    page = await visitor.context.new_page()
    await page.goto(shop_url(live_api, **CAMPAIGN))
    await snippet_ready(page)
    anonymous_id = await page.evaluate("journeyman.anonymousId()")
    await page.click("#view-product")
    await page.click("#add-to-cart")
    await page.screenshot(path=str(artifacts_dir() / "shop-product.png"), full_page=True)
    # Straight away, while the clicks may still be waiting: the reload must lose none of them.
    await page.reload()
    await snippet_ready(page)
    assert await page.evaluate("journeyman.anonymousId()") == anonymous_id
    assert await page.text_content("#cart-count") == "1"
    await page.fill("#first-name", "Mei")
    await page.fill("#email", "Mei.Lin@example.com")
    await page.click("#sign-up")
    await page.click("#checkout")
    await page.click("#place-order")
    await page.wait_for_selector("#thanks", state="visible")
    await page.screenshot(path=str(artifacts_dir() / "shop-order.png"), full_page=True)

    rows = await ingested.wait_for(8)
    assert [(r["type"], r["event"]) for r in rows] == [
        ("page", "Shop"),
        ("track", "Product Viewed"),
        ("track", "Product Added"),
        ("page", "Shop"),
        ("identify", None),
        ("track", "Signed Up"),
        ("track", "Checkout Started"),
        ("track", "Order Completed"),
    ]
    assert {r["anonymous_id"] for r in rows} == {anonymous_id}
    user = "mei.lin@example.com"
    assert [r["user_id"] for r in rows] == [None] * 4 + [user] * 4

    # The page view: where, what and from which campaign, in properties and in context. The
    # write key was taken out of the address before anything was sent.
    url = f"{live_api.url}/demo/shop?{urlencode(CAMPAIGN)}"
    page_info = {
        "path": "/demo/shop",
        "referrer": "",
        "search": f"?{urlencode(CAMPAIGN)}",
        "title": SHOP_TITLE,
        "url": url,
    }
    view = rows[0]
    assert view["properties"] == {**page_info, "name": "Shop", "category": "anti-aging"}
    for row in rows:
        context = row["context"]
        assert context["page"] == page_info
        assert context["timezone"] == "Asia/Taipei"
        assert context["locale"] == "zh-TW"
        assert context["library"] == {"name": "journeyman.js", "version": journeyman.__version__}
        assert "Chrome" in context["userAgent"]
        assert context["campaign"] == {
            "source": "newsletter",
            "medium": "email",
            "name": "night-renewal",
        }
    assert WRITE_KEY not in str(rows)

    by_event = {r["event"]: r for r in rows if r["type"] == "track"}
    viewed = by_event["Product Viewed"]["properties"]
    assert viewed["product_id"] == "serum-night-30"
    assert viewed["category"] == "anti-aging"
    assert viewed["price"] == 68
    assert by_event["Product Added"]["properties"]["quantity"] == 1
    assert by_event["Checkout Started"]["properties"]["value"] == 68
    assert [p["product_id"] for p in by_event["Checkout Started"]["properties"]["products"]] == [
        "serum-night-30"
    ]
    order = by_event["Order Completed"]["properties"]
    assert order["category"] == "anti-aging"
    assert order["total"] == 68
    assert order["order_id"] == await page.text_content("#order-id")
    assert by_event["Signed Up"]["properties"] == {"source": "web", "method": "email"}

    identify = rows[4]
    assert identify["traits"] == {"email": user, "first_name": "Mei"}

    # Every message was acknowledged, and the snippet set no cookie of its own.
    await eventually(lambda: _equals(queued(page), 0), "the queue is empty")
    assert await visitor.context.cookies() == []
    assert [m.text for m in visitor.console if m.type in ("error", "warning")] == []


async def _equals(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_reset_starts_a_new_anonymous_visitor(
    live_api: Served, ingested: Ingested, visitor: Visitor
) -> None:
    page = await visitor.context.new_page()
    await page.goto(shop_url(live_api))
    await snippet_ready(page)
    first = await page.evaluate("journeyman.anonymousId()")
    await page.evaluate(
        """() => {
            journeyman.identify("cust-7", {first_name: "Ji-woo"});
            journeyman.reset();
            journeyman.track("Product Viewed", {category: "anti-aging"});
        }"""
    )
    # The identify and the track may share a batch, which is stored in customer order.
    rows = sorted(
        await ingested.wait_for(3), key=lambda r: ["page", "identify", "track"].index(r["type"])
    )
    assert [(r["type"], r["user_id"]) for r in rows] == [
        ("page", None),
        ("identify", "cust-7"),
        ("track", None),
    ]
    second = await page.evaluate("journeyman.anonymousId()")
    assert second != first
    assert [r["anonymous_id"] for r in rows] == [first, first, second]
    assert await page.evaluate("journeyman.userId()") is None


async def test_the_anonymous_id_falls_back_to_a_cookie(
    live_api: Served, ingested: Ingested, visitor: Visitor
) -> None:
    # A visitor whose browser blocks site storage: localStorage throws on every access.
    await visitor.context.add_init_script(
        """Object.defineProperty(window, "localStorage", {
            get() { throw new DOMException("site data is blocked", "SecurityError"); },
        });"""
    )
    page = await visitor.context.new_page()
    await page.goto(shop_url(live_api))
    await snippet_ready(page)
    await ingested.wait_for(1)
    await page.reload()
    rows = await ingested.wait_for(2)
    anonymous_id = rows[0]["anonymous_id"]
    assert rows[1]["anonymous_id"] == anonymous_id
    cookies = await visitor.context.cookies()
    assert [(c["name"], c["value"], c["sameSite"]) for c in cookies] == [
        ("journeyman_anonymous_id", anonymous_id, "Lax")
    ]


async def test_a_page_on_another_origin_loses_nothing_while_the_api_is_away(
    live_api: Served, ingested: Ingested, visitor: Visitor
) -> None:
    # The example page of docs/browser.md, on a site of its own, loading the snippet from the
    # API with the asynchronous loader and sending to it across origins.
    docs = (REPO / "docs" / "browser.md").read_text()
    example = docs.split("```html\n", 1)[1].split("```", 1)[0]
    example = example.replace("https://journeyman.example.com", live_api.url)
    example = example.replace("YOUR_WRITE_KEY", WRITE_KEY)

    async def landing(_: Request) -> HTMLResponse:
        return HTMLResponse(example)

    async with serving(Starlette(routes=[Route("/serum", landing)])) as site:
        assert site.url != live_api.url
        page = await visitor.context.new_page()
        await page.goto(f"{site.url}/serum")
        await snippet_ready(page)
        [first_view] = await ingested.wait_for(1)
        await eventually(lambda: _equals(queued(page), 0), "the page view is acknowledged")

        await live_api.stop()
        await page.click("#notify")
        await eventually(lambda: _equals(queued(page), 1), "the click waits in storage")
        # The visitor comes back to the page while the API is still away; the snippet itself
        # comes from the browser's cache.
        await page.goto(f"{site.url}/serum")
        await snippet_ready(page)
        await eventually(lambda: _equals(queued(page), 2), "the new page view waits too")
        assert len(await ingested.rows()) == 1

        await live_api.start()
        # The next page the visitor opens sends what the outage left in storage, at once
        # (an open page would also retry on its own, after its backoff of up to a minute).
        await page.goto(f"{site.url}/serum")
        await snippet_ready(page)
        rows = (await ingested.wait_for(4, within=30))[:3]
        # The page read each answer (CORS let it), so it forgot what was accepted.
        await eventually(lambda: _equals(queued(page), 0), "the queue is empty")

    assert [(r["type"], r["event"]) for r in rows] == [
        ("page", None),
        ("track", "Back In Stock Requested"),
        ("page", None),
    ]
    assert rows[0]["message_id"] == first_view["message_id"]
    assert {r["anonymous_id"] for r in rows} == {first_view["anonymous_id"]}
    assert rows[1]["properties"] == {"product_id": "serum-night-30", "category": "anti-aging"}
    for row in rows:
        assert row["context"]["page"]["url"] == f"{site.url}/serum"
        assert row["context"]["page"]["title"] == "Night Renewal Serum · Lumen Beauty"


async def test_retry_after_is_honoured(
    services: Services, ingested: Ingested, visitor: Visitor
) -> None:
    front = RecordingFront(
        create_app(services, follow_deploys=False),
        answers=[(503, {"Retry-After": "2"}), (429, {"Retry-After": "1"})],
    )
    async with serving(front) as api:
        page = await visitor.context.new_page()
        await page.goto(shop_url(api))
        await snippet_ready(page)
        [row] = await ingested.wait_for(1)
        await eventually(lambda: _equals(queued(page), 0), "the queue is empty")

    assert [a.status for a in front.attempts] == [503, 429, 200]
    assert all(a.message_ids == [row["message_id"]] for a in front.attempts)
    first, second, third = (a.at for a in front.attempts)
    # Timers may fire a few milliseconds early against the server's clock, never a second.
    assert second - first >= 1.95
    assert third - second >= 0.95


async def test_a_refused_batch_is_dropped_not_retried(
    services: Services, ingested: Ingested, visitor: Visitor
) -> None:
    front = RecordingFront(create_app(services, follow_deploys=False))
    async with serving(front) as api:
        page = await visitor.context.new_page()
        await page.goto(shop_url(api, write_key="wk_not_a_key"))
        await snippet_ready(page)

        async def answered() -> bool:
            return len(front.attempts) == 1

        await eventually(answered, "the API answers")
        await eventually(lambda: _equals(queued(page), 0), "the refused message is dropped")
        # A retry would come within a second or two; none may.
        await asyncio.sleep(3)

    assert [a.status for a in front.attempts] == [401]
    assert await ingested.rows() == []
    warnings = [m.text for m in visitor.console if m.type == "warning"]
    assert len(warnings) == 1
    assert "refused 1 message(s) (401)" in warnings[0]
    assert "write key" in warnings[0]  # the API's reason


async def test_a_call_right_before_leaving_goes_out_as_a_beacon(
    services: Services, ingested: Ingested, visitor: Visitor
) -> None:
    front = RecordingFront(create_app(services, follow_deploys=False))
    async with serving(front) as api:
        page = await visitor.context.new_page()
        await page.goto(shop_url(api))
        await snippet_ready(page)
        await eventually(lambda: _equals(queued(page), 0), "the page view is acknowledged")
        # The visitor clicks and leaves at once, before the half-second batching delay.
        await page.evaluate("journeyman.track('Product Viewed', {category: 'anti-aging'})")
        await page.goto("about:blank")
        rows = await ingested.wait_for(2)
        beacon = front.attempts[-1]
        assert beacon.mode == "no-cors"
        assert beacon.message_ids == [rows[1]["message_id"]]

        # The beaconed message stayed in storage: the next page sends it again, and the API
        # keeps one copy.
        await page.goto(shop_url(api))
        await snippet_ready(page)
        rows = await ingested.wait_for(3)
        await eventually(lambda: _equals(queued(page), 0), "the queue is empty")

    assert [(r["type"], r["event"]) for r in rows] == [
        ("page", "Shop"),
        ("track", "Product Viewed"),
        ("page", "Shop"),
    ]
    sent = [m for a in front.attempts if a.status == 200 for m in a.message_ids]
    assert sent.count(rows[1]["message_id"]) == 2


async def test_a_message_the_api_rejects_is_reported_and_dropped(
    live_api: Served, ingested: Ingested, visitor: Visitor
) -> None:
    page = await visitor.context.new_page()
    await page.goto(shop_url(live_api))
    await snippet_ready(page)
    await eventually(lambda: _equals(queued(page), 0), "the page view is acknowledged")
    # One batch: the API accepts the valid message and lists the other as rejected.
    await page.evaluate(
        """() => {
            journeyman.track("x".repeat(1000), {});
            journeyman.track("Product Viewed", {category: "anti-aging"});
        }"""
    )
    rows = await ingested.wait_for(2)
    await eventually(lambda: _equals(queued(page), 0), "the queue is empty")
    assert [(r["type"], r["event"]) for r in rows] == [
        ("page", "Shop"),
        ("track", "Product Viewed"),
    ]
    warnings = [m.text for m in visitor.console if m.type == "warning"]
    assert len(warnings) == 1
    assert warnings[0].startswith("journeyman: the API refused message ")
