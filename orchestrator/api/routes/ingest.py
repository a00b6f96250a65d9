"""Segment-compatible ingest: ``/v1/track``, ``/v1/identify``, ``/v1/batch`` and short forms.

A 2xx is sent only after the messages are committed (with their outbox rows).
"""

from __future__ import annotations

from typing import Any, TypeVar

from fastapi import APIRouter, Request
from pydantic import BaseModel, TypeAdapter, ValidationError

from journeyman.orchestrator.ingest import Batch, Identify, IncomingEvent, Track, ingest, normalise

from ..auth import ServicesDep, basic_user, check_write_key
from ..body import read_json
from ..errors import ApiError, field_errors

router = APIRouter(prefix="/v1", tags=["ingest"])
_M = TypeVar("_M", bound=BaseModel)


class IngestResponse(BaseModel):
    success: bool = True
    accepted: int
    duplicates: int


def _parse(model: type[_M], body: Any) -> _M:
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    try:
        return TypeAdapter(model).validate_python(body)
    except ValidationError as exc:
        raise ApiError(
            400, "invalid_request", "message is not valid", fields=field_errors(exc)
        ) from None


async def _accept(
    request: Request, services: ServicesDep, model: type[Track | Identify | Batch]
) -> IngestResponse:
    body = await read_json(request, limit=services.max_body_bytes)
    supplied = basic_user(request)
    if supplied is None and isinstance(body, dict) and isinstance(body.get("writeKey"), str):
        supplied = body["writeKey"]
    await check_write_key(services, supplied)
    parsed = _parse(model, body)
    events: list[IncomingEvent]
    if isinstance(parsed, Batch):
        events = [normalise(m, shared_context=parsed.context) for m in parsed.batch]
    else:
        events = [normalise(parsed)]
    result = await ingest(services.pool, events=events, index=services.index)
    return IngestResponse(accepted=result.accepted, duplicates=result.duplicates)


@router.post("/track", response_model=IngestResponse)
@router.post("/t", response_model=IngestResponse, include_in_schema=False)
async def track(request: Request, services: ServicesDep) -> IngestResponse:
    """Record a customer's action (Segment ``track``)."""
    return await _accept(request, services, Track)


@router.post("/identify", response_model=IngestResponse)
@router.post("/i", response_model=IngestResponse, include_in_schema=False)
async def identify(request: Request, services: ServicesDep) -> IngestResponse:
    """Record who a customer is: traits merge into their profile (Segment ``identify``)."""
    return await _accept(request, services, Identify)


@router.post("/batch", response_model=IngestResponse)
@router.post("/b", response_model=IngestResponse, include_in_schema=False)
async def batch(request: Request, services: ServicesDep) -> IngestResponse:
    """Record many messages at once, all or nothing (Segment ``batch``)."""
    return await _accept(request, services, Batch)
