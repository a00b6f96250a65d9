"""The engine end to end, in the test's process: ingest -> outbox -> dispatcher -> worker.

The API app over a real Postgres (called through ASGI), the dispatcher and a journey worker
on the Temporal dev server, email through a real SMTP server and SMS through the local
Twilio twin. Observability tests drive customers through it and read what came out: the
worker's Prometheus endpoint, the log output, the spans a collector received.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
from temporalio.client import Client
from temporalio.runtime import Runtime

from journeyman.channels import SmtpProvider, SmtpSink, TwilioSms
from journeyman.channels.http import shared_client
from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.dispatcher import Dispatcher
from journeyman.orchestrator.embedded.temporal import ensure_search_attributes
from journeyman.orchestrator.storage import connect, create_pool, migrate
from journeyman.orchestrator.temporal_client import connect_temporal
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.providers import ChannelProviders
from journeyman.workflows.search_attributes import ALL
from journeyman.workflows.worker import build_worker

from ...channels.messaging_servers import TwilioServer

WRITE_KEY = "wk_observed_0123456789"
ADMIN_TOKEN = "adm_observed_0123456789"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "twilio-observed-token-0123456789abcdef"
FROM_NUMBER = "+15005550006"

JOURNEY_ID = "observed-welcome"
WELCOME = f"""
id: {JOURNEY_ID}
name: Observed welcome
entry: {{event: Signed Up}}
stages:
  - name: awareness
    touchpoints:
      - send: {{id: hello-mail, subject: "Welcome {{{{ profile.first_name }}}}", body: "Hello"}}
      - send: {{id: hello-sms, channel: sms, body: "Hi {{{{ profile.first_name }}}}, welcome!"}}
"""


@dataclass
class Pipeline:
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    client: Client
    twilio: TwilioServer
    sink: SmtpSink
    task_queue: str
    dispatcher: Dispatcher

    async def send(self, path: str, body: dict[str, Any]) -> httpx.Response:
        body = {"messageId": str(uuid.uuid4()), **body}
        return await self.http.post(path, json=body, auth=(WRITE_KEY, ""))

    async def sign_up(self, user: str, **traits: Any) -> None:
        """Identify ``user`` with ``traits``, then send the journey's entry event."""
        identified = await self.send("/v1/identify", {"userId": user, "traits": traits})
        assert identified.status_code == 200, identified.text
        tracked = await self.send("/v1/track", {"userId": user, "event": "Signed Up"})
        assert tracked.status_code == 200, tracked.text

    async def finished(self, customers: int, *, seconds: float = 60) -> list[str]:
        """Wait until ``customers`` runs have been started and have finished; their ids."""
        async with asyncio.timeout(seconds):
            while True:
                ids = [
                    r["workflow_id"]
                    for r in await self.pool.fetch(
                        "SELECT DISTINCT workflow_id FROM outbox WHERE delivered_at IS NOT NULL"
                    )
                ]
                if len(ids) >= customers:
                    break
                await asyncio.sleep(0.1)
            for workflow_id in ids:
                await self.client.get_workflow_handle(workflow_id).result()
        return ids


async def _api(database_url: str) -> tuple[httpx.AsyncClient, asyncpg.Pool, Services]:
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=64 * 1024,
    )
    await services.refresh_index()
    app = create_app(services, follow_deploys=False)
    http = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://journeyman.test"
    )
    return http, pool, services


@contextlib.asynccontextmanager
async def running_pipeline(
    database_url: str, temporal_address: str, *, runtime: Runtime | None = None
) -> AsyncIterator[Pipeline]:
    """Everything running, the welcome journey deployed; stopped again on the way out."""
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    http, pool, _ = await _api(database_url)
    # Through the engine's own connect, so that what the process installed (tracing) applies.
    client = await connect_temporal(temporal_address, runtime=runtime)
    await ensure_search_attributes(client, "default", ALL)
    task_queue = f"observed-{uuid.uuid4()}"
    sink = SmtpSink()
    smtp_port = sink.start()
    try:
        async with (
            http,
            TwilioServer(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as twilio,
            shared_client() as shared,
        ):
            deployed = await http.post(
                "/api/journeys",
                content=WELCOME,
                headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
            )
            assert deployed.status_code == 201, deployed.text
            activities = JourneyActivities(
                pool,
                email=SmtpProvider("127.0.0.1", smtp_port, local_hostname="localhost"),
                from_address="Journeys <journeys@shop.example>",
                providers=ChannelProviders(
                    sms=TwilioSms(
                        shared,
                        account_sid=ACCOUNT_SID,
                        auth_token=AUTH_TOKEN,
                        from_number=FROM_NUMBER,
                        base_url=twilio.url,
                    )
                ),
            )
            worker = build_worker(client, task_queue=task_queue, activities=activities)
            dispatcher = Dispatcher(database_url, client, task_queue=task_queue)
            async with worker:
                dispatching = asyncio.create_task(dispatcher.run())
                try:
                    yield Pipeline(http, pool, client, twilio, sink, task_queue, dispatcher)
                finally:
                    dispatching.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await dispatching
    finally:
        sink.stop()
        await pool.close()
