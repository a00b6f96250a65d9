"""Journey administration: deploy, list, and the per-stage funnel."""

from __future__ import annotations

from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from journeyman.orchestrator.language import JourneyError, compile_source
from journeyman.orchestrator.storage import deploy_plan, funnel, list_journeys, load_plan

from ..auth import AdminDep, ServicesDep
from ..errors import ApiError, NulGuard, error_responses

router = APIRouter(
    prefix="/api/journeys",
    tags=["journeys"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

MAX_SOURCE_BYTES = 256 * 1024

# The body of a deploy or a diff: a journey file, read whatever its declared type.
YAML_BODY: dict[str, object] = {
    "requestBody": {
        "required": True,
        "description": "a journey file (docs/journey-language.md)",
        "content": {"application/yaml": {"schema": {"type": "object"}}},
    }
}


class JourneyPublic(BaseModel):
    id: str
    name: str
    active_version: str
    versions: list[str]
    updated_at: datetime
    status: str


class DeployPublic(BaseModel):
    id: str
    version: str
    created: bool
    activated: bool


class StagePublic(BaseModel):
    stage: str
    entered: int
    current: int
    converted: int
    conversion_rate: float
    moved_on: int
    exited: int
    goal: int
    migrated: int
    # Left without converting (moved_on + exited + migrated), by reason for treated customers,
    # and "holdout" for held-out ones: see docs/reports.md.
    exits_by_reason: dict[str, int]


class FunnelPublic(BaseModel):
    journey_id: str
    version: str | None
    stages: list[StagePublic]


@router.get("", response_model=list[JourneyPublic])
async def journeys(services: ServicesDep) -> list[JourneyPublic]:
    """Every deployed journey with its active version and all versions, oldest first."""
    return [
        JourneyPublic(
            id=j.journey_id,
            name=j.name,
            active_version=j.active_version,
            versions=j.versions,
            updated_at=j.updated_at,
            status=j.status,
        )
        for j in await list_journeys(services.pool)
    ]


@router.post(
    "",
    response_model=DeployPublic,
    status_code=201,
    responses=error_responses(
        400, 413, s400="not UTF-8, or the journey does not compile: `fields` says where"
    ),
    openapi_extra=YAML_BODY,
)
async def deploy(request: Request, services: ServicesDep) -> DeployPublic:
    """Compile a journey file (the request body, YAML) and make it the active version."""
    raw = await request.body()
    if len(raw) > MAX_SOURCE_BYTES:
        raise ApiError(413, "payload_too_large", f"journey source over {MAX_SOURCE_BYTES} bytes")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", "journey source must be UTF-8") from None
    try:
        plan = compile_source(source, source="request body")
    except JourneyError as exc:
        fields = [
            {"field": d.path or "(file)", "line": d.line, "message": d.message}
            for d in exc.diagnostics
        ]
        raise ApiError(400, "invalid_journey", "journey does not compile", fields=fields) from None
    async with services.pool.acquire() as conn:
        result = await deploy_plan(conn, plan=plan, source=source)
    await services.refresh_index()
    return DeployPublic(
        id=result.journey_id,
        version=result.version,
        created=result.created,
        activated=result.activated,
    )


@router.get(
    "/{journey_id}/funnel",
    response_model=FunnelPublic,
    responses=error_responses(404, s404="no such journey or version"),
)
async def journey_funnel(
    journey_id: str, services: ServicesDep, version: str | None = None
) -> FunnelPublic:
    """Per stage: entered, in it now, converted to the next stage, rate, moved on, exited."""
    summaries = {j.journey_id: j for j in await list_journeys(services.pool)}
    summary = summaries.get(journey_id)
    if summary is None:
        raise ApiError(404, "not_found", f"no journey {journey_id!r} is deployed")
    if version is not None and version not in summary.versions:
        raise ApiError(404, "not_found", f"journey {journey_id!r} has no version {version!r}")
    plan = await load_plan(
        services.pool, journey_id=journey_id, version=version or summary.active_version
    )
    rows = await funnel(
        services.pool, journey_id=journey_id, stages=[s.name for s in plan.stages], version=version
    )
    return FunnelPublic(
        journey_id=journey_id,
        version=version,
        stages=[StagePublic(**vars(r)) for r in rows],
    )
