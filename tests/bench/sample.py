"""A run's result as the bench assembles it, built from the phases' own result types.

Built from the real dataclasses (not a hand-written dict), so a renamed or dropped field
breaks these tests as it would break the report.
"""

from __future__ import annotations

from typing import Any

from bench.bare_phase import BareResult
from bench.ceilings import Ceiling, CeilingsResult
from bench.ingest_phase import IngestResult
from bench.journey_phase import EngineResult
from bench.pg_scale_phase import PgPoint, PgResult
from bench.reaction_phase import ReactionResult
from bench.scale_phase import ScalePoint, ScaleResult
from bench.stats import summarize

CPU = {
    "bench process (API, load, in-process workers)": 1.0,
    "postgres": 0.5,
    "temporal server": 0.25,
    "worker process": 0.0,
    "smtp sink": 0.0,
    "rest of machine": 0.1,
}


def latency(p50_ms: float, p99_ms: float) -> dict[str, float]:
    """A latency summary whose p50 and p99 are the given values (50 calls)."""
    values = [p50_ms / 1000] * 25 + [p99_ms / 1000] * 25
    return summarize(values).as_dict()


def ceiling(events_per_s: float, events: int = 20_000) -> Ceiling:
    return Ceiling(
        events=events,
        seconds=round(events / events_per_s, 3),
        events_per_s=events_per_s,
        cpu_seconds=CPU,
    )


def scale_point(
    parked: int,
    rss_mib: float,
    funnel_p99: float,
    lookup_p99: float,
    *,
    size: int | None = None,
    stopped: str = "",
) -> ScalePoint:
    return ScalePoint(
        parked=parked,
        size=size or parked,
        stopped=stopped,
        park_seconds=parked / 20,
        park_total_seconds=parked / 20,
        parked_per_s=20.0,
        settle_seconds=1.0,
        worker_rss_mib=rss_mib,
        worker_peak_rss_mib=rss_mib + 5,
        temporal_server_rss_mib=300.0,
        temporal_server_peak_rss_mib=310.0,
        machine_available_mib=20_000.0,
        visibility_parked=parked,
        funnel_now=parked,
        funnel=latency(5.0, funnel_p99),
        lookup=latency(20.0, lookup_p99),
        lookup_positions_from_temporal=50,
    )


def pg_point(customers: int, funnel_p99: float, lookup_p99: float) -> PgPoint:
    return PgPoint(
        customers=customers,
        events=customers * 10,
        rows_loaded=customers * 17,
        load_seconds=customers / 3000,
        rows_per_s=51_000,
        vacuum_seconds=1.0,
        database_mib=customers / 140,
        funnel=latency(6.0, funnel_p99),
        lookup=latency(9.0, lookup_p99),
    )


def result(
    *,
    ingest_eps: float = 30_000.0,
    upsert_eps: float = 50_000.0,
    copy_eps: float = 60_000.0,
    reaction_p50: float = 80.0,
    reaction_p99: float = 400.0,
    missing: int = 0,
    bare_jps: float = 25.0,
    engine_jps: float = 21.0,
    scale: list[ScalePoint] | None = None,
    pg: list[PgPoint] | None = None,
) -> dict[str, Any]:
    """A whole run; every target passes with the defaults."""
    scale = (
        scale
        if scale is not None
        else [
            scale_point(1_000, 200.0, 12.0, 30.0),
            scale_point(10_000, 320.0, 13.0, 35.0),
            scale_point(100_000, 420.0, 14.0, 40.0),
        ]
    )
    pg = (
        pg
        if pg is not None
        else [
            pg_point(10_000, 20.0, 25.0),
            pg_point(100_000, 21.0, 30.0),
            pg_point(1_000_000, 22.0, 45.0),
        ]
    )
    ingest = IngestResult(
        events=20_000,
        batch_size=100,
        clients=4,
        requests=200,
        seconds=round(20_000 / ingest_eps, 3),
        events_per_s=ingest_eps,
        p50_ms=80.0,
        p99_ms=190.0,
        max_ms=200.0,
        shared_customers=False,
        retried_5xx=0,
        first_errors=[],
        stored_events=20_000,
        outbox_rows=2_000,
        journey_runs=1_000,
        cpu_seconds=CPU,
    )
    ceilings = CeilingsResult(
        rows=20_000,
        batch_size=100,
        clients=4,
        columns=["message_id", "type"],
        copy=ceiling(copy_eps),
        upsert=ceiling(upsert_eps),
        bulk_copy=ceiling(150_000.0),
    )
    bare = BareResult(
        customers=300,
        seconds=300 / bare_jps,
        journeys_per_s=bare_jps,
        starts_seconds=1.5,
        starts_per_s=200.0,
        history_events_per_run=24,
        cpu_seconds=CPU,
    )
    engine = EngineResult(
        customers=300,
        seconds=300 / engine_jps,
        journeys_per_s=engine_jps,
        replies_reposted=0,
        lost_reply_checks=0,
        retried_5xx=0,
        emails=600,
        history_events_per_run=43,
        timeline={
            "customers": 300,
            "hops": {"entry: ingested -> delivered to Temporal": {"p50_ms": 5.0, "p99_ms": 9.0}},
            "milestones_s": {"all runs completed": 14.2},
        },
        cpu_seconds=CPU,
    )
    reaction = ReactionResult(
        customers=300,
        rate_per_s=10.0,
        posted_per_s=10.0,
        park_seconds=20.0,
        reaction=latency(reaction_p50, reaction_p99),
        min_ms=30.0,
        missing=missing,
        missing_detail=[],
        answer=latency(10.0, 50.0),
        hops={"send claimed -> SMTP accepted": {"p50_ms": 20.0, "p99_ms": 90.0}},
        seconds=30.0,
        cpu_seconds=CPU,
    )
    return {
        "started_at": "2026-11-26T08:00:00+0000",
        "command": "python -m bench",
        "machine": {
            "nproc": 2,
            "cpu_model": "AMD EPYC",
            "memory_gib": 23.5,
            "load_average_at_start": [0.5, 0.7, 0.9],
            "python": "3.11.7",
            "platform": "Linux-x86_64",
            "temporal_cli": "temporal version 1.9.1 (Server 1.32.0, UI 2.54.1)",
            "packages": {"temporalio": "1.35.0", "uvicorn": "0.54.0", "asyncpg": "0.32.0"},
            "busy_cores_before_start": 0.1,
            "postgres": "18.6",
        },
        "config": {"durable": True},
        "ingest": ingest.as_dict(),
        "ceilings": ceilings.as_dict(),
        "bare": bare.as_dict(),
        "engine": engine.as_dict(),
        "reaction": reaction.as_dict(),
        "scale": ScaleResult(
            sizes=[p.parked for p in scale], calls=50, points=scale, cpu_seconds=CPU, seconds=60
        ).as_dict(),
        "pg": PgResult(
            sizes=[p.customers for p in pg],
            calls=50,
            events_per_customer=10,
            points=pg,
            cpu_seconds=CPU,
            seconds=60,
        ).as_dict(),
    }
