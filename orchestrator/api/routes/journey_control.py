"""Journey control: pause, resume, archive, API entries, diffs and explicit migrations."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Request
from pydantic import BaseModel, Field

from journeyman.orchestrator import versions
from journeyman.orchestrator.ingest import admit
from journeyman.orchestrator.language import JourneyError, compile_source
from journeyman.orchestrator.language.diff import diff_plans
from journeyman.orchestrator.storage import list_journeys, load_plan
from journeyman.orchestrator.storage.journeys import JourneySummary, set_status
from journeyman.workflows.plan import Plan

from ..auth import AdminDep, ServicesDep
from ..errors import ApiError, NulFree, NulGuard, error_responses
from .journeys import MAX_SOURCE_BYTES, YAML_BODY

router = APIRouter(
    prefix="/api/journeys",
    tags=["journeys"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

_STATUS_RESPONSES = error_responses(
    404, 409, s404="no such journey", s409="archived journeys cannot be paused or resumed"
)


class StatusPublic(BaseModel):
    id: str
    status: Literal["active", "paused", "archived"]


async def _summary(services: Any, journey_id: str) -> JourneySummary:
    summaries = {j.journey_id: j for j in await list_journeys(services.pool)}
    summary = summaries.get(journey_id)
    if summary is None:
        raise ApiError(404, "not_found", f"no journey {journey_id!r} is deployed")
    return summary


async def _set(
    services: Any, journey_id: str, status: Literal["active", "paused", "archived"]
) -> StatusPublic:
    summary = await _summary(services, journey_id)
    if summary.status == "archived" and status != "archived":
        raise ApiError(409, "conflict", f"journey {journey_id!r} is archived; deploy it anew")
    async with services.pool.acquire() as conn:
        await set_status(conn, journey_id, status)
    await services.refresh_index()
    return StatusPublic(id=journey_id, status=status)


@router.post("/{journey_id}/pause", response_model=StatusPublic, responses=_STATUS_RESPONSES)
async def pause(journey_id: str, services: ServicesDep) -> StatusPublic:
    """Admit no one; customers inside hold at their next send until resumed."""
    return await _set(services, journey_id, "paused")


@router.post("/{journey_id}/resume", response_model=StatusPublic, responses=_STATUS_RESPONSES)
async def resume(journey_id: str, services: ServicesDep) -> StatusPublic:
    return await _set(services, journey_id, "active")


@router.post("/{journey_id}/archive", response_model=StatusPublic, responses=_STATUS_RESPONSES)
async def archive(journey_id: str, services: ServicesDep) -> StatusPublic:
    """Admit no one, for good; customers inside leave at their next send."""
    return await _set(services, journey_id, "archived")


class EntryRequest(BaseModel):
    customer_id: Annotated[str, Field(min_length=1, max_length=160), NulFree]
    properties: Annotated[dict[str, Any], NulFree] = Field(default_factory=dict)
    message_id: Annotated[str | None, Field(min_length=1, max_length=160), NulFree] = None


class EntryPublic(BaseModel):
    entered: bool
    workflow_id: str | None
    reason: str | None


@router.post(
    "/{journey_id}/entries",
    response_model=EntryPublic,
    status_code=202,
    responses=error_responses(
        400,
        404,
        409,
        s404="no such journey",
        s409="the journey is not active, or takes no API entries",
    ),
)
async def enter(journey_id: str, body: EntryRequest, services: ServicesDep) -> EntryPublic:
    """Enter one customer by API call (journeys with ``entry: {api: true}``)."""
    summary = await _summary(services, journey_id)
    if summary.status != "active":
        raise ApiError(409, "conflict", f"journey {journey_id!r} is {summary.status}")
    plan = await load_plan(services.pool, journey_id=journey_id, version=summary.active_version)
    if not plan.entry.api:
        raise ApiError(409, "conflict", f"journey {journey_id!r} does not accept API entries")
    admission = await admit(
        services.pool,
        plan=plan,
        customer_id=body.customer_id,
        properties=body.properties,
        message_id=body.message_id or f"api-{uuid.uuid4()}",
    )
    return EntryPublic(**asdict(admission))


@router.post(
    "/diff",
    responses=error_responses(400, 413, s400="not UTF-8, or the journey does not compile"),
    openapi_extra=YAML_BODY,
)
async def diff(request: Request, services: ServicesDep) -> dict[str, Any]:
    """What deploying the journey in the body (YAML) would change, and who is affected now."""
    raw = await request.body()
    if len(raw) > MAX_SOURCE_BYTES:
        raise ApiError(413, "payload_too_large", f"journey source over {MAX_SOURCE_BYTES} bytes")
    try:
        new = compile_source(raw.decode("utf-8"), source="request body")
    except (UnicodeDecodeError, JourneyError) as exc:
        raise ApiError(400, "invalid_journey", f"journey does not compile: {exc}") from None
    summaries = {j.journey_id: j for j in await list_journeys(services.pool)}
    current = summaries.get(new.journey_id)
    old: Plan | None = None
    if current is not None:
        old = await load_plan(
            services.pool, journey_id=new.journey_id, version=current.active_version
        )
    result = diff_plans(old, new)
    waiting: dict[str, int] | None = None
    if old is not None and not result.unchanged:
        waiting = await _waiting(services, new.journey_id, old.version)
    affected = {s: (waiting or {}).get(s, 0) for s in result.affected_steps()}
    return {
        **asdict(result),
        "unchanged": result.unchanged,
        "customers_waiting": waiting,
        "customers_in_affected_steps": affected if waiting is not None else None,
    }


async def _waiting(services: Any, journey_id: str, version: str) -> dict[str, int] | None:
    try:
        temporal = await services.temporal_client()
    except Exception:
        return None
    if temporal is None:
        return None
    runs = await versions.waiting_runs(services.pool, temporal, journey_id)
    return versions.customers_per_step(runs, version)


class MigrationRequest(BaseModel):
    to_version: Annotated[str, Field(min_length=1, max_length=64), NulFree]
    # old step id -> new step id
    steps: Annotated[dict[str, str], NulFree] = Field(default_factory=dict)
    apply: bool = False  # false: preview only


@router.post(
    "/{journey_id}/migrations",
    responses=error_responses(
        400,
        404,
        503,
        s400="not valid, or the migration cannot be planned: the message says why",
        s404="no such journey",
        s503="Temporal is not configured or not reachable",
    ),
)
async def migrate(journey_id: str, body: MigrationRequest, services: ServicesDep) -> dict[str, Any]:
    """Preview (default) or apply a migration of waiting customers to another version."""
    await _summary(services, journey_id)
    temporal = await services.temporal_client()
    if temporal is None:
        raise ApiError(503, "unavailable", "Temporal is not configured for this API")
    try:
        planned = await versions.preview(
            services.pool, temporal, journey_id, body.to_version, body.steps
        )
    except versions.MigrationError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    if not body.apply:
        return {"applied": False, **planned.summary()}
    migration_id = await versions.apply(services.pool, temporal, planned)
    return {"applied": True, "id": migration_id, **planned.summary()}


@router.get(
    "/{journey_id}/migrations/{migration_id}",
    responses=error_responses(400, 404, s404="no such migration of this journey"),
)
async def migration_report(
    journey_id: str,
    # Migration ids are Postgres bigints: anything larger is no migration and a clear 400.
    migration_id: Annotated[int, Path(ge=1, le=2**63 - 1)],
    services: ServicesDep,
) -> dict[str, Any]:
    try:
        return await versions.report(services.pool, journey_id, migration_id)
    except KeyError:
        raise ApiError(404, "not_found", f"no migration {migration_id} of {journey_id!r}") from None
