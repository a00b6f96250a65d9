"""The whole API as deployed: real Postgres, a Temporal dev server, links and provider webhooks
configured, shipped journeys and segments deployed, and a customer with events.

One stack per test module (building it deploys a dozen files); tests that change state do so
on purpose and never rely on another test's leftovers. The API is imported when a test asks
for the stack, so the tests here that need no HTTP layer run whatever state it is in.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from pydantic import SecretStr

from journeyman.orchestrator.embedded import EmbeddedPostgres, TemporalDevServer
from journeyman.orchestrator.storage import connect, create_pool, migrate

if TYPE_CHECKING:
    from fastapi import FastAPI

    from journeyman.orchestrator.api import Services
    from journeyman.orchestrator.tracking import TrackingConfig

WRITE_KEY = "wk_security_test"
ADMIN_TOKEN = "adm_security_test"
LINK_SECRET = "security-test-link-secret-3c9e1f7a5b2d"
PUBLIC_URL = "https://journeys.example.test"
TWILIO_TOKEN = "twilio_security_test_token"

REPO = Path(__file__).resolve().parents[2]
JOURNEYS = REPO / "journeys"
# The customer the seed creates: ids in requests can name someone who exists.
CUSTOMER = "sec-customer-1"


def basic(user: str, password: str = "") -> dict[str, str]:
    """An HTTP Basic header, as Segment SDKs send the write key."""
    raw = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {raw}"}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass(repr=False)
class Stack:
    app: FastAPI
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    services: Services
    tracking: TrackingConfig
    journey_ids: list[str]
    segment_ids: list[str]

    def __repr__(self) -> str:
        # Short: Hypothesis prints the arguments of a failing example, this one included.
        return f"Stack(journeys={self.journey_ids}, segments={self.segment_ids})"

    @property
    def admin(self) -> dict[str, str]:
        return bearer(ADMIN_TOKEN)

    @property
    def writer(self) -> dict[str, str]:
        return basic(WRITE_KEY)


def shipped_journeys() -> list[Path]:
    return sorted(p for p in JOURNEYS.glob("*.yaml") if p.name != "customers.yaml")


def shipped_segments() -> list[Path]:
    return sorted((JOURNEYS / "segments").glob("*.yaml"))


async def _seed(http: httpx.AsyncClient) -> tuple[list[str], list[str]]:
    """Deploy the shipped files and record one customer's first steps, through the API."""
    admin = bearer(ADMIN_TOKEN)
    journey_ids, segment_ids = [], []
    for path in shipped_journeys():
        response = await http.post("/api/journeys", content=path.read_bytes(), headers=admin)
        assert response.status_code == 201, (path.name, response.text)
        journey_ids.append(response.json()["id"])
    for path in shipped_segments():
        response = await http.post("/api/segments", content=path.read_bytes(), headers=admin)
        assert response.status_code == 201, (path.name, response.text)
        segment_ids.append(response.json()["id"])
    writer = basic(WRITE_KEY)
    for body in (
        {"type": "identify", "userId": CUSTOMER, "traits": {"email": "c1@example.test"}},
        {"type": "track", "userId": CUSTOMER, "event": "Signed Up"},
        {"type": "track", "userId": CUSTOMER, "event": "Product Viewed"},
    ):
        response = await http.post(f"/v1/{body['type']}", json=body, headers=writer)
        assert response.status_code == 200, response.text
    return journey_ids, segment_ids


def _sendgrid_public_key() -> str:
    """A fresh P-256 key's public half, base64 DER as SendGrid shows it; nothing signs with it."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    der = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(der).decode()


@pytest.fixture(scope="module")
async def stack(
    pg_server: EmbeddedPostgres, temporal_dev_server: TemporalDevServer
) -> AsyncIterator[Stack]:
    from journeyman.orchestrator.api import Services, create_app
    from journeyman.orchestrator.api.routes.provider_webhooks import (
        ProviderWebhookKeys,
        install_provider_webhooks,
    )
    from journeyman.orchestrator.api.routes.tracking import install_tracking

    database_url = await pg_server.create_database(f"security_{uuid.uuid4().hex}")
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=64 * 1024,
        temporal_address=temporal_dev_server.address,
    )
    await services.refresh_index()
    app = create_app(services, follow_deploys=False)
    tracking = install_tracking(app, secret=LINK_SECRET, public_url=PUBLIC_URL)
    install_provider_webhooks(
        app,
        ProviderWebhookKeys(
            sendgrid_public_key=_sendgrid_public_key(),
            twilio_auth_token=SecretStr(TWILIO_TOKEN),
            public_url=PUBLIC_URL,
        ),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeyman.test") as http:
        journey_ids, segment_ids = await _seed(http)
        yield Stack(app, http, pool, services, tracking, journey_ids, segment_ids)
    await pool.close()
