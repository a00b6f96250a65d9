"""Delivery states: the transition rules, and recording provider events once, in real Postgres."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from journeyman.channels import message_id_for
from journeyman.orchestrator.storage import (
    claim_send,
    connect,
    create_pool,
    finish_send,
    migrate,
)
from journeyman.orchestrator.storage import delivery_states as states
from journeyman.orchestrator.storage.delivery_states import DeliveryEvent, State

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    yield pool
    await pool.close()


async def claimed(
    pool: asyncpg.Pool, send_key: str, *, provider_message_id: str | None = None
) -> None:
    """A delivery as the send path leaves it: claimed, then sent with the provider's id."""
    await claim_send(
        pool,
        send_key=send_key,
        journey_id="welcome",
        version="v1",
        customer_id="c-1",
        step_id="hello",
        channel="email",
    )
    if provider_message_id is not None:
        await finish_send(
            pool,
            send_key=send_key,
            status="sent",
            recipient="ann@example.com",
            provider_message_id=provider_message_id,
        )


def event(
    event_id: str,
    state: State | None,
    *,
    send_key: str | None = "k1",
    at: datetime = T0,
    provider_message_id: str | None = None,
    reason: str | None = None,
) -> DeliveryEvent:
    return DeliveryEvent(
        provider="sendgrid",
        event_id=event_id,
        event=state or "deferred",
        state=state,
        occurred_at=at,
        payload_sha256="0" * 64,
        send_key=send_key,
        provider_message_id=provider_message_id,
        reason=reason,
    )


async def record(pool: asyncpg.Pool, item: DeliveryEvent) -> states.Recorded:
    async with pool.acquire() as conn, conn.transaction():
        return await states.record_event(conn, item)


async def row(pool: asyncpg.Pool, send_key: str = "k1") -> asyncpg.Record:
    found = await pool.fetchrow("SELECT * FROM deliveries WHERE send_key = $1", send_key)
    assert found is not None
    return found


# --- the rules -----------------------------------------------------------------------------------


def test_progress_only_moves_forward() -> None:
    order = ["sending", "unknown", "queued", "sent", "delivered", "opened", "clicked"]
    for i, current in enumerate(order):
        for j, new in enumerate(order):
            assert states.may_move(current, new) is (j > i), (current, new)


def test_final_states_never_change() -> None:
    for final in states.FINAL:
        assert not any(states.may_move(final, new) for new in states.STATES), final


def test_failures_and_suppressions_end_only_messages_not_yet_delivered() -> None:
    for final in ("failed", "suppressed", "skipped", "capped"):
        assert states.entered_from(final) == ["sending", "unknown", "queued", "sent"]


def test_a_bounce_may_follow_delivery_but_not_an_open() -> None:
    assert states.may_move("delivered", "bounced")
    assert not states.may_move("opened", "bounced")
    assert not states.may_move("clicked", "bounced")


def test_a_complaint_ends_any_message_in_progress() -> None:
    assert states.entered_from("complained") == list(states.PROGRESS)


def test_an_unknown_state_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown delivery state 'read'"):
        states.may_move("sent", "read")


def test_reasons_mask_the_address_and_stay_short() -> None:
    text = "550 5.1.1 <Ann@Example.com>: Recipient address rejected:\n user unknown ann@example.com"
    assert states.short_reason(text, address="ann@example.com") == (
        "550 5.1.1 <<recipient>>: Recipient address rejected: user unknown <recipient>"
    )
    cut = states.short_reason("x" * 1000)
    assert cut is not None and len(cut) == states.MAX_REASON and cut.endswith("…")
    assert states.short_reason("") is None


# --- the schema ----------------------------------------------------------------------------------


async def test_every_state_old_and_new_is_accepted_and_nothing_else(pool: asyncpg.Pool) -> None:
    for index, state in enumerate(states.STATES):
        await pool.execute(
            "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id,"
            " channel, status) VALUES ($1, 'j', 'v', 'c', 's', 'email', $2)",
            f"k{index}",
            state,
        )
    with pytest.raises(asyncpg.CheckViolationError):
        await pool.execute(
            "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id,"
            " channel, status) VALUES ('bad', 'j', 'v', 'c', 's', 'email', 'read')"
        )


async def test_the_message_id_digest_finds_the_delivery(pool: asyncpg.Pool) -> None:
    send_key = "wf-welcome-ann/awareness/hello/1 é"
    await claimed(pool, send_key)
    message_id = message_id_for(send_key, from_address="Shop <news@shop.example>")
    digest = message_id[1:].split("@")[0]
    async with pool.acquire() as conn:
        assert await states.send_key_for_message_digest(conn, digest) == send_key
        assert await states.send_key_for_message_digest(conn, "0" * 40) is None
        # The lookup's expression is the index's: with sequential scans off, it is used.
        async with conn.transaction():
            await conn.execute("SET LOCAL enable_seqscan = off")
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN SELECT send_key FROM deliveries"
                    " WHERE delivery_message_digest(send_key) = $1",
                    digest,
                )
            )
    assert "deliveries_message_digest" in plan


# --- recording events ----------------------------------------------------------------------------


