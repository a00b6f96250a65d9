"""``GET /metrics``: the Prometheus text exposition of ingest counters and database gauges.

Served without the admin token, as Prometheus scrapes anonymously: bind the API to a private
address or firewall ``/metrics`` (docs/metrics.md). The counters hold nothing about a
customer; the gauges name journeys, stages, channels and segments only.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import CONTENT_TYPE_LATEST

from journeyman.orchestrator.observability import ProcessMetrics, read_database, render

from ..auth import ServicesDep

router = APIRouter(tags=["health"])


def process_metrics(request: Request) -> ProcessMetrics:
    """The app's counters, made on first use (one registry per app)."""
    state = request.app.state
    metrics: ProcessMetrics | None = getattr(state, "metrics", None)
    if metrics is None:
        metrics = state.metrics = ProcessMetrics()
    return metrics


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus text"}},
)
async def metrics(request: Request, services: ServicesDep) -> Response:
    """Prometheus metrics; a database that cannot be read sets ``journeyman_scrape_error``."""
    # Collectors are synchronous: the database is read here, then rendered.
    snapshot = await read_database(services.pool)
    body = render(process_metrics(request), snapshot)
    return Response(body, media_type=CONTENT_TYPE_LATEST)
