"""``GET /healthz``: each dependency's state, 200 when all are up, 503 otherwise."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from typing import Any, Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from ..auth import ServicesDep
from ..services import Services

router = APIRouter(tags=["health"])


PROBE_SECONDS = 2.0


async def _check(probe: Awaitable[Any]) -> str:
    try:
        await asyncio.wait_for(probe, PROBE_SECONDS)
    except Exception as exc:
        return f"down: {type(exc).__name__}"
    return "ok"


async def _temporal_health(services: Services) -> None:
    client = await services.temporal_client()
    assert client is not None
    await client.service_client.check_health()


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    # Each dependency: "ok", "not configured", or "down: <error type>".
    dependencies: dict[str, str]


@router.get(
    "/healthz",
    response_model=HealthPublic,
    responses={503: {"model": HealthPublic, "description": "a dependency is down"}},
)
async def healthz(services: ServicesDep) -> JSONResponse:
    checks = {"postgres": await _check(services.pool.fetchval("SELECT 1"))}
    if services.temporal is None and services.temporal_address is None:
        checks["temporal"] = "not configured"
    else:
        checks["temporal"] = await _check(_temporal_health(services))
    healthy = all(v in ("ok", "not configured") for v in checks.values())
    body = {"status": "ok" if healthy else "degraded", "dependencies": checks}
    return JSONResponse(body, status_code=200 if healthy else 503)
