"""Generated customers: loaded into a real, migrated Postgres, read back by the engine's code."""

from __future__ import annotations

from datetime import UTC, datetime

from bench import pg_data, pg_load
from journeyman.orchestrator.customers.view import customer_view, identify
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.roles import prepare_database
from journeyman.orchestrator.storage import connect, create_pool, deploy_plan, funnel

NOW = datetime(2026, 11, 1, tzinfo=UTC)


def test_generation_is_deterministic_and_complete() -> None:
    first = pg_data.generate(0, 50, journey_id="j", version="v", now=NOW, seed=3)
    again = pg_data.generate(0, 50, journey_id="j", version="v", now=NOW, seed=3)
    assert first.lines == again.lines
    counts = {table: len(lines) for table, lines in first.lines.items()}
    assert counts["events"] == 50 * pg_data.EVENTS_PER_CUSTOMER
    assert counts["profiles"] == counts["customer_metrics"] == counts["journey_runs"] == 50
    assert counts["customer_aliases"] == counts["customer_merges"] == 10
    # Every line has one cell per column, so COPY can never shift a value into the wrong one.
    for table, lines in first.lines.items():
        width = len(pg_data.COLUMNS[table])
        assert all(line.endswith("\n") and line.count("\t") == width - 1 for line in lines)
    # Every run enters the first stage and leaves its last one exactly once.
    entered = first.counters.stages[("awareness", "entered")]
    left = sum(n for (_, column), n in first.counters.stages.items() if column != "entered")
    assert entered == 50
    assert left == sum(n for (_, column), n in first.counters.stages.items() if column == "entered")


async def test_loaded_customers_are_what_the_engine_reads(database_url: str) -> None:
    await prepare_database(database_url)
    plan = compile_source(pg_data.JOURNEY_SOURCE, source="<test>")
    conn = await connect(database_url)
    pool = await create_pool(database_url)
    try:
        await deploy_plan(conn, plan=plan, source=pg_data.JOURNEY_SOURCE)
        seen: list[int] = []

        async def load(start: int, stop: int) -> pg_load.Loaded:
            return await pg_load.load(
                database_url,
                start=start,
                stop=stop,
                journey_id=plan.journey_id,
                version=plan.version,
                now=NOW,
                seed=1,
                on_progress=seen.append,
            )

        first = await load(0, 300)
        assert seen == [300]
        stored = [await conn.fetchval(f"SELECT count(*) FROM {t}") for t in pg_data.COLUMNS]
        assert first.rows == sum(stored)
        await load(300, 700)  # sizes are cumulative
        tables = ("events", "profiles", "customer_metrics", "journey_runs", "customer_aliases")
        counts = {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in tables}
        assert counts == {
            "events": 7_000,
            "profiles": 700,
            "customer_metrics": 700,
            "journey_runs": 700,
            "customer_aliases": 140,
        }
        # The counters agree with the transitions, as the engine's own counting would have it.
        from_transitions = {
            (r["stage"], r["column"]): r["n"]
            for r in await conn.fetch(
                "SELECT from_stage AS stage, outcome AS column, count(*) AS n"
                " FROM stage_transitions WHERE from_stage IS NOT NULL GROUP BY 1, 2"
                " UNION ALL SELECT to_stage, 'entered', count(*) FROM stage_transitions"
                " WHERE to_stage IS NOT NULL GROUP BY 1"
            )
        }
        stages = {
            s.stage: s
            for s in await funnel(pool, journey_id=plan.journey_id, stages=list(pg_data.STAGES))
        }
        for (stage, column), n in from_transitions.items():
            assert getattr(stages[stage], column) == n, (stage, column)
        assert stages["awareness"].entered == 700
        assert sum(s.current for s in stages.values()) == 0  # every run is finished
        assert sum(sum(s.exits_by_reason.values()) for s in stages.values()) == sum(
            s.exited for s in stages.values()
        )
        # A look-up by an anonymous id finds the customer it was merged into, with their run.
        found = await identify(pool, "anon-0000005")
        assert found is not None and found.customer_id == "pg-0000005"
        view = await customer_view(pool, found, temporal=None, temporal_status="not configured")
        assert view.traits["email"] == "pg-0000005@example.com"
        assert [m.from_id for m in view.merges] == ["anon-0000005"]
        assert len(view.journeys.finished) == 1 and view.journeys.running == []
        assert view.metrics is not None and view.metrics["last_channel"] == "web"
    finally:
        await pool.close()
        await conn.close()
