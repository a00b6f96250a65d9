"""What the HTTP layer needs from the rest of the engine, built once per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg
from temporalio.client import Client

from journeyman.orchestrator.customers.settings import CustomerDataSettings
from journeyman.orchestrator.customers.sweep_segments import load_segments
from journeyman.orchestrator.ingest import TriggerIndex
from journeyman.orchestrator.storage import active_plans, connect
from journeyman.orchestrator.storage.journeys import DEPLOY_CHANNEL
from journeyman.orchestrator.temporal_client import TemporalSecurity, connect_temporal

from .backpressure import InFlightLimiter

log = logging.getLogger(__name__)


@dataclass
class Services:
    pool: asyncpg.Pool
    database_url: str
    write_key: str
    admin_token: str
    max_body_bytes: int
    temporal: Client | None = None
    # Where to (re)connect when Temporal was away at start-up; None: not configured.
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    temporal_security: TemporalSecurity = field(default_factory=TemporalSecurity)
    task_queue: str = "journeyman"  # the worker's, to reach its sweep Schedule
    index: TriggerIndex = field(default_factory=TriggerIndex)
    # Which events carry orders and satisfaction, and the class thresholds (customers.yaml).
    customer_settings: CustomerDataSettings = field(default_factory=CustomerDataSettings)
    # Backpressure on ingest: requests at work at once, and how long the next ones may wait
    # for a turn (and then for a database connection) before a 503 with Retry-After.
    ingest_max_in_flight: int = 64
    ingest_queue_seconds: float = 1.0
    ingest_limiter: InFlightLimiter = field(init=False)

    def __post_init__(self) -> None:
        self.ingest_limiter = InFlightLimiter(
            self.ingest_max_in_flight, wait_seconds=self.ingest_queue_seconds
        )

    async def temporal_client(self) -> Client | None:
        """The Temporal client, connecting now if start-up could not (raises while it is down)."""
        if self.temporal is None and self.temporal_address is not None:
            self.temporal = await connect_temporal(
                self.temporal_address,
                namespace=self.temporal_namespace,
                security=self.temporal_security,
            )
        return self.temporal

    async def refresh_index(self) -> None:
        """Rebuild the trigger index from the deployed journeys and the filled segments."""
        active, others = await active_plans(self.pool)
        # Only filled segments are kept live: until the sweep has filled a new one, an event
        # must not read "was not a member" as "just entered".
        live, _ = await load_segments(self.pool)
        self.index = TriggerIndex.build(active, others, live)

    async def follow_deploys(self) -> None:
        """Keep the index current when another process deploys (LISTEN, with a slow re-read)."""
        changed = asyncio.Event()
        while True:
            try:
                conn = await connect(self.database_url)
                try:
                    await conn.add_listener(DEPLOY_CHANNEL, lambda *_: changed.set())
                    while True:
                        await self.refresh_index()
                        changed.clear()
                        with contextlib.suppress(TimeoutError):
                            await asyncio.wait_for(changed.wait(), 30)
                finally:
                    with contextlib.suppress(Exception):
                        await asyncio.shield(conn.close(timeout=2))
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # survive database restarts
                log.warning("deploy listener: %s; retrying", type(exc).__name__)
                await asyncio.sleep(1)
