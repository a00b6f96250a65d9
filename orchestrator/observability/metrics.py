"""Prometheus metrics: counters kept by this process, and gauges read from Postgres per scrape.

``ProcessMetrics`` holds one registry per API process: ingest messages and requests, answers
under backpressure, request latency, plus the client library's process and Python
collectors. ``read_database`` takes a ``DatabaseSnapshot`` with a few cheap queries, each
bounded by a statement timeout, and never raises: a database that is away or slow gives a
snapshot whose ``error`` is set, which renders as ``journeyman_scrape_error 1``.
``render`` writes both in the Prometheus text exposition format.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import asyncpg
from prometheus_client import (
    CollectorRegistry,
    Counter,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

log = logging.getLogger(__name__)

# Each query may take this long (Postgres statement_timeout) ...
STATEMENT_TIMEOUT_MS = 1000
# ... and the whole database part, connection included, this long: well under Prometheus's
# default scrape timeout of 10 s, so a slow database still gives a scrape, with the error set.
DATABASE_SECONDS = 4.0

# Rows the dispatcher gave up on (its MAX_ATTEMPTS); kept here so that reading the metrics
# does not import the dispatcher and with it the Temporal client.
DEAD_LETTER_ATTEMPTS = 10

# Ingest requests are usually a few milliseconds; the tail up to the backpressure wait
# (1 s by default) and beyond is what an operator looks for.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

# What a batch's accepted or duplicate messages are labelled with when they were of several
# types and only some were duplicates: ingest counts the two outcomes per request, not per type.
MIXED_TYPES = "mixed"
# Label values for a message's type; anything else a client sends is "unknown", so that a
# client cannot grow the number of series.
MESSAGE_TYPES = frozenset(("track", "identify", "page", "screen", "group", "alias"))


class ProcessMetrics:
    """This process's counters, in a registry of their own (one per app, so tests can count)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        self.messages = Counter(
            "journeyman_ingest_messages",
            "Valid ingest messages by Segment type and outcome (accepted: new; duplicate: "
            "messageId already stored)",
            ["type", "outcome"],
            registry=self.registry,
        )
        self.rejected = Counter(
            "journeyman_ingest_messages_rejected",
            "Ingest messages rejected alone, by Segment type and reason (invalid, too_large)",
            ["type", "reason"],
            registry=self.registry,
        )
        self.requests = Counter(
            "journeyman_ingest_requests",
            "Ingest requests by HTTP status code",
            ["status"],
            registry=self.registry,
        )
        self.backpressure = Counter(
            "journeyman_ingest_backpressure",
            "Ingest requests answered 429 or 503 with Retry-After, by reason",
            ["reason"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "journeyman_ingest_request_duration_seconds",
            "Time to answer an ingest request, waiting for a turn included",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )

    def count_stored(self, types: Iterable[str], *, accepted: int, duplicates: int) -> None:
        """Count the messages one request stored; ``types`` are its valid messages' types."""
        # Counted per type first: one increment per type, not per message (each takes a lock).
        kinds = collections.Counter(types)
        if not duplicates or not accepted:
            # One outcome for all: every message's type is known.
            outcome = "accepted" if accepted else "duplicate"
            for kind, n in kinds.items():
                self.messages.labels(kind, outcome).inc(n)
        elif len(kinds) == 1:
            (kind,) = kinds
            self.messages.labels(kind, "accepted").inc(accepted)
            self.messages.labels(kind, "duplicate").inc(duplicates)
        else:
            self.messages.labels(MIXED_TYPES, "accepted").inc(accepted)
            self.messages.labels(MIXED_TYPES, "duplicate").inc(duplicates)

    def count_rejected(self, kind: str, reason: str) -> None:
        self.rejected.labels(kind, reason).inc()

    def count_request(self, status: int, seconds: float, *, backpressure: str | None) -> None:
        """Count one answered ingest request; ``backpressure`` is the reason of a 429/503."""
        self.requests.labels(str(status)).inc()
        self.latency.observe(seconds)
        if backpressure is not None:
            self.backpressure.labels(backpressure).inc()


@dataclass
class DatabaseSnapshot:
    """What one scrape read from Postgres; ``error`` set means nothing else was read."""

    error: bool = False
    seconds: float = 0.0
    outbox_pending: int = 0
    outbox_dead_letters: int = 0
    outbox_oldest_pending_seconds: float = 0.0
    outbox_delivered: int = 0
    # (channel, state, count)
    deliveries: list[tuple[str, str, int]] = field(default_factory=list)
    # (journey_id, version, stage, count); stage "" while a run is entering
    runs: list[tuple[str, str, str, int]] = field(default_factory=list)
    # (segment_id, count)
    segment_members: list[tuple[str, int]] = field(default_factory=list)


async def read_database(pool: asyncpg.Pool) -> DatabaseSnapshot:
    """Read the database gauges now; an error or timeout gives a snapshot with ``error``."""
    started = time.perf_counter()
    try:
        async with asyncio.timeout(DATABASE_SECONDS):
            snapshot = await _read(pool)
    except Exception as exc:
        # The type only: connection errors can carry the URL, and with it a password.
        log.warning("metrics: database read failed (%s)", type(exc).__name__)
        snapshot = DatabaseSnapshot(error=True)
    snapshot.seconds = time.perf_counter() - started
    return snapshot


async def _read(pool: asyncpg.Pool) -> DatabaseSnapshot:
    async with pool.acquire(timeout=DATABASE_SECONDS) as conn, conn.transaction(readonly=True):
        await conn.execute(f"SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}")
        # The partial index outbox_pending keeps these two cheap however long the outbox.
        pending = await conn.fetchrow(
            "SELECT count(*) AS pending, count(*) FILTER (WHERE attempts >= $1) AS dead"
            " FROM outbox WHERE delivered_at IS NULL",
            DEAD_LETTER_ATTEMPTS,
        )
        oldest = await conn.fetchval(
            "SELECT extract(epoch FROM now() - created_at)::float8 FROM outbox"
            " WHERE delivered_at IS NULL ORDER BY id LIMIT 1"
        )
        delivered = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE delivered_at IS NOT NULL"
        )
        deliveries = await conn.fetch(
            "SELECT channel, status, count(*) AS n FROM deliveries GROUP BY channel, status"
        )
        runs = await conn.fetch(
            "SELECT journey_id, version, coalesce(stage, '') AS stage, count(*) AS n"
            " FROM journey_runs WHERE status IN ('entering', 'active')"
            " GROUP BY journey_id, version, coalesce(stage, '')"
        )
        members = await conn.fetch(
            "SELECT segment_id, count(*) AS n FROM segment_memberships GROUP BY segment_id"
        )
    return DatabaseSnapshot(
        outbox_pending=int(pending["pending"]),
        outbox_dead_letters=int(pending["dead"]),
        outbox_oldest_pending_seconds=max(float(oldest or 0.0), 0.0),
        outbox_delivered=int(delivered),
        deliveries=[(r["channel"], r["status"], int(r["n"])) for r in deliveries],
        runs=[(r["journey_id"], r["version"], r["stage"], int(r["n"])) for r in runs],
        segment_members=[(r["segment_id"], int(r["n"])) for r in members],
    )


