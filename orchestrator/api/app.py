"""The FastAPI application: ingest, administration and health, over shared services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

import journeyman

from .errors import (
    ApiError,
    api_error_handler,
    http_error_handler,
    validation_as_400,
    validation_handler,
)
from .routes import (
    browser,
    customers,
    dashboard,
    emotions,
    experiment_reports,
    health,
    inapp,
    ingest,
    journey_control,
    journey_reports,
    journeys,
    kpis,
    metrics,
    provider_webhooks,
    segments,
    sources,
    templates,
    tracking,
)
from .services import Services


def create_app(services: Services, *, follow_deploys: bool = True) -> FastAPI:
    """An app over ready services; the caller owns the pool and the Temporal client."""

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await services.refresh_index()
        follower = asyncio.create_task(services.follow_deploys()) if follow_deploys else None
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await follower

    app = FastAPI(
        title="Journeyman",
        version=journeyman.__version__,
        summary="Customer journeys as code: ingest, journeys and per-stage conversion.",
        lifespan=lifespan,
    )
    app.state.services = services
    generate = app.openapi

    def openapi() -> dict[str, Any]:
        """FastAPI's document, with validation failures listed as the 400s they answer."""
        if app.openapi_schema is None:
            validation_as_400(generate())
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_exception_handler(ApiError, api_error_handler)
    app.add_exception_handler(RequestValidationError, validation_handler)
    app.add_exception_handler(StarletteHTTPException, http_error_handler)
    app.add_middleware(browser.IngestCors)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(ingest.router)
    app.include_router(browser.router)
    app.include_router(journeys.router)
    app.include_router(journey_control.router)
    app.include_router(kpis.router)
    app.include_router(journey_reports.router)
    app.include_router(experiment_reports.router)
    app.include_router(emotions.router)
    app.include_router(dashboard.router)
    app.include_router(sources.router)
    app.include_router(segments.router)
    app.include_router(customers.router)
    app.include_router(templates.router)
    app.include_router(inapp.browser_router)
    app.include_router(inapp.admin_router)
    app.include_router(tracking.router)  # served once install_tracking() configures links
    app.include_router(provider_webhooks.router)  # answers once install_provider_webhooks()
    return app
