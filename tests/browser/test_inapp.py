"""journeyman.inApp in a real browser: the demo shop's inbox over the real in-app API, with the
``in_app_messages`` table and what the API answered as the proof."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from playwright.async_api import Dialog, Page, Request
from starlette.applications import Starlette
from starlette.requests import Request as HttpRequest
from starlette.responses import HTMLResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from journeyman.orchestrator import inapp
from journeyman.orchestrator.api import Services, create_app

from .conftest import ADMIN_TOKEN, REPO, WRITE_KEY, Served, Visitor, artifacts_dir, serving

MEI = "mei.lin@example.com"
JIWOO = "ji-woo@example.com"
T0 = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)
XSS_TITLE = "<img src=x onerror=alert(1)>"
XSS_BODY = "<script>window.pwned = true</script><b>Night Renewal</b> is back"


# --- what the API saw and answered ------------------------------------------------------------


@dataclass
class Exchange:
    """One request to ``/v1/in-app`` and the API's answer."""

    method: str
    path: str
    content_type: str
    authorization: bool
    body: Any  # the request's JSON; None when there was none
    status: int = 0  # 0 while the answer is still on its way
    answer: bytes = b""

    @property
    def is_listing(self) -> bool:
        return self.method == "POST" and self.path == "/v1/in-app"

    @property
    def user_id(self) -> Any:
        return self.body.get("userId") if isinstance(self.body, dict) else None


@dataclass
class InAppFront:
    """In front of the API, as a load balancer would be: records every in-app request and
    answer, and holds back the listings of the users in ``hold`` (seconds) to make them late."""

    app: ASGIApp
    exchanges: list[Exchange] = field(default_factory=list)
    hold: dict[str, float] = field(default_factory=dict)

    def listings(self) -> list[Exchange]:
        return [e for e in self.exchanges if e.is_listing]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not scope["path"].startswith("/v1/in-app"):
            await self.app(scope, receive, send)
            return
        body = b""
        more = True
        while more:
            message = await receive()
            body += message.get("body", b"")
            more = message.get("more_body", False)
        headers = dict(scope["headers"])
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        exchange = Exchange(
            method=scope["method"],
            path=scope["path"],
            content_type=headers.get(b"content-type", b"").decode(),
            authorization=b"authorization" in headers,
            body=parsed,
        )
        self.exchanges.append(exchange)
        delay = self.hold.get(exchange.user_id) if exchange.is_listing else None
        if delay:
            await asyncio.sleep(delay)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                exchange.status = int(message["status"])
            elif message["type"] == "http.response.body":
                exchange.answer += message.get("body", b"")
            await send(message)

        await self.app(scope, replay, recording_send)


@pytest.fixture
def front(services: Services) -> InAppFront:
    return InAppFront(create_app(services, follow_deploys=False))


@pytest.fixture
async def api(front: InAppFront) -> AsyncIterator[Served]:
    async with serving(front) as served:
        yield served


# --- helpers ----------------------------------------------------------------------------------


async def put(
    services: Services, customer_id: str, title: str, body: str = "", *, minutes: int = 0
) -> inapp.InAppMessage:
    """A message stored as an in_app send stores it; newer with more ``minutes``."""
    stored = await inapp.store(
        services.pool,
        customer_id=customer_id,
        send_key=f"test/{uuid.uuid4()}",
        title=title,
        body=body or f"About: {title}",
        now=T0 + timedelta(minutes=minutes),
    )
    return stored.message


async def stamps(services: Services, message: inapp.InAppMessage) -> tuple[bool, bool]:
    """Whether the message is (read, acknowledged) in the database."""
    row = await services.pool.fetchrow(
        "SELECT read_at, acknowledged_at FROM in_app_messages WHERE id = $1",
        uuid.UUID(message.id),
    )
    assert row is not None
    return row["read_at"] is not None, row["acknowledged_at"] is not None


async def eventually(check: Callable[[], Awaitable[bool]], what: str, within: float = 20) -> None:
    deadline = time.monotonic() + within
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.1)


def shop_url(api: Served) -> str:
    return f"{api.url}/demo/shop?{urlencode({'writeKey': WRITE_KEY})}"


async def open_shop(page: Page, api: Served) -> None:
    await page.goto(shop_url(api))
    await page.wait_for_function("window.journeyman && typeof journeyman.inApp === 'object'")


async def sign_up(page: Page, email: str, first_name: str) -> None:
    await page.fill("#first-name", first_name)
    await page.fill("#email", email)
    await page.click("#sign-up")