class DatabaseCollector(Collector):
    """Renders one ``DatabaseSnapshot``: the snapshot is read before, in the async route."""

    def __init__(self, snapshot: DatabaseSnapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        s = self.snapshot
        yield GaugeMetricFamily(
            "journeyman_scrape_error",
            "1 when the database could not be read for this scrape (its gauges are left out)",
            value=1 if s.error else 0,
        )
        yield GaugeMetricFamily(
            "journeyman_scrape_database_seconds",
            "Time this scrape spent reading the database",
            value=s.seconds,
        )
        if s.error:
            return
        yield GaugeMetricFamily(
            "journeyman_outbox_pending",
            "Outbox rows not yet delivered to Temporal (dead letters included)",
            value=s.outbox_pending,
        )
        yield GaugeMetricFamily(
            "journeyman_outbox_dead_letters",
            "Outbox rows the dispatcher gave up on after its attempts",
            value=s.outbox_dead_letters,
        )
        yield GaugeMetricFamily(
            "journeyman_outbox_oldest_pending_age_seconds",
            "Age of the oldest undelivered outbox row (0 when none)",
            value=s.outbox_oldest_pending_seconds,
        )
        yield CounterMetricFamily(
            "journeyman_outbox_delivered",
            "Outbox rows delivered to Temporal as signals (rows deleted by erasure leave it)",
            value=s.outbox_delivered,
        )
        deliveries = GaugeMetricFamily(
            "journeyman_deliveries",
            "Sends in the delivery ledger, by channel and current state",
            labels=["channel", "state"],
        )
        for channel, state, n in s.deliveries:
            deliveries.add_metric([channel, state], n)
        yield deliveries
        runs = GaugeMetricFamily(
            "journeyman_journey_runs",
            "Journey runs entering or active now, by journey, version and stage",
            labels=["journey_id", "version", "stage"],
        )
        for journey_id, version, stage, n in s.runs:
            runs.add_metric([journey_id, version, stage], n)
        yield runs
        members = GaugeMetricFamily(
            "journeyman_segment_members",
            "Customers in each segment now",
            labels=["segment_id"],
        )
        for segment_id, n in s.segment_members:
            members.add_metric([segment_id], n)
        yield members


class _Chained(Collector):
    """Another registry's metrics, so that one scrape renders both."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> Iterator[Metric]:
        yield from self.registry.collect()


def render(process: ProcessMetrics, snapshot: DatabaseSnapshot) -> bytes:
    """The Prometheus text exposition of this process's counters and one database snapshot."""
    # A registry per scrape: concurrent scrapes never see each other's snapshot.
    scrape = CollectorRegistry(auto_describe=False)
    scrape.register(_Chained(process.registry))
    scrape.register(DatabaseCollector(snapshot))
    return generate_latest(scrape)


def type_label(raw: object) -> str:
    """A raw message's Segment type as a label: one of the six, else ``unknown``."""
    kind = raw.get("type") if isinstance(raw, dict) else None
    return kind if kind in MESSAGE_TYPES else "unknown"
