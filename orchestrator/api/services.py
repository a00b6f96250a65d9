"""What the HTTP layer needs from the rest of the engine, built once per process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg
from temporalio.client import Client

from journeyman.orchestrator.ingest import TriggerIndex
from journeyman.orchestrator.storage import active_plans, connect
from journeyman.orchestrator.storage.journeys import DEPLOY_CHANNEL
from journeyman.orchestrator.temporal_client import connect_temporal

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
    index: TriggerIndex = field(default_factory=TriggerIndex)

    async def temporal_client(self) -> Client | None:
        """The Temporal client, connecting now if start-up could not (raises while it is down)."""
        if self.temporal is None and self.temporal_address is not None:
            self.temporal = await connect_temporal(
                self.temporal_address, namespace=self.temporal_namespace
            )
        return self.temporal

    async def refresh_index(self) -> None:
        """Rebuild the trigger index from the deployed journeys."""
        active, others = await active_plans(self.pool)
        self.index = TriggerIndex.build(active, others)

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
