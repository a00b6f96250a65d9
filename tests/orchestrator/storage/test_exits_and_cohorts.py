"""Exit reasons and entry-week cohorts, counted by ``record_transition`` in a real Postgres, and
the backfill of migration 0012 over transitions recorded before it existed."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone
from importlib import resources
from typing import Any

import asyncpg
import pytest

from journeyman.orchestrator.storage import connect, funnel, migrate, record_transition
from journeyman.orchestrator.storage.cohorts import cohort_week, cohorts
from journeyman.orchestrator.storage.exits import StageExit, exits, exits_by_reason

J = "shop"
STAGES = ["awareness", "consideration"]
# A Monday at midnight UTC: the start of ISO week 2025-W23.
W0 = datetime(2025, 6, 2, tzinfo=UTC)
WEEK = timedelta(weeks=1)


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    await migrate(connection)
    yield connection
    await connection.close()


@dataclass
class Run:
    """One journey run, recording its transitions in order as the workflow would."""

    conn: asyncpg.Connection
    customer: str
    version: str = "v1"
    entered_at: datetime | None = None
    holdout: bool = False
    workflow_id: str = ""
    run_key: str = ""
    seq: int = 0
    recorded: list[bool] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.workflow_id = self.workflow_id or f"journey/{J}/{self.customer}"
        self.run_key = self.run_key or f"{self.workflow_id}@{uuid.uuid4()}"

    async def move(
        self, from_stage: str | None, to_stage: str | None, outcome: str, **more: Any
    ) -> Run:
        self.seq += 1
        self.recorded.append(
            await record_transition(
                self.conn,
                run_key=self.run_key,
                seq=self.seq,
                journey_id=J,
                version=more.pop("version", self.version),
                customer_id=self.customer,
                workflow_id=self.workflow_id,
                from_stage=from_stage,
                to_stage=to_stage,
                outcome=outcome,  # type: ignore[arg-type]
                holdout=self.holdout,
                entered_at=self.entered_at,
                **more,
            )
        )
        return self

    async def enter(self) -> Run:
        return await self.move(None, "awareness", "entered")


async def erase(conn: asyncpg.Connection, run: Run, stage: str) -> None:
    """What erasure records for a running run: an exit under a key of its own, no reason."""
    await record_transition(
        conn,
        run_key=f"{run.workflow_id}@erased/{uuid.uuid4()}",
        seq=1,
        journey_id=J,
        version=run.version,
        customer_id=run.customer,
        workflow_id=run.workflow_id,
        from_stage=stage,
        to_stage=None,
        outcome="exited",
        holdout=run.holdout,
    )


async def assert_exits_add_up_to_the_funnel(conn: asyncpg.Connection) -> None:
    """Per version and stage, the reasons of each outcome sum to that funnel column."""
    kpis = await conn.fetch("SELECT * FROM stage_kpis WHERE journey_id = $1", J)
    counted = await conn.fetch(
        "SELECT version, stage, outcome, sum(customers) AS n FROM stage_exit_kpis"
        " WHERE journey_id = $1 GROUP BY 1, 2, 3",
        J,
    )
    found = {(r["version"], r["stage"], r["outcome"]): int(r["n"]) for r in counted}
    for k in kpis:
        for outcome in ("moved_on", "exited", "migrated"):
            assert found.get((k["version"], k["stage"], outcome), 0) == k[outcome], (k, outcome)


async def test_leaving_without_converting_is_counted_by_reason_beside_the_funnel(
    conn: asyncpg.Connection,
) -> None:
    r1 = await Run(conn, "c1").enter()
    await r1.move("awareness", "consideration", "moved_on", reason="timeout")
    await r1.move("consideration", None, "exited", reason="exit_rule", reason_detail="Unsubscribed")
    r2 = await Run(conn, "c2").enter()
    # A reason given with a conversion is not an exit: nothing is counted for it.
    await r2.move("awareness", "consideration", "converted", reason="timeout")
    await r2.move(
        "consideration", None, "exited", reason="exit_step", reason_detail="no answer to the survey"
    )
    held = await Run(conn, "c3", holdout=True).enter()
    await held.move("awareness", None, "exited", reason="timeout")
    migrated = await Run(conn, "c4").enter()
    await migrated.move("awareness", "consideration", "moved_on", reason="no_goal")
    await migrated.move(
        "consideration", "consideration", "migrated", version="v2", from_version="v1"
    )
    await migrated.move("consideration", None, "exited", reason="merge", version="v2")
    erased = await Run(conn, "c5").enter()
    await erase(conn, erased, "awareness")
    silent = await Run(conn, "c6").enter()
    await silent.move("awareness", None, "exited")  # a caller that gives no reason
    long_words = await Run(conn, "c7").enter()
    await long_words.move("awareness", None, "exited", reason="exit_step", reason_detail="x" * 500)
    # A retried activity records nothing twice.
    long_words.seq -= 1
    await long_words.move("awareness", None, "exited", reason="exit_step", reason_detail="x" * 500)
    assert long_words.recorded == [True, True, False]

    assert await exits(conn, journey_id=J, stages=STAGES) == [
        StageExit("awareness", "moved_on", "timeout", None, 1, 0, 1),
        StageExit("awareness", "moved_on", "no_goal", None, 1, 0, 1),
        StageExit("awareness", "exited", "timeout", None, 0, 1, 1),
        StageExit("awareness", "exited", "exit_step", "x" * 200, 1, 0, 1),
        StageExit("awareness", "exited", "erasure", None, 1, 0, 1),
        StageExit("awareness", "exited", "unknown", None, 1, 0, 1),
        StageExit("consideration", "exited", "exit_rule", "Unsubscribed", 1, 0, 1),
        StageExit("consideration", "exited", "exit_step", "no answer to the survey", 1, 0, 1),
        StageExit("consideration", "exited", "merge", None, 1, 0, 1),
        StageExit("consideration", "migrated", "migration", None, 1, 0, 1),
    ]
    # One version: the migration left v1's stage; the merge happened in v2.
    v2 = await exits(conn, journey_id=J, stages=STAGES, version="v2")
    assert [(e.stage, e.reason) for e in v2] == [("consideration", "merge")]
    assert await exits_by_reason(conn, journey_id=J) == {
        "awareness": {"timeout": 1, "exit_step": 1, "erasure": 1, "no_goal": 1, "unknown": 1}
        | {"holdout": 1},
        "consideration": {"exit_rule": 1, "exit_step": 1, "merge": 1, "migration": 1},
    }
    rows = await funnel(conn, journey_id=J, stages=STAGES)
    assert [list(r.exits_by_reason) for r in rows] == [
        ["timeout", "exit_step", "erasure", "no_goal", "unknown", "holdout"],
        ["exit_rule", "exit_step", "merge", "migration"],
    ]
    assert [sum(r.exits_by_reason.values()) for r in rows] == [
        r.moved_on + r.exited + r.migrated for r in rows
    ]
    await assert_exits_add_up_to_the_funnel(conn)
    # The transitions say why too: only those that leave without converting.
    said = await conn.fetch(
        "SELECT customer_id, outcome, reason, reason_detail FROM stage_transitions"
        " WHERE customer_id IN ('c2', 'c4') ORDER BY customer_id, seq"
    )
    assert [tuple(r) for r in said] == [
        ("c2", "entered", None, None),
        ("c2", "converted", None, None),
        ("c2", "exited", "exit_step", "no answer to the survey"),
        ("c4", "entered", None, None),
        ("c4", "moved_on", "no_goal", None),
        ("c4", "migrated", "migration", None),
        ("c4", "exited", "merge", None),
    ]


async def test_an_unknown_reason_is_refused_and_records_nothing(conn: asyncpg.Connection) -> None:
    run = await Run(conn, "c1").enter()
    with pytest.raises(ValueError, match="unknown exit reason 'bored'"):
        await run.move("awareness", None, "exited", reason="bored")
    assert await conn.fetchval("SELECT count(*) FROM stage_transitions") == 1
    assert await conn.fetchval("SELECT exited FROM stage_kpis") == 0
    assert await conn.fetchval("SELECT count(*) FROM stage_exit_kpis") == 0


def test_a_cohort_week_is_the_utc_monday() -> None:
    assert cohort_week(W0) == date(2025, 6, 2)
    assert cohort_week(W0 + WEEK - timedelta(microseconds=1)) == date(2025, 6, 2)
    assert cohort_week(W0 + WEEK) == date(2025, 6, 9)
    # Monday 01:00 in UTC+2 is still Sunday in UTC.
    assert cohort_week(datetime(2025, 6, 9, 1, tzinfo=timezone(timedelta(hours=2)))) == date(
        2025, 6, 2
    )
    assert cohort_week(datetime(2025, 6, 8, 12)) == date(2025, 6, 2)  # naive: UTC
    assert cohort_week(date(2025, 6, 4)) == date(2025, 6, 2)


async def test_cohorts_follow_each_run_from_its_entry_week(conn: asyncpg.Connection) -> None:
    # Week 0: one converts out of the last stage after a goto back, one exits; one migrates.
    a = await Run(conn, "a", entered_at=W0).enter()
    await a.move("awareness", "consideration", "converted")
    await a.move("consideration", "awareness", "moved_on", reason="goto", reason_detail="back")
    await a.move("awareness", "consideration", "converted")
    await a.move("consideration", None, "converted")
    b = await Run(conn, "b", entered_at=W0 + WEEK - timedelta(seconds=1)).enter()
    await b.move("awareness", None, "exited", reason="timeout")
    m = await Run(conn, "m", entered_at=W0 + timedelta(days=2)).enter()
    await m.move("awareness", "consideration", "migrated", version="v2", from_version="v1")
    await m.move("consideration", None, "exited", reason="exit_rule", version="v2")
    # Week 1: the journey's goal, completed without converting, one still in, one in v2.
    c = await Run(conn, "c", entered_at=W0 + WEEK).enter()
    await c.move("awareness", None, "goal")
    d = await Run(conn, "d", entered_at=W0 + WEEK + timedelta(days=3)).enter()
    await d.move("awareness", "consideration", "moved_on", reason="no_goal")
    await d.move("consideration", None, "moved_on", reason="no_goal")
    await Run(conn, "e", entered_at=W0 + WEEK).enter()
    await Run(conn, "f", entered_at=W0 + WEEK, version="v2").enter()
    # Week 3, nothing in week 2.
    await Run(conn, "g", entered_at=W0 + 3 * WEEK).enter()

    found = await cohorts(conn, journey_id=J, stages=STAGES, weeks=5, until=W0 + 3 * WEEK)
    assert [
        (c.week, c.entered, c.reached, c.converted, c.exited, c.completed, c.active) for c in found
    ] == [
        (date(2025, 5, 26), 0, {"awareness": 0, "consideration": 0}, 0, 0, 0, 0),
        (date(2025, 6, 2), 3, {"awareness": 3, "consideration": 2}, 1, 2, 0, 0),
        (date(2025, 6, 9), 4, {"awareness": 4, "consideration": 1}, 1, 0, 1, 2),
        (date(2025, 6, 16), 0, {"awareness": 0, "consideration": 0}, 0, 0, 0, 0),
        (date(2025, 6, 23), 1, {"awareness": 1, "consideration": 0}, 0, 0, 0, 1),
    ]
    assert [c.conversion_rate for c in found] == [0.0, 0.3333, 0.25, 0.0, 0.0]
    # By the version runs entered with: the migrated run stays in v1's cohort.
    v1 = await cohorts(conn, journey_id=J, stages=STAGES, weeks=2, until=W0 + WEEK, version="v1")
    assert [(c.entered, c.converted, c.exited, c.active) for c in v1] == [
        (3, 1, 2, 0),
        (3, 1, 0, 1),
    ]
    v2 = await cohorts(conn, journey_id=J, stages=STAGES, weeks=2, until=W0 + WEEK, version="v2")
    assert [(c.entered, c.exited, c.active) for c in v2] == [(0, 0, 0), (1, 0, 1)]
    # A stage only an older version had is listed after the plan's stages.
    legacy = await Run(conn, "h", entered_at=W0).move(None, "legacy", "entered")
    assert legacy.recorded == [True]
    [week0] = await cohorts(conn, journey_id=J, stages=STAGES, weeks=1, until=W0)
    assert list(week0.reached) == ["awareness", "consideration", "legacy"]
    with pytest.raises(ValueError, match="weeks must be at least 1"):
        await cohorts(conn, journey_id=J, stages=STAGES, weeks=0, until=W0)


async def test_an_erased_runs_exit_lands_in_its_cohort(conn: asyncpg.Connection) -> None:
    # Without a given entry time, a run's week is that of its recorded entry.
    now = datetime.now(UTC)
    run = await Run(conn, "gone").enter()
    await run.move("awareness", "consideration", "converted")
    await erase(conn, run, "consideration")
    [week] = await cohorts(conn, journey_id=J, stages=STAGES, weeks=1, until=now)
    assert week.week == cohort_week(now)
    assert (week.entered, week.reached["consideration"], week.exited, week.active) == (1, 1, 1, 0)


# --- the backfill of migration 0012 ---------------------------------------------------------


async def migrate_before_0012(conn: asyncpg.Connection) -> None:
    """The schema as it was before exit reasons, recorded as applied like ``migrate`` does."""
    await conn.execute(
        "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
        " applied_at timestamptz NOT NULL DEFAULT now())"
    )
    folder = resources.files("journeyman.orchestrator.storage").joinpath("migrations")
    for entry in sorted(folder.iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".sql") and int(entry.name[:4]) < 12:
            await conn.execute(entry.read_text(encoding="utf-8"))
            await conn.execute(
                "INSERT INTO schema_migrations VALUES ($1, $2)", int(entry.name[:4]), entry.name
            )


async def test_the_migration_backfills_what_earlier_transitions_tell(
    empty_database_url: str,
) -> None:
    conn = await connect(empty_database_url)
    try:
        await migrate_before_0012(conn)
        transitions = [
            # (run key, seq, version, customer, from, to, outcome, at)
            ("w1@r", 1, "v1", "c1", None, "awareness", "entered", W0),
            ("w1@r", 2, "v1", "c1", "awareness", "consideration", "moved_on", W0 + WEEK),
            ("w1@r", 3, "v1", "c1", "consideration", None, "exited", W0 + 2 * WEEK),
            ("w2@r", 1, "v1", "c2", None, "awareness", "entered", W0 + WEEK),
            ("w2@r", 2, "v1", "c2", "awareness", None, "exited", W0 + WEEK),
            ("w3@r", 1, "v1", "c3", None, "awareness", "entered", W0 + timedelta(days=6)),
            ("w3@r", 2, "v2", "c3", "awareness", "awareness", "migrated", W0 + WEEK),
            ("w3@r", 3, "v2", "c3", "awareness", None, "goal", W0 + WEEK),
            ("w4@erased/x", 1, "v1", "c4", "awareness", None, "exited", W0 + WEEK),
        ]
        await conn.executemany(
            "INSERT INTO stage_transitions (run_key, seq, journey_id, version, customer_id,"
            " from_stage, to_stage, outcome, at) VALUES ($1, $2, 'shop', $3, $4, $5, $6, $7, $8)",
            transitions,
        )
        await conn.executemany(
            "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, status,"
            " holdout) VALUES ('shop', $1, $2, $3, 'exited', $4)",
            [("c1", "v1", "w1", False), ("c2", "v1", "w2", True), ("c3", "v2", "w3", False)],
        )
        # The counters also hold two exits whose transitions an erasure deleted since.
        await conn.executemany(
            "INSERT INTO stage_kpis (journey_id, version, stage, entered, converted, moved_on,"
            " exited, goal, migrated) VALUES ('shop', $1, $2, $3, 0, $4, $5, $6, $7)",
            [
                ("v1", "awareness", 5, 1, 4, 0, 1),
                ("v1", "consideration", 1, 0, 1, 0, 0),
                ("v2", "awareness", 1, 0, 0, 1, 0),
            ],
        )
        assert (await migrate(conn))[0] == "0012_exit_reasons.sql"

        reasons = await conn.fetch(
            "SELECT run_key, seq, reason FROM stage_transitions ORDER BY run_key, seq"
        )
        assert [r["reason"] for r in reasons] == [
            None, "unknown", "unknown",  # w1
            None, "unknown",  # w2
            None, "migration", None,  # w3
            "erasure",  # w4
        ]  # fmt: skip
        await assert_exits_add_up_to_the_funnel(conn)
        # c2 was held out; the two exits without transitions are unknown and treated.
        assert await exits(conn, journey_id=J, stages=STAGES) == [
            StageExit("awareness", "moved_on", "unknown", None, 1, 0, 1),
            StageExit("awareness", "exited", "erasure", None, 1, 0, 1),
            StageExit("awareness", "exited", "unknown", None, 2, 1, 3),
            StageExit("awareness", "migrated", "migration", None, 1, 0, 1),
            StageExit("consideration", "exited", "unknown", None, 1, 0, 1),
        ]
        # The migration left v1's stage, though its row carries v2.
        assert await exits(conn, journey_id=J, stages=STAGES, version="v2") == []

        found = await cohorts(conn, journey_id=J, stages=STAGES, weeks=2, until=W0 + WEEK)
        assert [
            (c.entered, c.reached, c.converted, c.exited, c.completed, c.active) for c in found
        ] == [
            (2, {"awareness": 2, "consideration": 1}, 1, 1, 0, 0),
            (1, {"awareness": 1, "consideration": 0}, 0, 1, 0, 0),
        ]
        # Counting goes on from the backfill: the next entry joins its week.
        await Run(conn, "c9", entered_at=W0 + WEEK).enter()
        [week1] = await cohorts(conn, journey_id=J, stages=STAGES, weeks=1, until=W0 + WEEK)
        assert (week1.entered, week1.active) == (2, 1)
    finally:
        await conn.close()
