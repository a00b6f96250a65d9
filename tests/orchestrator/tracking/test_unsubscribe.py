"""One-click unsubscribe (RFC 8058) and the preference page, over the real API and Postgres."""

from __future__ import annotations

import re
import uuid

import asyncpg

from journeyman.orchestrator.tracking import (
    Decision,
    SubscriptionGroup,
    SubscriptionGroups,
    may_send,
)

from .conftest import WRITE_KEY, Links, serve

ONE_CLICK = {"List-Unsubscribe": "One-Click"}

LETTER = """
id: letter
name: Letter
entry: {event: Signed Up}
exit: [{event: Unsubscribed}]
stages:
  - name: awareness
    touchpoints:
      - send: {id: hello, subject: "Hello", body: "Hi"}
      - wait: 30d
"""


async def decide(links: Links, customer_id: str, channel: str, group: str) -> Decision:
    async with links.pool.acquire() as conn:
        return await may_send(conn, customer_id=customer_id, channel=channel, group=group)


def checked(page: str) -> list[str]:
    """The groups whose box is ticked on a rendered preference page."""
    boxes = re.findall(r'<input type="checkbox" name="group" value="([^"]+)"\s*(checked)?', page)
    return [value for value, tick in boxes if tick]


async def test_one_click_unsubscribes_records_and_ends_journeys(links: Links) -> None:
    deployed = await links.http.post("/api/journeys", content=LETTER, headers=links.admin)
    assert deployed.status_code == 201, deployed.text
    await links.identify("ann", email="Ann@Shop.test")
    entry = {"userId": "ann", "event": "Signed Up", "messageId": str(uuid.uuid4())}
    assert (await links.http.post("/v1/track", json=entry, auth=(WRITE_KEY, ""))).is_success
    key = await links.sent("ann", email="Ann@Shop.test", journey_id="letter", step_id="hello")
    assert await decide(links, "ann", "email", "marketing") == Decision(True)
    token = links.token("unsubscribe", key, "ann")
    for _ in range(2):  # mail providers retry; the second changes nothing
        response = await links.http.post(f"/u/{token}", data=ONE_CLICK)
        assert response.status_code == 200
        assert "You are unsubscribed from <strong>Offers and news by email</strong>" in (
            response.text
        )
    unsubscribed = await links.events("Unsubscribed")
    assert [(e["customer_id"], e["properties"], e["context"]) for e in unsubscribed] == [
        (
            "ann",
            {
                "send_key": key,
                "journey_id": "letter",
                "step_id": "hello",
                "group": "email:marketing",
                "channel": "email",
                "source": "one_click",
            },
            {"channel": "email"},
        )
    ]
    exits = await links.pool.fetch(
        "SELECT workflow_id FROM outbox WHERE payload->'event'->>'name' = 'Unsubscribed'"
    )
    assert [r["workflow_id"] for r in exits] == ["journey/letter/ann"]
    choice = await links.pool.fetchrow(
        "SELECT group_key, subscribed, source, send_key FROM subscription_preferences"
    )
    assert dict(choice) == {
        "group_key": "email:marketing",
        "subscribed": False,
        "source": "one_click",
        "send_key": key,
    }
    suppression = await links.pool.fetchrow("SELECT address, group_key, reason FROM suppressions")
    assert dict(suppression) == {
        "address": "ann@shop.test",
        "group_key": "email:marketing",
        "reason": "unsubscribe",
    }
    assert await decide(links, "ann", "email", "marketing") == Decision(
        False, "unsubscribed:email:marketing"
    )
    assert await decide(links, "ann", "email", "product_updates") == Decision(True)


