"""The open pixel and tracked links: recorded once as events, routed, never an open redirect."""

from __future__ import annotations

import string
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest

from journeyman.orchestrator.customers.erasure import customer_hash
from journeyman.orchestrator.tracking import TRACKING_LIFETIME, LinkSigner, LinkToken

from .conftest import WRITE_KEY, Links, serve

ALPHABET = string.ascii_letters + string.digits + "-_"
SHOP = "https://shop.test/cream?utm_source=news&id=7"

NURTURE = """
id: nurture
name: Nurture
entry: {event: Signed Up}
stages:
  - name: awareness
    touchpoints:
      - send: {id: hello, subject: "Hello", body: "Hi"}
      - wait_for: {event: Link Clicked, where: {url: "https://shop.test/cream"}, timeout: 3d}
"""


def flipped(text: str, at: int) -> str:
    old = text[at]
    new = "A" if old == "." else ALPHABET[(ALPHABET.index(old) + 1) % len(ALPHABET)]
    return text[:at] + new + text[at + 1 :]


async def nothing_recorded(links: Links) -> None:
    for table in ("events", "subscription_preferences", "suppressions", "outbox"):
        assert await links.count(table) == 0, table


async def test_every_tampered_character_is_a_404_that_records_nothing(links: Links) -> None:
    key = await links.sent("ann", email="ann@shop.test")

    async def send(route: str, token: str) -> httpx.Response:
        if route == "open":
            return await links.http.get(f"/t/o/{token}.gif")
        if route == "click":
            return await links.http.get(f"/t/c/{token}")
        if route == "page":
            return await links.http.get(f"/u/{token}")
        if route == "preferences":  # leaving every group
            return await links.http.post(f"/u/{token}/preferences", data={"save": "1"})
        return await links.http.post(f"/u/{token}", data={"List-Unsubscribe": "One-Click"})

    unsubscribe = links.token("unsubscribe", key, "ann")
    tokens = {
        "open": links.token("open", key, "ann"),
        "click": links.token("click", key, "ann", url=SHOP),
        "page": unsubscribe,
        "preferences": unsubscribe,
        "one-click": unsubscribe,
    }
    for route, text in tokens.items():
        for at in range(len(text)):
            response = await send(route, flipped(text, at))
            assert response.status_code == 404, (route, at)
            assert "location" not in response.headers
    await nothing_recorded(links)
    # The untouched tokens do record: the 404s above were the tampering, nothing else.
    for route, text in tokens.items():
        assert (await send(route, text)).status_code in (200, 302), route
    # Opened, clicked, and unsubscribed from the two email groups (the one-click found
    # marketing already left).
    names = await links.pool.fetch("SELECT event FROM events ORDER BY id")
    assert [r["event"] for r in names] == [
        "Email Opened",
        "Link Clicked",
        "Unsubscribed",
        "Unsubscribed",
    ]


async def test_an_open_is_recorded_once_as_customer_activity(links: Links) -> None:
    await links.identify("ann", email="ann@shop.test")
    key = await links.sent("ann", email="ann@shop.test")
    token = links.token("open", key, "ann")
    for _ in range(2):  # image proxies and reopened mails fetch it again
        response = await links.http.get(f"/t/o/{token}.gif")
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        # A GIF whose logical screen is 1x1 pixels, ending with the trailer byte.
        assert response.content[:10] == b"GIF89a\x01\x00\x01\x00"
        assert response.content.endswith(b";")
        assert "no-store" in response.headers["cache-control"]
    opened = await links.events("Email Opened")
    assert [(e["customer_id"], e["properties"], e["context"]) for e in opened] == [
        (
            "ann",
            {"send_key": key, "journey_id": "newsletter", "step_id": "monthly"},
            {"channel": "email"},
        )
    ]
    channels = await links.pool.fetchval(
        "SELECT channels FROM customer_metrics WHERE customer_id = 'ann'"
    )
    assert channels == {"email": 1}


async def test_a_click_redirects_to_the_url_and_is_recorded_once_per_link(links: Links) -> None:
    key = await links.sent("ann", email="ann@shop.test")
    for url in (SHOP, SHOP, "http://blog.test/post"):
        response = await links.http.get(f"/t/c/{links.token('click', key, 'ann', url=url)}")
        assert response.status_code == 302
        assert response.headers["location"] == url
        assert response.headers["referrer-policy"] == "no-referrer"
    clicked = await links.events("Link Clicked")
    assert [e["properties"]["url"] for e in clicked] == [SHOP, "http://blog.test/post"]
    assert clicked[0]["properties"]["send_key"] == key
    assert len(await links.events("Email Opened")) == 1  # a click implies the open


