"""Segment and persona administration: deploy, list with member counts, show, archive."""

from __future__ import annotations

import logging
from datetime import datetime

from fastapi import APIRouter, Request
from pydantic import BaseModel

from journeyman.orchestrator.customers.definitions import SegmentKind
from journeyman.orchestrator.customers.segment_files import load_segment_source, to_definition
from journeyman.orchestrator.language import JourneyError
from journeyman.orchestrator.storage.segments import (
    DeployOutcome,
    SegmentStatus,
    SegmentSummary,
    archive_segment,
    deploy_segment,
    get_segment,
    list_segments,
)
from journeyman.workflows.sweep import sweep_now

from ..auth import AdminDep, ServicesDep
from ..errors import ApiError, NulGuard, error_responses
from ..services import Services

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/segments",
    tags=["segments"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

MAX_SOURCE_BYTES = 64 * 1024

_NOT_FOUND = error_responses(404, s404="no such segment is deployed")


class SegmentPublic(BaseModel):
    id: str
    name: str
    kind: SegmentKind
    version: str
    status: SegmentStatus
    members: int
    deployed_at: datetime


class SegmentDetailPublic(SegmentPublic):
    description: str
    condition: str
    goals: list[str]
    pains: list[str]
    channels: list[str]


class SegmentDeployPublic(BaseModel):
    id: str
    version: str
    result: DeployOutcome


class SegmentStatusPublic(BaseModel):
    id: str
    status: SegmentStatus


def _public(summary: SegmentSummary) -> SegmentPublic:
    d = summary.definition
    return SegmentPublic(
        id=d.segment_id,
        name=d.name,
        kind=d.kind,
        version=d.version,
        status=summary.status,
        members=summary.members,
        deployed_at=summary.deployed_at,
    )


@router.get("", response_model=list[SegmentPublic])
async def segments(services: ServicesDep) -> list[SegmentPublic]:
    """Every deployed segment and persona, by id, with how many customers are in it now."""
    return [_public(summary) for summary in await list_segments(services.pool)]


@router.post(
    "",
    response_model=SegmentDeployPublic,
    status_code=201,
    responses=error_responses(
        400, 413, s400="not UTF-8, or the segment does not compile: `fields` says where"
    ),
    openapi_extra={
        "requestBody": {
            "required": True,
            "description": "a segment or persona file (docs/segments.md)",
            "content": {"application/yaml": {"schema": {"type": "object"}}},
        }
    },
)
async def deploy(request: Request, services: ServicesDep) -> SegmentDeployPublic:
    """Check a segment file (the request body, YAML) and make it the current definition."""
    raw = await request.body()
    if len(raw) > MAX_SOURCE_BYTES:
        raise ApiError(413, "payload_too_large", f"segment source over {MAX_SOURCE_BYTES} bytes")
    try:
        source = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise ApiError(400, "invalid_request", "segment source must be UTF-8") from None
    try:
        spec = load_segment_source(source, source="request body")
    except JourneyError as exc:
        fields = [
            {"field": d.path or "(file)", "line": d.line, "message": d.message}
            for d in exc.diagnostics
        ]
        raise ApiError(400, "invalid_segment", "segment does not compile", fields=fields) from None
    async with services.pool.acquire() as conn:
        result = await deploy_segment(
            conn, definition=to_definition(spec), source=source, details=spec.details()
        )
    if result.outcome != "unchanged":
        await services.refresh_index()
        await _start_filling(services)
    return SegmentDeployPublic(id=result.segment_id, version=result.version, result=result.outcome)


async def _start_filling(services: Services) -> None:
    """Have the worker's sweep fill the new definition now rather than at its next interval.

    Best effort: the deploy is committed either way, and the next scheduled sweep fills it.
    """
    try:
        client = await services.temporal_client()
        if client is not None:
            await sweep_now(client, task_queue=services.task_queue)
    except Exception as exc:  # Temporal away, or no worker has created the schedule yet
        log.warning("segment deployed; its fill waits for the next sweep (%s)", type(exc).__name__)


@router.get("/{segment_id}", response_model=SegmentDetailPublic, responses=_NOT_FOUND)
async def segment(segment_id: str, services: ServicesDep) -> SegmentDetailPublic:
    """One segment: its condition, description, persona details and member count."""
    summary = await get_segment(services.pool, segment_id=segment_id)
    if summary is None:
        raise ApiError(404, "not_found", f"no segment {segment_id!r} is deployed")
    d = summary.definition
    return SegmentDetailPublic(
        **_public(summary).model_dump(),
        description=d.description,
        condition=d.condition,
        goals=summary.details.get("goals", []),
        pains=summary.details.get("pains", []),
        channels=summary.details.get("channels", []),
    )


@router.post("/{segment_id}/archive", response_model=SegmentStatusPublic, responses=_NOT_FOUND)
async def archive(segment_id: str, services: ServicesDep) -> SegmentStatusPublic:
    """Stop evaluating a segment and empty it; deploying its file again brings it back."""
    async with services.pool.acquire() as conn:
        found = await archive_segment(conn, segment_id=segment_id)
    if not found:
        raise ApiError(404, "not_found", f"no segment {segment_id!r} is deployed")
    await services.refresh_index()
    return SegmentStatusPublic(id=segment_id, status="archived")