async def test_one_click_accepts_a_multipart_body(links: Links) -> None:
    key = await links.sent("ann", email="ann@shop.test")
    boundary = "b0undary"
    body = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        f"One-Click\r\n--{boundary}--\r\n"
    ).encode()
    response = await links.http.post(
        f"/u/{links.token('unsubscribe', key, 'ann')}",
        content=body,
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert response.status_code == 200, response.text
    assert len(await links.events("Unsubscribed")) == 1


async def test_a_post_without_the_one_click_body_changes_nothing(links: Links) -> None:
    key = await links.sent("ann", email="ann@shop.test")
    token = links.token("unsubscribe", key, "ann")
    for kwargs in (
        {},
        {"data": {"List-Unsubscribe": "Yes"}},
        {"content": b"List-Unsubscribe=One-Click", "headers": {"Content-Type": "text/plain"}},
        {"content": b"\xff\xfe", "headers": {"Content-Type": "application/x-www-form-urlencoded"}},
        {"content": b"x" * (65 * 1024)},
    ):
        response = await links.http.post(f"/u/{token}", **kwargs)
        assert response.status_code == 400, kwargs
    for table in ("events", "subscription_preferences", "suppressions"):
        assert await links.count(table) == 0


async def test_the_preference_page_shows_the_choices_and_changes_nothing(links: Links) -> None:
    key = await links.sent("ann", email="ann.lee@shop.test")
    token = links.token("unsubscribe", key, "ann")
    response = await links.http.get(f"/u/{token}")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["referrer-policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert "no-store" in response.headers["cache-control"]
    page = response.text
    assert "For a***@shop.test" in page  # enough to recognise, not the whole address
    assert "ann.lee" not in page
    assert "<script" not in page
    assert f'action="https://links.example.test/u/{token}/preferences"' in page
    assert f'action="https://links.example.test/u/{token}"' in page
    assert checked(page) == ["email:marketing", "email:product_updates"]  # sms is opt-in
    assert "<h2>Email</h2>" in page and "<h2>Text messages</h2>" in page
    for table in ("events", "subscription_preferences", "suppressions"):
        assert await links.count(table) == 0


async def test_saving_preferences_records_each_change_once(links: Links) -> None:
    await links.identify("ann", email="ann@shop.test", phone="+33600000000")
    key = await links.sent("ann", email="ann@shop.test")
    path = f"/u/{links.token('unsubscribe', key, 'ann')}/preferences"
    # Leave marketing email, keep product updates, join marketing texts.
    form = {"save": "1", "group": ["email:product_updates", "sms:marketing"]}
    response = await links.http.post(path, data=form)
    assert response.status_code == 200
    assert "Your choices are saved." in response.text
    assert checked(response.text) == ["email:product_updates", "sms:marketing"]
    again = await links.http.post(path, data=form)  # a reload posts it again
    assert checked(again.text) == ["email:product_updates", "sms:marketing"]
    changes = await links.pool.fetch(
        "SELECT event, properties->>'group' AS grp, properties->>'source' AS src"
        " FROM events WHERE event IN ('Subscribed', 'Unsubscribed') ORDER BY id"
    )
    assert [tuple(r) for r in changes] == [
        ("Unsubscribed", "email:marketing", "preference_page"),
        ("Subscribed", "sms:marketing", "preference_page"),
    ]
    assert await decide(links, "ann", "email", "marketing") == Decision(
        False, "unsubscribed:email:marketing"
    )
    assert await decide(links, "ann", "sms", "marketing") == Decision(True)
    # Back to marketing email: recorded, and the address's unsubscribe lifted.
    await links.http.post(path, data={"save": "1", "group": ["email:marketing"]})
    assert await decide(links, "ann", "email", "marketing") == Decision(True)
    assert await decide(links, "ann", "sms", "marketing") == Decision(
        False, "unsubscribed:sms:marketing"
    )
    # Marketing's unsubscribe is lifted; product updates were just left.
    kept = await links.pool.fetch("SELECT group_key FROM suppressions")
    assert [r["group_key"] for r in kept] == ["email:product_updates"]
    assert [e["properties"]["group"] for e in await links.events("Subscribed")] == [
        "sms:marketing",
        "email:marketing",
    ]
    assert len(await links.events("Unsubscribed")) == 3  # marketing, product updates, texts


async def test_bad_preference_forms_change_nothing(links: Links) -> None:
    key = await links.sent("ann", email="ann@shop.test")
    path = f"/u/{links.token('unsubscribe', key, 'ann')}/preferences"
    for form in ({}, {"group": "email:marketing"}, {"save": "1", "group": "email:nope"}):
        response = await links.http.post(path, data=form)
        assert response.status_code == 400, form
    assert "unknown subscription group 'email:nope'" in response.text
    for table in ("events", "subscription_preferences", "suppressions"):
        assert await links.count(table) == 0


async def test_labels_are_escaped_and_retired_groups_can_still_be_left(
    database: asyncpg.Pool, database_url: str
) -> None:
    groups = SubscriptionGroups(
        [SubscriptionGroup("email", "marketing", "<script>alert(1)</script> & offers")]
    )
    served = await serve(database, database_url, groups=groups)
    async with served.http:
        key = await served.sent("ann", email="ann@shop.test")
        page = (await served.http.get(f"/u/{served.token('unsubscribe', key, 'ann')}")).text
        assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp; offers" in page
        assert "<script>" not in page
        # A link of a group no longer configured still unsubscribes from it.
        retired = served.token("unsubscribe", key, "ann", group="email:digest")
        response = await served.http.post(f"/u/{retired}", data=ONE_CLICK)
        assert response.status_code == 200
        assert "You are unsubscribed from <strong>email:digest</strong>" in response.text
    assert await database.fetchval("SELECT group_key FROM subscription_preferences") == (
        "email:digest"
    )
