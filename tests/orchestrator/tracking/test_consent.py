"""``may_send``: suppressions, group choices, opt-in groups and profile consent, on Postgres."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.tracking import (
    DEFAULT_GROUPS,
    Decision,
    UnknownGroupError,
    lift_suppressions,
    may_send,
    preferences,
    set_subscription,
    suppress,
)

ANN = "ann"
ADDRESS = "Ann.Lee@Shop.test"
MARKETING = DEFAULT_GROUPS.get("email:marketing")
SMS = DEFAULT_GROUPS.get("sms:marketing")


@dataclass(frozen=True)
class Case:
    suppressions: list[dict[str, Any]] = field(default_factory=list)
    choices: list[tuple[str, bool]] = field(default_factory=list)  # group key, subscribed
    consent: dict[str, bool] = field(default_factory=dict)
    channel: str = "email"
    group: str | None = "marketing"
    rule: str | None = None  # None: allowed


CASES = {
    "nothing recorded": Case(),
    "bounced address, matched in any case": Case(
        suppressions=[{"address": " ann.lee@SHOP.test", "reason": "bounce"}],
        rule="suppressed:bounce",
    ),
    "a bounce stops transactional mail too": Case(
        suppressions=[{"address": ADDRESS, "reason": "bounce"}],
        group=None,
        rule="suppressed:bounce",
    ),
    "the most serious suppression is named": Case(
        suppressions=[
            {"address": ADDRESS, "reason": "bounce"},
            {"customer_id": ANN, "reason": "complaint"},
            {"customer_id": ANN, "reason": "manual"},
        ],
        rule="suppressed:complaint",
    ),
    "another channel's suppression does not count": Case(
        suppressions=[{"customer_id": ANN, "reason": "manual", "channel": "sms"}],
    ),
    "unsubscribed from the whole channel": Case(
        suppressions=[{"address": ADDRESS, "reason": "unsubscribe"}],
        rule="suppressed:unsubscribe",
    ),
    "left the group": Case(
        choices=[("email:marketing", False)],
        rule="unsubscribed:email:marketing",
    ),
    "left another group": Case(choices=[("email:product_updates", False)]),
    "the address left the group under another id": Case(
        suppressions=[
            {
                "address": ADDRESS,
                "customer_id": "old-id",
                "reason": "unsubscribe",
                "group": "email:marketing",
            }
        ],
        rule="unsubscribed:email:marketing",
    ),
    "a group's unsubscribe leaves transactional mail alone": Case(
        suppressions=[{"address": ADDRESS, "reason": "unsubscribe", "group": "email:marketing"}],
        choices=[("email:marketing", False)],
        group=None,
    ),
    "suppression comes before the group choice": Case(
        suppressions=[{"customer_id": ANN, "reason": "complaint"}],
        choices=[("email:marketing", False)],
        rule="suppressed:complaint",
    ),
    "opt-in group never joined": Case(channel="sms", rule="no_consent:sms:marketing"),
    "opt-in group joined": Case(choices=[("sms:marketing", True)], channel="sms"),
    "opt-in group joined, then left": Case(
        choices=[("sms:marketing", True), ("sms:marketing", False)],
        channel="sms",
        rule="unsubscribed:sms:marketing",
    ),
    "profile consent false": Case(consent={"email": False}, rule="consent:email"),
    "profile consent false, transactional": Case(
        consent={"email": False}, group=None, rule="consent:email"
    ),
    "profile consent for another channel": Case(consent={"sms": False, "email": True}),
    "group choice comes before profile consent": Case(
        choices=[("email:marketing", False)],
        consent={"email": False},
        rule="unsubscribed:email:marketing",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_may_send_decision_table(database: asyncpg.Pool, name: str) -> None:
    case = CASES[name]
    async with database.acquire() as conn:
        await conn.execute(
            "INSERT INTO profiles (customer_id, traits, consent) VALUES ($1, $2, $3)",
            ANN,
            {"email": ADDRESS, "phone": "+33600000000"},
            case.consent,
        )
        for row in case.suppressions:
            await suppress(conn, **{"channel": "email", **row})
        for key, subscribed in case.choices:
            async with conn.transaction():
                await set_subscription(
                    conn,
                    customer_id=ANN,
                    group=DEFAULT_GROUPS.get(key),
                    subscribed=subscribed,
                    source="api",
                )
        decision = await may_send(conn, customer_id=ANN, channel=case.channel, group=case.group)
    assert decision == Decision(case.rule is None, case.rule)


async def test_an_explicit_address_is_checked_instead_of_the_profiles(
    database: asyncpg.Pool,
) -> None:
    async with database.acquire() as conn:
        await suppress(conn, channel="email", address="old@shop.test", reason="bounce")
        assert await may_send(conn, customer_id=ANN, channel="email", group="marketing") == (
            Decision(True)
        )
        decision = await may_send(
            conn, customer_id=ANN, channel="email", group="marketing", address="OLD@shop.test"
        )
        assert decision == Decision(False, "suppressed:bounce")


async def test_an_unknown_group_is_an_error(database: asyncpg.Pool) -> None:
    async with database.acquire() as conn:
        with pytest.raises(UnknownGroupError, match="email:newsletter"):
            await may_send(conn, customer_id=ANN, channel="email", group="newsletter")
        with pytest.raises(UnknownGroupError):  # a key of another channel
            await may_send(conn, customer_id=ANN, channel="email", group="sms:marketing")


async def test_a_choice_made_under_a_merged_id_still_counts(database: asyncpg.Pool) -> None:
    async with database.acquire() as conn:
        async with conn.transaction():
            await set_subscription(
                conn, customer_id="anon-1", group=MARKETING, subscribed=False, source="one_click"
            )
        # anon-1 logs in as ann: the alias points at ann; the choice stays on anon-1's row.
        await conn.execute(
            "INSERT INTO customer_aliases (alias, customer_id) VALUES ('anon-1', $1)", ANN
        )
        decision = await may_send(conn, customer_id=ANN, channel="email", group="marketing")
        assert decision == Decision(False, "unsubscribed:email:marketing")
        # A later choice of the merged customer wins over the older one of the alias.
        async with conn.transaction():
            assert await set_subscription(
                conn, customer_id=ANN, group=MARKETING, subscribed=True, source="preference_page"
            )
        assert await may_send(conn, customer_id=ANN, channel="email", group="marketing") == (
            Decision(True)
        )
        standing = {p.group.key: p for p in await preferences(conn, customer_id="anon-1")}
        assert standing["email:marketing"].customer_id == ANN
        assert standing["email:marketing"].subscribed
        assert standing["sms:marketing"].subscribed is False  # opt-in default
        assert standing["sms:marketing"].chosen_at is None


async def test_joining_again_lifts_the_unsubscribe_but_never_a_bounce(
    database: asyncpg.Pool,
) -> None:
    async with database.acquire() as conn:
        async with conn.transaction():
            assert await set_subscription(
                conn,
                customer_id=ANN,
                group=MARKETING,
                subscribed=False,
                source="one_click",
                address=ADDRESS,
                send_key="s-1",
            )
        rows = await conn.fetch("SELECT address, group_key, reason, send_key FROM suppressions")
        assert [dict(r) for r in rows] == [
            {
                "address": "ann.lee@shop.test",
                "group_key": "email:marketing",
                "reason": "unsubscribe",
                "send_key": "s-1",
            }
        ]
        async with conn.transaction():  # the same choice again changes nothing
            assert not await set_subscription(
                conn, customer_id=ANN, group=MARKETING, subscribed=False, source="one_click"
            )
        assert await suppress(conn, channel="email", address=ADDRESS, reason="bounce")
        assert not await suppress(conn, channel="email", address=ADDRESS, reason="bounce")
        async with conn.transaction():
            assert await set_subscription(
                conn,
                customer_id=ANN,
                group=MARKETING,
                subscribed=True,
                source="preference_page",
                address=ADDRESS,
            )
        reasons = await conn.fetch("SELECT reason FROM suppressions")
        assert [r["reason"] for r in reasons] == ["bounce"]
        changes = await conn.fetchval(
            "SELECT changes FROM subscription_preferences WHERE customer_id = $1", ANN
        )
        assert changes == 2
        lifted = await lift_suppressions(conn, channel="email", reasons=["bounce"], address=ADDRESS)
        assert lifted == 1
        assert await may_send(conn, customer_id=ANN, channel="email", group="marketing") == (
            Decision(True)
        )


async def test_a_suppression_needs_someone_and_a_known_reason(database: asyncpg.Pool) -> None:
    async with database.acquire() as conn:
        with pytest.raises(ValueError, match="address or a customer id"):
            await suppress(conn, channel="email", reason="bounce")
        with pytest.raises(ValueError, match="unknown suppression reason"):
            await suppress(conn, channel="email", customer_id=ANN, reason="spam")  # type: ignore[arg-type]
        assert await conn.fetchval("SELECT count(*) FROM suppressions") == 0