async def titles(page: Page) -> list[str]:
    """The titles the inbox shows, top to bottom, as the visitor reads them."""
    shown: list[str] = await page.evaluate(
        "Array.from(document.querySelectorAll('#inbox .journeyman-message-title-text'),"
        " (node) => node.textContent)"
    )
    return shown


async def shows(
    page: Page, expected: list[str], *, any_order: bool = False, within: float = 20
) -> None:
    async def check() -> bool:
        shown = await titles(page)
        return sorted(shown) == sorted(expected) if any_order else shown == expected

    try:
        await eventually(check, f"the inbox shows {expected}", within)
    except AssertionError:
        raise AssertionError(f"the inbox shows {await titles(page)}, not {expected}") from None


def warnings_and_errors(visitor: Visitor) -> list[str]:
    return [m.text for m in visitor.console if m.type in ("error", "warning")]


# --- the demo shop ----------------------------------------------------------------------------


async def test_a_member_sees_and_dismisses_their_messages_in_the_demo_shop(
    services: Services, api: Served, front: InAppFront, visitor: Visitor
) -> None:
    page = await visitor.context.new_page()
    await open_shop(page, api)
    anonymous_id = await page.evaluate("journeyman.anonymousId()")
    gift = await put(services, anonymous_id, "A gift with your first order", minutes=0)
    coupon = await put(services, MEI, "Your coupon expires Friday", minutes=10)
    welcome = await put(
        services, MEI, "Welcome to the Lumen club", "Member prices start today.", minutes=20
    )
    others = await put(services, JIWOO, "Ji-woo's birthday gift", minutes=30)

    # Anonymous visitors of the shop have no inbox: nothing is asked.
    await page.wait_for_timeout(500)
    assert front.exchanges == []
    assert await page.is_hidden("#messages")

    await sign_up(page, "Mei.Lin@example.com", "Mei")
    # The anonymous visit's gift too: the identify joined the visitor to Mei before the
    # snippet listed again. (The order depends on which were read when it listed: a message
    # read on screen keeps its place until the next listing.)
    await shows(page, [welcome.title, coupon.title, gift.title], any_order=True)
    bodies = await page.locator("#inbox .journeyman-message-body").all_text_contents()
    assert sorted(bodies) == sorted([welcome.body, coupon.body, gift.body])

    # Each message on screen counts as read, in the database and in the inbox.
    async def all_read() -> bool:
        return all([(await stamps(services, m))[0] for m in (welcome, coupon, gift)])

    await eventually(all_read, "every message shown is marked read")
    read_marks = page.locator("#inbox .journeyman-message[data-read='true']")
    await eventually(lambda: _is(read_marks.count(), 3), "the inbox shows them read")
    assert await page.locator("#inbox .journeyman-message-unread:visible").count() == 0
    await page.screenshot(path=str(artifacts_dir() / "shop-inbox.png"), full_page=True)

    before = await titles(page)
    await page.click(f"#inbox button[aria-label='Dismiss: {coupon.title}']")
    after = [title for title in before if title != coupon.title]
    await shows(page, after)
    assert await stamps(services, coupon) == (True, True)
    assert await stamps(services, welcome) == (True, False)
    # Focus goes to the next message's button (the previous one's for the last), not to the
    # top of the page.
    following = before[before.index(coupon.title) + 1 :] or before[-2:-1]
    focused = await page.evaluate("document.activeElement.getAttribute('aria-label')")
    assert focused == f"Dismiss: {following[0]}"

    # A returning member sees what is still pending, all read now: newest first.
    await page.reload()
    await shows(page, [welcome.title, gift.title])
    # Signing out takes the inbox away with the member.
    await page.click("#sign-out")
    assert await page.is_hidden("#messages")
    assert await titles(page) == []
    assert await page.evaluate("journeyman.userId()") is None

    # Ji-woo's message never reached Mei's page, and nothing touched it.
    assert front.exchanges
    for exchange in front.exchanges:
        assert exchange.status == 200, exchange
        assert others.id not in exchange.answer.decode()
        assert exchange.body["writeKey"] == WRITE_KEY
        assert exchange.user_id in (None, MEI)
    assert await stamps(services, others) == (False, False)
    assert warnings_and_errors(visitor) == []


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def test_message_text_is_never_parsed_as_html(
    services: Services, api: Served, visitor: Visitor
) -> None:
    xss = await put(services, MEI, XSS_TITLE, XSS_BODY)
    page = await visitor.context.new_page()
    dialogs: list[str] = []
    fetched: list[str] = []

    async def on_dialog(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        await dialog.dismiss()

    def on_request(request: Request) -> None:
        fetched.append(request.url)

    page.on("dialog", on_dialog)
    page.on("request", on_request)
    await open_shop(page, api)
    await sign_up(page, MEI, "Mei")
    await shows(page, [XSS_TITLE])

    assert await page.locator("#inbox .journeyman-message-body").all_text_contents() == [XSS_BODY]
    assert await page.locator("#inbox img, #inbox script, #inbox b").count() == 0
    title_html = await page.inner_html("#inbox .journeyman-message-title-text")
    assert title_html == "&lt;img src=x onerror=alert(1)&gt;"
    button = page.locator("#inbox .journeyman-message-dismiss")
    assert await button.get_attribute("aria-label") == f"Dismiss: {XSS_TITLE}"
    await page.wait_for_timeout(500)  # an injected image would have failed to load by now
    assert dialogs == []
    assert await page.evaluate("window.pwned") is None
    assert not [url for url in fetched if url.endswith("/x")]

    await button.click()
    await shows(page, [])
    assert await page.is_visible("#inbox .journeyman-inbox-empty")
    assert await stamps(services, xss) == (True, True)


async def test_a_new_message_appears_after_the_poll_and_hidden_tabs_do_not_poll(
    services: Services, api: Served, front: InAppFront, visitor: Visitor
) -> None:
    await put(services, MEI, "Welcome to the Lumen club")
    page = await visitor.context.new_page()
    # The page's clock runs as usual, and the test moves it on where a poll would fall due.
    await page.clock.install()
    await open_shop(page, api)
    await sign_up(page, MEI, "Mei")
    await shows(page, ["Welcome to the Lumen club"])
    await eventually(lambda: _true(len(front.listings()) >= 2), "the relisting after identify")
    await page.wait_for_timeout(500)
    listed = len(front.listings())

    coupon = await put(services, MEI, "Your coupon expires Friday", minutes=10)
    await page.clock.fast_forward(25_000)
    await page.wait_for_timeout(500)
    assert len(front.listings()) == listed  # the default poll is every 30 s
    await page.clock.fast_forward(6_000)
    await shows(page, [coupon.title, "Welcome to the Lumen club"])
    assert len(front.listings()) == listed + 1

    # A hidden tab does not poll; back on screen it lists at once, the poll having fallen due.
    await page.evaluate(_SET_VISIBILITY, "hidden")
    back = await put(services, MEI, "Night Renewal Serum is back", minutes=20)
    await page.clock.fast_forward(120_000)
    await page.wait_for_timeout(500)
    assert len(front.listings()) == listed + 1
    await page.evaluate(_SET_VISIBILITY, "visible")
    await shows(page, [back.title, coupon.title, "Welcome to the Lumen club"])
    assert len(front.listings()) == listed + 2
    assert warnings_and_errors(visitor) == []


# The tab's visibility as the page sees it: headless Chromium's tabs are always visible.
_SET_VISIBILITY = """(state) => {
    Object.defineProperty(document, "visibilityState", {configurable: true, get: () => state});
    Object.defineProperty(document, "hidden", {configurable: true, get: () => state === "hidden"});
    document.dispatchEvent(new Event("visibilitychange"));
}"""


async def _true(value: bool) -> bool:
    return value


# --- the snippet's API ------------------------------------------------------------------------


async def test_one_customer_never_sees_another_ones_messages(
    services: Services, api: Served, front: InAppFront, visitor: Visitor
) -> None:
    mei = await put(services, MEI, "Your coupon expires Friday")
    jiwoo = await put(services, JIWOO, "Ji-woo's birthday gift")
    page = await visitor.context.new_page()
    await open_shop(page, api)
    # Every list the page's callback is given, in order.
    await page.evaluate(
        """() => {
            window.lists = [];
            journeyman.inApp.onMessages((messages) => lists.push(messages.map((m) => m.title)));
        }"""
    )

    async def lists_are(expected: list[list[str]]) -> None:
        async def check() -> bool:
            return bool(await page.evaluate("lists") == expected)

        await eventually(check, f"the callback saw {expected}")

    await lists_are([[]])  # the anonymous visitor has none
    await page.evaluate("(id) => journeyman.identify(id)", MEI)
    await lists_are([[], [mei.title]])

    # Mei's next listing is slow; she signs out while it is on its way. When it arrives, the
    # next visitor of this computer must not see it.
    front.hold[MEI] = 2.0
    held = len(front.exchanges)
    await page.evaluate("(id) => journeyman.identify(id)", MEI)

    async def held_listing_asked() -> bool:
        return any(e.user_id == MEI and e.status == 0 for e in front.exchanges[held:])

    await eventually(held_listing_asked, "Mei's slow listing is on its way")
    await page.evaluate("journeyman.reset()")
    await lists_are([[], [mei.title], []])  # at once, not at the next answer

    async def held_listing_answered() -> bool:
        return all(e.status for e in front.exchanges)

    await eventually(held_listing_answered, "Mei's slow listing is answered")
    await page.wait_for_timeout(300)
    assert await page.evaluate("lists") == [[], [mei.title], []]

    # The next person signs in, then someone else signs in over them without a reset.
    await page.evaluate("(id) => journeyman.identify(id)", JIWOO)
    await lists_are([[], [mei.title], [], [jiwoo.title]])
    await page.evaluate("(id) => journeyman.identify(id)", MEI)
    await lists_are([[], [mei.title], [], [jiwoo.title], [], [mei.title]])

    # The API answers 404 for another customer's message, as for one that does not exist.
    refused = await page.evaluate(
        "(id) => journeyman.inApp.ack(id).then(() => 'acknowledged', (e) => e.status)", jiwoo.id
    )
    assert refused == 404
    assert await stamps(services, jiwoo) == (False, False)


async def test_list_read_and_ack_for_an_anonymous_visitor(
    services: Services, api: Served, front: InAppFront, visitor: Visitor
) -> None:
    page = await visitor.context.new_page()
    await open_shop(page, api)
    anonymous_id = await page.evaluate("journeyman.anonymousId()")
    older = await put(services, anonymous_id, "Still thinking about the serum?", minutes=0)
    newer = await put(services, anonymous_id, "Free shipping this weekend", minutes=5)

    newest_only = await page.evaluate("journeyman.inApp.list({limit: 1})")
    assert [m["id"] for m in newest_only] == [newer.id]
    listed = await page.evaluate("journeyman.inApp.list()")
    assert [m["title"] for m in listed] == [newer.title, older.title]
    assert set(listed[0]) == {"id", "title", "body", "data", "created_at", "read_at", "expires_at"}

    read = await page.evaluate("(id) => journeyman.inApp.read(id)", newer.id)
    assert read["id"] == newer.id and read["read_at"] is not None
    assert await stamps(services, newer) == (True, False)
    # Read messages come after the unread ones.
    listed = await page.evaluate("journeyman.inApp.list()")
    assert [m["title"] for m in listed] == [older.title, newer.title]

    await page.evaluate("(id) => journeyman.inApp.ack(id)", older.id)
    assert await stamps(services, older) == (True, True)
    assert [m["id"] for m in await page.evaluate("journeyman.inApp.list()")] == [newer.id]

    refusals = await page.evaluate(
        """async () => {
            const why = (call) => call().then(() => "done", (e) => `${e.name} ${e.status || ""}`);
            return [
                await why(() => journeyman.inApp.list({limit: 0})),
                await why(() => journeyman.inApp.read("")),
                await why(() => journeyman.inApp.ack("3f0c5b1e-8d1f-4a43-9d55-2a7b1f0e6c11")),
            ];
        }"""
    )
    assert refusals == ["RangeError ", "TypeError ", "Error 404"]

    # Each request was a text/plain POST with everything in the body: no preflight needed.
    assert {(e.method, e.content_type) for e in front.exchanges} == {("POST", "text/plain")}
    assert not any(e.authorization for e in front.exchanges)
    assert all(e.body["anonymousId"] == anonymous_id for e in front.exchanges)


async def test_the_docs_example_with_customer_tokens_on_another_origin(
    services: Services, api: Served, front: InAppFront, visitor: Visitor
) -> None:
    await inapp.require_tokens(services.pool, True)
    coupon = await put(services, MEI, "Your coupon expires Friday", "COMEBACK15 is in your wallet.")
    async with httpx.AsyncClient(base_url=api.url) as http:
        issued = await http.post(
            "/api/in-app/tokens",
            json={"customer_id": MEI},
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
    assert issued.status_code == 201, issued.text
    token = issued.json()["token"]

    # The in-app example of docs/browser.md, on a site of its own.
    docs = (REPO / "docs" / "browser.md").read_text()
    section = docs.split("\n## In-app messages\n", 1)[1]
    example = section.split("```html\n", 1)[1].split("```", 1)[0]
    example = example.replace("https://journeyman.example.com", api.url)
    example = example.replace("YOUR_WRITE_KEY", WRITE_KEY).replace("CUSTOMER_TOKEN", token)

    async def wallet(_: HttpRequest) -> HTMLResponse:
        return HTMLResponse(example)

    async def favicon(_: HttpRequest) -> Response:
        return Response(status_code=204)  # else the browser logs its 404 to the console

    routes = [Route("/wallet", wallet), Route("/favicon.ico", favicon)]
    async with serving(Starlette(routes=routes)) as site:
        page = await visitor.context.new_page()
        await page.goto(f"{site.url}/wallet")
        await shows(page, [coupon.title])
        assert await page.text_content("#message-count") == "1"
        await page.click("#inbox .journeyman-message-dismiss")
        await shows(page, [])
        assert await page.text_content("#message-count") == "0"
        assert await stamps(services, coupon) == (True, True)

        # Across origins, every request was a text/plain POST carrying the token in its body.
        assert front.exchanges
        for exchange in front.exchanges:
            assert (exchange.method, exchange.content_type) == ("POST", "text/plain")
            assert exchange.body["token"] == token
            assert exchange.status == 200, exchange
        assert warnings_and_errors(visitor) == []

        # Without the token the API refuses, and the snippet says so once and stops polling.
        asked = len(front.exchanges)
        await page.evaluate("journeyman.inApp.setToken(null)")

        # (Chromium logs the 401 as an error of its own; the snippet's word is a warning.)
        def snippet_warnings() -> list[str]:
            return [m.text for m in visitor.console if m.type == "warning"]

        await eventually(lambda: _true(bool(snippet_warnings())), "the refusal shows")
        [warning] = snippet_warnings()
        assert "(401)" in warning and "customer token is required" in warning
        assert "not polled" in warning
        assert len(front.exchanges) == asked + 1
        listed = await page.evaluate("journeyman.inApp.list().then(() => 'listed', e => e.status)")
        assert listed == 401


_CONFIGURED_PAGE = """<!doctype html>
<html lang="en">
  <head><meta charset="utf-8" /><title>Configured</title><link rel="icon" href="data:," /></head>
  <body>
    <script src="{api}/js/journeyman.js"></script>
    <script>
      journeyman.load({{writeKey: "{key}", inApp: {options}}});
      journeyman.identify("{user}");
      window.lists = [];
      journeyman.inApp.onMessages((messages) => lists.push(messages.length));
    </script>
  </body>
</html>"""


async def test_the_poll_interval_and_page_size_are_configurable(
    services: Services, api: Served, front: InAppFront, visitor: Visitor
) -> None:
    await put(services, MEI, "Welcome to the Lumen club")
    await put(services, MEI, "Your coupon expires Friday", minutes=10)

    async def configured(request: HttpRequest) -> HTMLResponse:
        options = request.query_params["options"]
        return HTMLResponse(
            _CONFIGURED_PAGE.format(api=api.url, key=WRITE_KEY, options=options, user=MEI)
        )

    async with serving(Starlette(routes=[Route("/configured", configured)])) as site:

        async def listings_after(options: str, seconds: list[int]) -> list[int]:
            """Open a page with these inApp options; how many listings it has asked after
            moving its clock on by each number of seconds in turn."""
            front.exchanges.clear()
            page = await visitor.context.new_page()
            await page.clock.install()
            await page.goto(f"{site.url}/configured?{urlencode({'options': options})}")
            await eventually(lambda: _true(bool(front.listings())), "the first listing")
            await page.wait_for_timeout(500)
            counts = []
            for step in seconds:
                await page.clock.fast_forward(step * 1000)
                await page.wait_for_timeout(500)
                counts.append(len(front.listings()))
            assert await page.evaluate("lists") == [json.loads(options).get("limit", 2)]
            await page.close()
            return counts

        assert await listings_after('{"pollSeconds": 20, "limit": 1}', [15, 6, 20]) == [1, 2, 3]
        assert {e.body["limit"] for e in front.listings()} == {1}
        assert await listings_after('{"pollSeconds": 0}', [120]) == [1]
        # A value that cannot be used is reported, and the default (30 s) stays.
        assert await listings_after('{"pollSeconds": "5"}', [25, 6]) == [1, 2]
    errors = [m.text for m in visitor.console if m.type == "error"]
    assert errors == [
        "journeyman.load: inApp.pollSeconds must be 0 (no polling) or at least 1;"
        " polling every 30 s"
    ]