async def test_states_move_forward_and_timestamps_keep_the_first_report(
    pool: asyncpg.Pool,
) -> None:
    await claimed(pool, "k1", provider_message_id="msg-1")
    opened = await record(pool, event("e-open", "opened", at=T0 + timedelta(minutes=5)))
    assert (opened.previous, opened.status, opened.moved) == ("sent", "opened", True)
    # The delivery report arrives late: the state stays, the fact is dated.
    late = await record(pool, event("e-delivered", "delivered", at=T0 + timedelta(minutes=1)))
    assert (late.previous, late.status, late.moved) == ("opened", "opened", False)
    await record(pool, event("e-open-2", "opened", at=T0 + timedelta(minutes=30)))
    found = await row(pool)
    assert found["status"] == "opened"
    assert found["delivered_at"] == T0 + timedelta(minutes=1)
    assert found["opened_at"] == T0 + timedelta(minutes=5)  # the first open, not the later one
    assert found["clicked_at"] is None


async def test_a_retried_event_is_recorded_once_and_applied_once(pool: asyncpg.Pool) -> None:
    await claimed(pool, "k1", provider_message_id="msg-1")
    first = await record(pool, event("e-bounce", "bounced", reason="550 no such user"))
    again = await record(pool, event("e-bounce", "bounced", reason="something else"))
    assert (first.duplicate, first.moved) == (False, True)
    assert (again.duplicate, again.moved) == (True, False)
    assert await pool.fetchval("SELECT count(*) FROM delivery_events") == 1
    found = await row(pool)
    assert (found["status"], found["reason"]) == ("bounced", "550 no such user")


async def test_final_states_hold_against_later_events(pool: asyncpg.Pool) -> None:
    await claimed(pool, "k1", provider_message_id="msg-1")
    await record(pool, event("e-complaint", "complained", reason="spam report"))
    after = await record(pool, event("e-click", "clicked", at=T0 + timedelta(hours=1)))
    assert after.status == "complained"
    found = await row(pool)
    assert found["reason"] == "spam report"
    assert found["clicked_at"] == T0 + timedelta(hours=1)  # reported, though it changes nothing


async def test_an_event_that_records_only_leaves_the_state(pool: asyncpg.Pool) -> None:
    await claimed(pool, "k1", provider_message_id="msg-1")
    deferred = await record(pool, event("e-deferred", None, reason="421 try again later"))
    assert (deferred.matched, deferred.moved, deferred.status) == (True, False, "sent")
    assert await pool.fetchval("SELECT reason FROM delivery_events") == "421 try again later"


async def test_a_state_reached_by_the_provider_clears_the_send_paths_doubt(
    pool: asyncpg.Pool,
) -> None:
    await claimed(pool, "k1")
    await finish_send(pool, send_key="k1", status="unknown", reason="earlier attempt interrupted")
    await record(pool, event("e-delivered", "delivered"))
    found = await row(pool)
    assert (found["status"], found["reason"]) == ("delivered", None)


async def test_events_before_the_provider_id_wait_and_are_attached_in_order(
    pool: asyncpg.Pool,
) -> None:
    await claimed(pool, "k1")  # still sending: the provider's answer is not in the ledger yet
    early: list[tuple[str, State, int]] = [("e-3", "delivered", 3), ("e-1", "queued", 1)]
    for event_id, state, minutes in early:
        waiting = await record(
            pool,
            event(
                event_id,
                state,
                send_key=None,
                provider_message_id="SM1",
                at=T0 + timedelta(minutes=minutes),
            ),
        )
        assert (waiting.duplicate, waiting.matched) == (False, False)
    await record(pool, event("e-other", "sent", send_key=None, provider_message_id="SM2"))
    async with pool.acquire() as conn, conn.transaction():
        await finish_send(conn, send_key="k1", status="sent", provider_message_id="SM1")
        attached = await states.attach_waiting_events(
            conn, send_key="k1", provider_message_id="SM1"
        )
    assert attached == 2
    found = await row(pool)
    assert (found["status"], found["delivered_at"]) == ("delivered", T0 + timedelta(minutes=3))
    keys = await pool.fetch("SELECT event_id, send_key FROM delivery_events ORDER BY event_id")
    assert [(r["event_id"], r["send_key"]) for r in keys] == [
        ("e-1", "k1"),
        ("e-3", "k1"),
        ("e-other", None),
    ]


async def test_concurrent_events_end_in_the_furthest_state(pool: asyncpg.Pool) -> None:
    await claimed(pool, "k1", provider_message_id="msg-1")
    sequence: list[State] = ["queued", "delivered", "opened", "clicked", "sent", "delivered"]
    await asyncio.gather(
        *(record(pool, event(f"e-{i}", state)) for i, state in enumerate(sequence * 3))
    )
    found = await row(pool)
    assert found["status"] == "clicked"
    assert await pool.fetchval("SELECT count(*) FROM delivery_events") == len(sequence) * 3


async def test_a_guarded_update_keeps_the_send_path_from_moving_a_state_back(
    pool: asyncpg.Pool,
) -> None:
    await claimed(pool, "k1")
    await record(pool, event("e-delivered", "delivered"))
    # What the send path writes after the provider's answer, guarded by the rules.
    await pool.execute(
        "UPDATE deliveries SET status = CASE WHEN status = ANY($2::text[]) THEN 'sent'"
        " ELSE status END, provider_message_id = 'msg-1' WHERE send_key = $1",
        "k1",
        states.entered_from("sent"),
    )
    found = await row(pool)
    assert (found["status"], found["provider_message_id"]) == ("delivered", "msg-1")
