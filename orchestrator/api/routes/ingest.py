"""Segment-compatible ingest: ``/v1/{track,identify,page,screen,group,alias,batch}``.

Each has its short form (``/v1/t``, ``/v1/i``, ``/v1/p``, ``/v1/s``, ``/v1/g``, ``/v1/a``,
``/v1/b``). A 2xx is sent only after the messages are committed (with their outbox rows). A
single message that is not valid is a 400 and one over the message limit a 413; in a batch
such messages are rejected alone and listed in the answer, the others are accepted. A body
holding U+0000 (which Postgres cannot store) is refused whole with a 400 naming where.
Backpressure (``..backpressure``) answers 503 with ``Retry-After`` rather than queueing without
bound.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from journeyman.orchestrator.ingest import IncomingEvent, ingest
from journeyman.orchestrator.ingest.messages import read_batch, read_single
from journeyman.orchestrator.ingest.segment import (
    Alias,
    Batch,
    Group,
    Identify,
    Message,
    MessageRejected,
    Page,
    Problem,
    Rejected,
    Screen,
    Track,
    problems_of,
)
from journeyman.orchestrator.observability import type_label

from ..auth import basic_user, check_write_key, services_of
from ..backpressure import PatientPool, database_unavailable_is_503
from ..body import read_json
from ..errors import ApiError
from ..services import Services
from .metrics import process_metrics

router = APIRouter(prefix="/v1", tags=["ingest"])


class FieldError(BaseModel):
    field: str
    message: str


class RejectedMessage(BaseModel):
    """A message of a batch that was not accepted; the others were."""

    model_config = ConfigDict(populate_by_name=True)

    index: int = Field(description="position of the message in the batch, from 0")
    message_id: str | None = Field(alias="messageId")
    code: Literal["too_large", "invalid"]
    message: str
    fields: list[FieldError] = Field(default_factory=list)


class IngestResponse(BaseModel):
    success: bool = True
    accepted: int = Field(description="new messages stored")
    duplicates: int = Field(description="messages whose messageId was already stored")
    rejected: list[RejectedMessage] = Field(default_factory=list)


def _fields(problems: list[Problem], prefix: str = "") -> list[FieldError]:
    out = []
    for p in problems:
        if not p.field:
            name = prefix or "(body)"
        elif p.field.startswith("["):
            name = prefix + p.field
        else:
            name = f"{prefix}.{p.field}" if prefix else p.field
        out.append(FieldError(field=name, message=p.message))
    return out


def _rejected(item: Rejected) -> RejectedMessage:
    return RejectedMessage(
        index=item.index,
        message_id=item.message_id,
        code=item.code,
        message=item.message,
        fields=_fields(item.problems, f"batch[{item.index}]"),
    )


def _type_label(raw: object) -> str:
    # A "type" that is not text (an object, a list) is no type, and not hashable either.
    kind = raw.get("type") if isinstance(raw, dict) else None
    return type_label(raw) if isinstance(kind, str) else "unknown"


def _single(
    body: dict[str, Any], kind: type[Message], *, received_at: datetime, source_id: str
) -> IncomingEvent:
    try:
        return read_single(body, kind, received_at=received_at, source_id=source_id)
    except MessageRejected as exc:
        if exc.code == "too_large":
            raise ApiError(413, "payload_too_large", exc.message) from None
        fields = [f.model_dump() for f in _fields(exc.problems)]
        raise ApiError(400, "invalid_request", exc.message, fields=fields) from None


def _envelope(body: dict[str, Any]) -> Batch:
    try:
        return Batch.model_validate(body)
    except ValidationError as exc:
        fields = [f.model_dump() for f in _fields(problems_of(exc))]
        raise ApiError(400, "invalid_request", "batch is not valid", fields=fields) from None


def _all_rejected(rejected: list[RejectedMessage]) -> JSONResponse:
    return JSONResponse(
        {
            "error": "invalid_request",
            "message": f"every message of the batch was rejected ({len(rejected)})",
            "fields": [f.model_dump() for r in rejected for f in r.fields],
            "rejected": [r.model_dump(mode="json", by_alias=True) for r in rejected],
        },
        status_code=400,
    )


async def _accept(request: Request, kind: type[Message] | None) -> IngestResponse | JSONResponse:
    """Answer one request, counted in ``/metrics`` by status, latency and backpressure."""
    services = services_of(request)
    started, status, backpressure = time.perf_counter(), 500, None
    try:
        answer = await _answer(request, services, kind)
        status = answer.status_code if isinstance(answer, JSONResponse) else 200
        return answer
    except ApiError as exc:
        status = exc.status
        backpressure = exc.code if exc.status in (429, 503) else None
        raise
    finally:
        seconds = time.perf_counter() - started
        process_metrics(request).count_request(status, seconds, backpressure=backpressure)


async def _answer(
    request: Request, services: Services, kind: type[Message] | None
) -> IngestResponse | JSONResponse:
    """Read, authenticate, validate and commit one request; ``kind`` None is a batch."""
    # The spec's receivedAt: once per request, as it arrives (before any wait for a turn).
    received_at = datetime.now(UTC)
    async with services.ingest_limiter.slot():
        events, rejected = await _read(request, services, kind, received_at=received_at)
        if not events:
            return _all_rejected(rejected)
        with database_unavailable_is_503():
            pool = PatientPool(services.pool, services.ingest_queue_seconds)
            result = await ingest(
                pool, events=events, index=services.index, settings=services.customer_settings
            )
    process_metrics(request).count_stored(
        (e.type for e in events), accepted=result.accepted, duplicates=result.duplicates
    )
    return IngestResponse(accepted=result.accepted, duplicates=result.duplicates, rejected=rejected)


async def _read(
    request: Request,
    services: Services,
    kind: type[Message] | None,
    *,
    received_at: datetime,
) -> tuple[list[IncomingEvent], list[RejectedMessage]]:
    """The request's accepted messages and its rejected ones, once its write key is checked.

    Apart from ``_answer`` so that the parsed body is let go of before the messages are
    stored: the events hold what they need of it, and a body no one refers to any more is
    freed at once instead of living on through the garbage collector's generations.
    """
    metrics = process_metrics(request)
    # Postgres cannot store U+0000: such a request is refused whole, before anything is stored.
    body = await read_json(request, limit=services.max_body_bytes, refuse_nul=True)
    if not isinstance(body, dict):
        raise ApiError(400, "invalid_request", "body must be a JSON object")
    supplied = basic_user(request)
    if supplied is None and isinstance(body.get("writeKey"), str):
        supplied = body["writeKey"]
    with database_unavailable_is_503():
        source_id = await check_write_key(services, supplied)
    if kind is not None:
        try:
            return [_single(body, kind, received_at=received_at, source_id=source_id)], []
        except ApiError as exc:
            reason = "too_large" if exc.status == 413 else "invalid"
            metrics.count_rejected(kind.model_fields["type"].default, reason)
            raise
    events, problems = read_batch(_envelope(body), received_at=received_at, source_id=source_id)
    raws = body.get("batch")
    for item in problems:
        raw = raws[item.index] if isinstance(raws, list) else None
        metrics.count_rejected(_type_label(raw), item.code)
    return events, [_rejected(item) for item in problems]


_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "not valid; the body names the fields"},
    401: {"description": "missing or unknown write key"},
    413: {"description": "request over the body limit, or a single message over 32 KB"},
    503: {"description": "overloaded or database away: retry after Retry-After seconds"},
}


@router.post("/track", response_model=IngestResponse, responses=_RESPONSES)
@router.post("/t", response_model=IngestResponse, include_in_schema=False)
async def track(request: Request) -> IngestResponse | JSONResponse:
    """Record a customer's action (Segment ``track``)."""
    return await _accept(request, Track)


