"""The long-running roles: the worker (with the dispatcher) and the API.

``journeyman worker`` and ``journeyman api`` run one each against external services;
``journeyman up`` runs both in one process over the embedded stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import uvicorn
from temporalio.client import Client

from journeyman.channels import SmtpProvider
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.search_attributes import ALL as SEARCH_ATTRIBUTES
from journeyman.workflows.sweep import SweepActivities, ensure_sweep_schedule, sweep_now
from journeyman.workflows.worker import build_worker

from .channel_providers import channel_providers
from .config import ENVIRONMENT, ConfigError, Settings
from .credentials import Credentials
from .customers.settings import load_customer_settings
from .customers.sweep_segments import load_segments
from .dispatcher import Dispatcher
from .embedded.temporal import ensure_search_attributes
from .link_settings import link_config
from .scheduling import Scheduler
from .storage import connect, create_pool, migrate
from .temporal_client import TemporalSecurity, connect_temporal, metrics_runtime
from .tracking.consent import groups_from

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Endpoints:
    """Where the shared services are, once resolved (embedded or external)."""

    database_url: str
    temporal_address: str
    smtp_host: str | None
    smtp_port: int
    # TLS and API key for an external cluster; the embedded dev server needs neither.
    temporal_security: TemporalSecurity = field(default_factory=TemporalSecurity)


async def prepare_database(url: str) -> None:
    """Apply pending schema migrations (safe to run from several processes at once)."""
    conn = await connect(url)
    try:
        applied = await migrate(conn)
    finally:
        await conn.close()
    for name in applied:
        log.info("applied migration %s", name)


def email_provider(settings: Settings, endpoints: Endpoints) -> SmtpProvider:
    if endpoints.smtp_host is None:
        raise ConfigError(f"{ENVIRONMENT['smtp_host']} is not set: the worker sends email")
    return SmtpProvider(
        host=endpoints.smtp_host,
        port=endpoints.smtp_port,
        security=settings.smtp_security,
        username=settings.smtp_username,
        password=settings.smtp_password.get_secret_value() if settings.smtp_password else None,
    )


async def run_worker(
    settings: Settings,
    endpoints: Endpoints,
    stop: asyncio.Event,
    credentials: Credentials | None = None,
) -> None:
    """The journey worker, the outbox dispatcher and the entry scheduler, until ``stop``.

    Also keeps the customer sweep's Temporal Schedule in line with ``customers.yaml``.
    """
    # A broken customers.yaml stops the worker at once, naming the file and the field.
    customer_settings = load_customer_settings(settings.journeys_dir)
    groups = groups_from(customer_settings.subscription_groups)
    links = link_config(settings, credentials, groups=groups)
    runtime = (
        metrics_runtime(settings.worker_metrics_port)
        if settings.worker_metrics_port is not None
        else None
    )
    client = await connect_temporal(
        endpoints.temporal_address,
        namespace=settings.temporal_namespace,
        runtime=runtime,
        security=endpoints.temporal_security,
    )
    await ensure_search_attributes(client, settings.temporal_namespace, SEARCH_ATTRIBUTES)
    pool = await create_pool(endpoints.database_url, max_size=20)
    try:
        async with channel_providers(
            settings, smtp=email_provider(settings, endpoints), pool=pool
        ) as providers:
            activities = JourneyActivities(
                pool,
                email=providers.email,
                from_address=settings.smtp_from,
                providers=providers,
                links=links,
                groups=groups,
            )
            worker = build_worker(
                client,
                task_queue=settings.task_queue,
                activities=activities,
                sweep=SweepActivities(pool, settings=customer_settings),
            )
            await ensure_sweep_schedule(
                client, task_queue=settings.task_queue, interval=customer_settings.sweep.interval
            )
            if (await load_segments(pool))[1]:
                # Segments deployed while no worker ran (`journeyman up` deploys first): fill
                # them now rather than at the first interval.
                await sweep_now(client, task_queue=settings.task_queue)
            dispatcher = Dispatcher(endpoints.database_url, client, task_queue=settings.task_queue)
            scheduler = Scheduler(pool)
            async with (
                _background(dispatcher.run()),
                _background(scheduler.run_forever()),
                worker,
            ):
                await stop.wait()
    finally:
        await pool.close()


async def run_api(
    settings: Settings, endpoints: Endpoints, credentials: Credentials, stop: asyncio.Event
) -> None:
    """The HTTP API on ``settings.api_host:api_port`` until ``stop`` is set."""
    # Imported here, not at the top: a worker never serves HTTP, and the web framework and
    # the routes are a large share of start-up, which is how long a crashed worker is away.
    from .api import Services, create_app
    from .api.routes.provider_webhooks import ProviderWebhookKeys, install_provider_webhooks

    customer_settings = load_customer_settings(settings.journeys_dir)
    groups = groups_from(customer_settings.subscription_groups)
    links = link_config(settings, credentials, groups=groups)  # bad settings stop start-up
    pool = await create_pool(endpoints.database_url, max_size=10)
    client: Client | None = None
    try:
        client = await connect_temporal(
            endpoints.temporal_address,
            namespace=settings.temporal_namespace,
            security=endpoints.temporal_security,
        )
    except Exception as exc:  # ingest keeps working while Temporal is away
        log.warning("API started without Temporal (%s); /healthz reports it", type(exc).__name__)
    services = Services(
        pool=pool,
        database_url=endpoints.database_url,
        write_key=credentials.write_key,
        admin_token=credentials.admin_token,
        max_body_bytes=settings.max_body_bytes,
        ingest_max_in_flight=settings.ingest_max_in_flight,
        ingest_queue_seconds=settings.ingest_queue_seconds,
        temporal=client,
        temporal_address=endpoints.temporal_address,
        temporal_namespace=settings.temporal_namespace,
        temporal_security=endpoints.temporal_security,
        customer_settings=customer_settings,
        task_queue=settings.task_queue,
    )
    app = create_app(services)
    if links is not None:
        app.state.tracking = links
    try:
        install_provider_webhooks(
            app,
            ProviderWebhookKeys(
                sendgrid_public_key=settings.sendgrid_webhook_public_key,
                twilio_auth_token=settings.twilio_auth_token,
                public_url=links.public_url if links is not None else settings.public_url,
            ),
        )
    except ValueError as exc:  # a key that cannot be used: refuse to start, saying which
        await pool.close()
        raise ConfigError(f"provider webhooks: {exc}") from None
    server = _Server(
        uvicorn.Config(
            app,
            host=settings.api_host,
            port=settings.api_port,
            log_level="warning",
            access_log=False,
        )
    )
    # What start-up built (the app, its routes and models, the imported modules) lives as long
    # as the process: frozen, the collector's full passes stop walking it on every request
    # burst.
    gc.freeze()
    try:
        serving = asyncio.create_task(server.serve())
        stopping = asyncio.create_task(stop.wait())
        await asyncio.wait({serving, stopping}, return_when=asyncio.FIRST_COMPLETED)
        server.should_exit = True
        await serving
        stopping.cancel()
        if not server.started:
            raise RuntimeError(
                f"the API could not listen on {settings.api_host}:{settings.api_port}"
            )
    finally:
        await pool.close()


class _Server(uvicorn.Server):
    """uvicorn without its own signal handling: the process's stop event decides."""

    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def _background(coro: object) -> AsyncIterator[asyncio.Task[None]]:
    task: asyncio.Task[None] = asyncio.create_task(coro)  # type: ignore[arg-type]
    try:
        yield task
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
