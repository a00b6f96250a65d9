"""The embedded stack: whatever is not configured externally is started here, in the data dir.

Postgres keeps its cluster in ``DATA_DIR/postgres``, Temporal its database file in
``DATA_DIR/temporal.db`` (journeys survive a restart), the SMTP sink writes each email to
``DATA_DIR/mail/`` as an ``.eml`` file.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator

from journeyman.channels import SmtpSink

from .config import Settings
from .embedded.postgres import EmbeddedPostgres
from .embedded.temporal import TemporalDevServer
from .roles import Endpoints
from .temporal_client import TemporalSecurity, temporal_security

log = logging.getLogger(__name__)


@contextlib.asynccontextmanager
async def embedded_stack(settings: Settings, *, say: bool = True) -> AsyncIterator[Endpoints]:
    """Start the missing services, yield where everything is, stop what was started."""
    # Read first, so that a missing certificate file stops start-up before anything runs; the
    # TLS settings are for an external cluster, the embedded dev server listens in plaintext.
    security = (
        temporal_security(settings) if settings.temporal_address is not None else TemporalSecurity()
    )
    data_dir = settings.data_dir.resolve()
    data_dir.mkdir(parents=True, exist_ok=True)
    async with contextlib.AsyncExitStack() as stack:
        if settings.database_url is not None:
            database_url = settings.database_url.get_secret_value()
        else:
            postgres = EmbeddedPostgres(data_dir, port=settings.embedded_postgres_port)
            await postgres.start()
            stack.push_async_callback(postgres.stop)
            database_url = postgres.url
            _say(say, f"Postgres         {postgres.url}  (data in {data_dir / 'postgres'})")
        if settings.temporal_address is not None:
            temporal_address = settings.temporal_address
        else:
            temporal = TemporalDevServer(
                data_dir,
                port=settings.embedded_temporal_port,
                ui_port=settings.embedded_temporal_ui_port,
                namespace=settings.temporal_namespace,
            )
            await temporal.start()
            stack.push_async_callback(temporal.stop)
            temporal_address = temporal.address
            _say(say, f"Temporal         {temporal.address}  (UI {temporal.ui_url})")
        smtp_host, smtp_port = settings.smtp_host, settings.smtp_port
        if smtp_host is None:
            sink = SmtpSink(port=settings.embedded_smtp_port, mailbox_dir=data_dir / "mail")
            smtp_port = sink.start()
            stack.callback(sink.stop)
            smtp_host = "127.0.0.1"
            _say(say, f"SMTP sink        {smtp_host}:{smtp_port}  (emails in {data_dir / 'mail'})")
        yield Endpoints(
            database_url=database_url,
            temporal_address=temporal_address,
            smtp_host=smtp_host,
            smtp_port=smtp_port,
            temporal_security=security,
        )


def _say(enabled: bool, line: str) -> None:
    if enabled:
        print(line, flush=True)