@router.post("/identify", response_model=IngestResponse, responses=_RESPONSES)
@router.post("/i", response_model=IngestResponse, include_in_schema=False)
async def identify(request: Request) -> IngestResponse | JSONResponse:
    """Record who a customer is: traits merge into their profile (Segment ``identify``)."""
    return await _accept(request, Identify)


@router.post("/page", response_model=IngestResponse, responses=_RESPONSES)
@router.post("/p", response_model=IngestResponse, include_in_schema=False)
async def page(request: Request) -> IngestResponse | JSONResponse:
    """Record a page a customer saw on a website (Segment ``page``)."""
    return await _accept(request, Page)


@router.post("/screen", response_model=IngestResponse, responses=_RESPONSES)
@router.post("/s", response_model=IngestResponse, include_in_schema=False)
async def screen(request: Request) -> IngestResponse | JSONResponse:
    """Record a screen a customer saw in a mobile app (Segment ``screen``)."""
    return await _accept(request, Screen)


@router.post("/group", response_model=IngestResponse, responses=_RESPONSES)
@router.post("/g", response_model=IngestResponse, include_in_schema=False)
async def group(request: Request) -> IngestResponse | JSONResponse:
    """Record the group (account, company) a customer belongs to (Segment ``group``)."""
    return await _accept(request, Group)


@router.post("/alias", response_model=IngestResponse, responses=_RESPONSES)
@router.post("/a", response_model=IngestResponse, include_in_schema=False)
async def alias(request: Request) -> IngestResponse | JSONResponse:
    """Record that two ids are the same customer (Segment ``alias``)."""
    return await _accept(request, Alias)


@router.post("/batch", response_model=IngestResponse, responses=_RESPONSES)
@router.post("/b", response_model=IngestResponse, include_in_schema=False)
async def batch(request: Request) -> IngestResponse | JSONResponse:
    """Record many messages of any types at once; bad ones are rejected alone (``rejected``)."""
    return await _accept(request, None)