async def test_a_click_routes_to_the_journey_waiting_for_it(links: Links) -> None:
    deployed = await links.http.post("/api/journeys", content=NURTURE, headers=links.admin)
    assert deployed.status_code == 201, deployed.text
    entry = {"userId": "ann", "event": "Signed Up", "messageId": str(uuid.uuid4())}
    assert (await links.http.post("/v1/track", json=entry, auth=(WRITE_KEY, ""))).is_success
    key = await links.sent("ann", journey_id="nurture", step_id="hello")
    other = await links.http.get(
        f"/t/c/{links.token('click', key, 'ann', url='https://shop.test/other')}"
    )
    assert other.status_code == 302
    await links.http.get(f"/t/c/{links.token('click', key, 'ann', url='https://shop.test/cream')}")
    rows = await links.pool.fetch(
        "SELECT workflow_id, payload FROM outbox WHERE NOT (payload->>'entry')::boolean"
    )
    # Every Link Clicked reaches the run (the wait's `where` is the workflow's to check).
    assert [(r["workflow_id"], r["payload"]["event"]["name"]) for r in rows] == [
        ("journey/nurture/ann", "Link Clicked"),
        ("journey/nurture/ann", "Link Clicked"),
    ]
    assert rows[1]["payload"]["event"]["properties"]["url"] == "https://shop.test/cream"


async def test_there_is_no_open_redirect(links: Links) -> None:
    key = await links.sent("ann")
    foreign = LinkSigner("someone-elses-secret-of-32-characters-or-more").sign(
        LinkToken("click", key, "ann", datetime.now(UTC), url="https://evil.test/")
    )
    mine = links.token("click", key, "ann", url=SHOP)
    for path in (
        f"/t/c/{foreign}",
        f"/t/c/{links.token('open', key, 'ann')}",  # a valid token of another kind
        f"/t/c/{links.token('unsubscribe', key, 'ann')}",
        "/t/c/https%3A%2F%2Fevil.test%2F",
    ):
        response = await links.http.get(path)
        assert response.status_code == 404 and "location" not in response.headers, path
    # Query parameters do not steer it: the signed URL is the only destination.
    response = await links.http.get(f"/t/c/{mine}?url=https://evil.test/&next=//evil.test")
    assert response.headers["location"] == SHOP


async def test_non_ascii_urls_are_redirected_percent_encoded(links: Links) -> None:
    key = await links.sent("ann")
    token = links.token("click", key, "ann", url="https://shop.test/crème?q=été")
    response = await links.http.get(f"/t/c/{token}")
    assert response.headers["location"] == "https://shop.test/cr%C3%A8me?q=%C3%A9t%C3%A9"


async def test_old_and_erased_links_still_answer_but_record_nothing(links: Links) -> None:
    key = await links.sent("ann")
    old = datetime.now(UTC) - TRACKING_LIFETIME - timedelta(days=1)
    assert (
        await links.http.get(f"/t/o/{links.token('open', key, 'ann', issued_at=old)}.gif")
    ).is_success
    response = await links.http.get(
        f"/t/c/{links.token('click', key, 'ann', url=SHOP, issued_at=old)}"
    )
    assert response.headers["location"] == SHOP
    await links.pool.execute(
        "INSERT INTO erasures (customer_hash, erased) VALUES ($1, '{}')", customer_hash("bob")
    )
    bob = await links.sent("bob")
    issued = datetime.now(UTC) - timedelta(days=1)
    response = await links.http.get(
        f"/t/c/{links.token('click', bob, 'bob', url=SHOP, issued_at=issued)}"
    )
    assert response.headers["location"] == SHOP
    assert await links.count("events") == 0
    assert await links.count("profiles") == 0  # the erased customer did not come back


async def test_the_redirect_does_not_wait_for_the_database(links: Links) -> None:
    key = await links.sent("ann")
    token = links.token("click", key, "ann", url=SHOP)
    await links.pool.close()
    response = await links.http.get(f"/t/c/{token}")
    assert (response.status_code, response.headers["location"]) == (302, SHOP)


async def test_links_answer_503_until_installed(database: asyncpg.Pool, database_url: str) -> None:
    bare = await serve(database, database_url, install=False)
    async with bare.http:
        token = bare.token("open", "k", "ann")
        response = await bare.http.get(f"/t/o/{token}.gif")
        assert response.status_code == 503
        assert response.json()["message"] == "links are not configured on this server"
    assert await bare.count("events") == 0


@pytest.mark.parametrize("path", ["/t/o/x.gif", "/t/c/x", "/u/x"])
async def test_garbage_is_a_plain_404(links: Links, path: str) -> None:
    response = await links.http.get(path)
    assert response.status_code == 404
    assert response.text == "This link is not valid.\n"
