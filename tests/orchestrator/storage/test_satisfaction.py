"""Satisfaction answers at ingest: the convention, attribution to runs, stages and
touchpoints, and the counters, on a real Postgres through the real ingest transaction."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.customers.events import ENGINE_SOURCE
from journeyman.orchestrator.customers.settings import parse_customer_settings
from journeyman.orchestrator.ingest import IncomingEvent, TriggerIndex, ingest
from journeyman.orchestrator.storage import connect, create_pool, migrate
from journeyman.orchestrator.storage.satisfaction import (
    Reading,
    emotion_curve,
    read_answers,
    to_common_scale,
)

NOW = datetime.now(UTC).replace(microsecond=0)
H = timedelta(hours=1)


def answers(event: str, **properties: Any) -> list[Reading]:
    return read_answers(
        event=event, properties=properties, survey_event="Survey Answered", score_property="score"
    )


@pytest.mark.parametrize(
    ("event", "properties", "expected"),
    [
        ("Survey Answered", {"score": 9}, [Reading("score", Decimal(9))]),
        ("Survey Answered", {"score": "7"}, [Reading("score", Decimal(7))]),
        ("Survey Answered", {"score": 4.5}, [Reading("score", Decimal("4.5"))]),
        ("Survey Answered", {"score": 0}, [Reading("score", None)]),
        ("Survey Answered", {"score": 11}, [Reading("score", None)]),
        ("Survey Answered", {"score": "great"}, [Reading("score", None)]),
        ("Survey Answered", {"score": True}, [Reading("score", None)]),
        ("Survey Answered", {"score": [9]}, [Reading("score", None)]),
        ("Survey Answered", {"score": None}, []),
        ("Survey Answered", {"rating": 5}, []),
        # A score on any other event is no satisfaction answer: a game's score, say.
        ("Level Completed", {"score": 9}, []),
        ("Chat Closed", {"csat": 5}, [Reading("csat", Decimal(5))]),
        ("Chat Closed", {"csat": 1}, [Reading("csat", Decimal(1))]),
        ("Chat Closed", {"csat": 6}, [Reading("csat", None)]),
        ("Chat Closed", {"csat": 0}, [Reading("csat", None)]),
        ("NPS Submitted", {"nps": 0}, [Reading("nps", Decimal(0))]),
        ("NPS Submitted", {"nps": 10}, [Reading("nps", Decimal(10))]),
        ("NPS Submitted", {"nps": 8.0}, [Reading("nps", Decimal(8))]),
        ("NPS Submitted", {"nps": 8.5}, [Reading("nps", None)]),
        ("NPS Submitted", {"nps": -1}, [Reading("nps", None)]),
        ("NPS Submitted", {"nps": float("nan")}, [Reading("nps", None)]),
        ("NPS Submitted", {"nps": "1e400"}, [Reading("nps", None)]),
        ("NPS Submitted", {"nps": 10**400}, [Reading("nps", None)]),
        (
            "Survey Answered",
            {"csat": 4, "nps": 9, "score": 8},
            [
                Reading("csat", Decimal(4)),
                Reading("nps", Decimal(9)),
                Reading("score", Decimal(8)),
            ],
        ),
    ],
)
def test_the_score_convention(
    event: str, properties: dict[str, Any], expected: list[Reading]
) -> None:
    assert answers(event, **properties) == expected


def test_a_configured_survey_event_and_score_property_are_read() -> None:
    found = read_answers(
        event="Feedback Given",
        properties={"stars": 3},
        survey_event="Feedback Given",
        score_property="stars",
    )
    assert found == [Reading("score", Decimal(3))]
    # A survey whose score property is `nps` is read once, as NPS.
    found = read_answers(
        event="NPS Answered",
        properties={"nps": 6},
        survey_event="NPS Answered",
        score_property="nps",
    )
    assert found == [Reading("nps", Decimal(6))]


def test_the_common_scale_maps_each_range_onto_0_to_10() -> None:
    assert [to_common_scale("csat", v) for v in (1, 3, 5)] == [0, 5, 10]
    assert [to_common_scale("nps", v) for v in (0, 7, 10)] == [0, 7, 10]
    assert [to_common_scale("score", v) for v in (1, 5.5, 10)] == [0, 5, 10]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    created = await create_pool(database_url)
    yield created
    await created.close()


async def run(
    pool: asyncpg.Pool,
    customer: str,
    *,
    journey: str = "survey",
    stage: str | None = "ask",
    status: str = "active",
    holdout: bool = False,
    n: int = 1,
    version: str = "v1",
) -> str:
    workflow_id = f"journey/{journey}/{customer}" + ("" if n == 1 else f"/{n}")
    await pool.execute(
        "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, stage, status,"
        " holdout) VALUES ($1, $2, $3, $4, $5, $6, $7)",
        journey,
        customer,
        version,
        workflow_id,
        stage,
        status,
        holdout,
    )
    return workflow_id


async def sent(
    pool: asyncpg.Pool,
    workflow_id: str,
    customer: str,
    step: str,
    at: datetime,
    status: str = "sent",
    journey: str = "survey",
) -> None:
    await pool.execute(
        "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id, channel,"
        " status, created_at) VALUES ($1, $2, 'v1', $3, $4, 'email', $5, $6)",
        f"{workflow_id}@run-1/stage/{step}/{uuid.uuid4().hex[:6]}",
        journey,
        customer,
        step,
        status,
        at,
    )


def track(customer: str, name: str, at: datetime = NOW, **properties: Any) -> IncomingEvent:
    return IncomingEvent(
        message_id=str(uuid.uuid4()),
        type="track",
        customer_id=customer,
        event=name,
        properties=properties,
        traits={},
        context={},
        occurred_at=at,
    )


async def counters(pool: asyncpg.Pool) -> dict[tuple[str, ...], tuple[Any, ...]]:
    rows = await pool.fetch("SELECT * FROM satisfaction_kpis")
    return {
        (r["journey_id"], r["stage"], r["step_id"], r["measure"]): (
            r["answers"],
            r["score_sum"],
            r["promoters"],
            r["passives"],
            r["detractors"],
            r["rejected"],
        )
        for r in rows
    }


async def test_an_answer_counts_for_the_last_message_each_active_run_sent_before_it(
    pool: asyncpg.Pool,
) -> None:
    survey = await run(pool, "c1")
    await sent(pool, survey, "c1", "welcome", NOW - 5 * H)
    await sent(pool, survey, "c1", "survey", NOW - 2 * H)
    await sent(pool, survey, "c1", "reminder", NOW - H, status="bounced")  # never reached them
    await sent(pool, survey, "c1", "thanks", NOW + H)  # after the answer
    # The customer's older run of the same journey, and a run of another journey.
    older = await run(pool, "c1", n=2, status="completed")
    await sent(pool, older, "c1", "old-survey", NOW - H)
    loyalty = await run(pool, "c1", journey="loyalty", stage="member")
    await sent(pool, loyalty, "c1", "points", NOW - 3 * H, journey="loyalty")

    result = await ingest(
        pool, events=[track("c1", "Survey Answered", score=9)], index=TriggerIndex()
    )

    assert result.accepted == 1
    assert await counters(pool) == {
        ("survey", "ask", "survey", "score"): (1, Decimal(9), 0, 0, 0, 0),
        ("loyalty", "member", "points", "score"): (1, Decimal(9), 0, 0, 0, 0),
    }


async def test_answers_before_any_message_count_for_the_stage_only(pool: asyncpg.Pool) -> None:
    await run(pool, "c2")
    await ingest(pool, events=[track("c2", "Chat Closed", csat=4)], index=TriggerIndex())
    assert await counters(pool) == {("survey", "ask", "", "csat"): (1, Decimal(4), 0, 0, 0, 0)}


async def test_held_out_ended_and_not_yet_started_runs_get_nothing(pool: asyncpg.Pool) -> None:
    await run(pool, "held", holdout=True)
    await run(pool, "done", status="converted")
    await run(pool, "new", status="entering", stage=None)
    await run(pool, "gone", status="exited")
    events = [track(c, "Survey Answered", score=8) for c in ("held", "done", "new", "gone", "none")]
    result = await ingest(pool, events=events, index=TriggerIndex())
    assert result.accepted == 5
    assert await counters(pool) == {}


async def test_nps_classes_rejections_and_duplicates(pool: asyncpg.Pool) -> None:
    await run(pool, "c3")
    await run(pool, "c4")
    repeated = track("c3", "NPS Submitted", nps=10)
    events = [
        repeated,
        repeated,  # the same messageId again: accepted, ignored, not counted twice
        track("c4", "NPS Submitted", nps=9),
        track("c3", "NPS Submitted", nps=8),
        track("c4", "NPS Submitted", nps=7),
        track("c3", "NPS Submitted", nps=6),
        track("c4", "NPS Submitted", nps=0),
        track("c3", "NPS Submitted", nps=12),  # out of range
        track("c4", "NPS Submitted", nps="ten"),  # not a number
        track("c3", "Survey Answered", score=0),  # out of range
    ]
    result = await ingest(pool, events=events, index=TriggerIndex())
    assert (result.accepted, result.duplicates) == (9, 1)
    assert await counters(pool) == {
        ("survey", "ask", "", "nps"): (6, Decimal(40), 2, 2, 2, 2),
        ("survey", "ask", "", "score"): (0, Decimal(0), 0, 0, 0, 1),
    }


async def test_engine_events_and_events_without_answers_write_nothing(pool: asyncpg.Pool) -> None:
    await run(pool, "c5")
    engine = track("c5", "Survey Answered", score=3).model_copy(
        update={"context": {"source": ENGINE_SOURCE}}
    )
    plain = track("c5", "Product Viewed", product_id="p1")
    identify = IncomingEvent(
        message_id="id-1",
        type="identify",
        customer_id="c5",
        event=None,
        properties={},
        traits={"score": 10, "nps": 10},
        context={},
        occurred_at=NOW,
    )
    await ingest(pool, events=[engine, plain, identify], index=TriggerIndex())
    assert await counters(pool) == {}


async def test_the_configured_survey_event_is_read(pool: asyncpg.Pool) -> None:
    await run(pool, "c6")
    settings = parse_customer_settings("satisfaction: {event: Feedback Given, score: stars}\n")
    events = [track("c6", "Feedback Given", stars=5), track("c6", "Survey Answered", score=2)]
    await ingest(pool, events=events, index=TriggerIndex(), settings=settings)
    assert await counters(pool) == {("survey", "ask", "", "score"): (1, Decimal(5), 0, 0, 0, 0)}


async def test_a_clock_running_fast_does_not_pick_a_later_message(pool: asyncpg.Pool) -> None:
    survey = await run(pool, "c7")
    await sent(pool, survey, "c7", "survey", NOW - H)
    await sent(pool, survey, "c7", "follow-up", datetime.now(UTC) + timedelta(minutes=10))
    answer = track("c7", "Survey Answered", at=NOW + timedelta(days=1), score=6)
    await ingest(pool, events=[answer], index=TriggerIndex())
    assert list(await counters(pool)) == [("survey", "ask", "survey", "score")]


async def test_concurrent_batches_count_every_answer(pool: asyncpg.Pool) -> None:
    customers = [f"k{n}" for n in range(12)]
    for n, customer in enumerate(customers):
        workflow_id = await run(pool, customer, stage="ask" if n % 2 else "follow")
        await sent(pool, workflow_id, customer, "survey", NOW - H)
    # Every batch bumps the same counter rows, in different orders of customers.
    batches = [
        [track(c, "Survey Answered", score=1 + (i + n) % 10) for c in customers[i:] + customers[:i]]
        for i, n in enumerate(range(8))
    ]
    await asyncio.gather(*(ingest(pool, events=b, index=TriggerIndex()) for b in batches))
    expected_sum = sum(1 + (i + n) % 10 for i, n in enumerate(range(8))) * len(customers)
    found = await counters(pool)
    assert sum(v[0] for v in found.values()) == 8 * len(customers)
    assert sum(v[1] for v in found.values()) == expected_sum
    assert {k[1] for k in found} == {"ask", "follow"}


async def test_the_curve_averages_per_measure_and_on_the_common_scale(pool: asyncpg.Pool) -> None:
    await run(pool, "a")
    await run(pool, "b", stage="follow")
    given: dict[str, list[dict[str, Any]]] = {
        "a": [{"csat": 5}, {"csat": 2}, {"nps": 10}, {"score": 7}],
        "b": [{"nps": 3}, {"nps": 9}, {"score": 10, "csat": 4}],
    }
    events = [track(c, "Survey Answered", **p) for c, ps in given.items() for p in ps]
    await ingest(pool, events=events, index=TriggerIndex())
    curve = await emotion_curve(
        pool, journey_id="survey", stages=["welcome", "ask", "follow"], steps=[("survey", "ask")]
    )
    assert [p.stage for p in curve.stages] == ["welcome", "ask", "follow"]
    welcome, ask, follow = curve.stages
    assert (welcome.answers, welcome.average, welcome.nps) == (0, None, None)
    # ask: csat 5 and 2 (10 and 2.5 on 0-10), nps 10, score 7 (6.67 on 0-10).
    assert ask.answers == 4
    assert ask.csat_average == pytest.approx(3.5)
    assert ask.nps_average == pytest.approx(10)
    assert ask.nps == pytest.approx(100)
    assert ask.score_average == pytest.approx(7)
    assert ask.average == pytest.approx((10 + 2.5 + 10 + 60 / 9) / 4)
    # follow: nps 3 and 9 (one detractor, one promoter), score 10, csat 4 (7.5 on 0-10).
    assert (follow.promoters, follow.passives, follow.detractors) == (1, 0, 1)
    assert follow.nps == pytest.approx(0)
    assert follow.average == pytest.approx((3 + 9 + 10 + 7.5) / 4)
    # No message was sent: the touchpoint is listed, with nothing counted.
    assert [(t.step_id, t.stage, t.answers) for t in curve.touchpoints] == [("survey", "ask", 0)]
