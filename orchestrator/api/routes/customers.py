"""Customers: one customer's whole picture, who is in a segment or a journey, and erasure."""

from __future__ import annotations

import asyncio
from datetime import datetime

from fastapi import APIRouter
from pydantic import BaseModel
from temporalio.client import Client

from journeyman.orchestrator.customers import erasure, listing
from journeyman.orchestrator.customers.view import CustomerPublic, customer_view, identify
from journeyman.orchestrator.storage import load_plan

from ..auth import AdminDep, ServicesDep
from ..errors import NUL_MESSAGE, ApiError, NulGuard, error_responses, without_nul
from ..services import Services

router = APIRouter(
    tags=["customers"], dependencies=[AdminDep, NulGuard], responses=error_responses(401)
)

# Connecting to Temporal must not hold a customer view hostage: past this, it is "away".
TEMPORAL_CONNECT_SECONDS = 3.0


async def _temporal(services: Services) -> tuple[Client | None, str]:
    """The Temporal client and "ok", or None and why not ("not configured", "unavailable")."""
    if services.temporal is None and services.temporal_address is None:
        return None, "not configured"
    try:
        client = await asyncio.wait_for(services.temporal_client(), TEMPORAL_CONNECT_SECONDS)
    except Exception as exc:  # the reason is the exception's type; its text may be long
        return None, f"unavailable ({type(exc).__name__})"
    if client is None:
        return None, "not configured"
    return client, "ok"


def _page_request(limit: int, after: str | None, *, parts: int) -> listing.PageRequest:
    """The page asked for; 400 for a bad limit or a cursor this API did not hand out."""
    try:
        request = listing.page_request(limit, after, parts=parts)
        # A cursor is decoded text: a forged one could carry what the database refuses.
        without_nul(request.after)
    except listing.PageError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None
    except ValueError:
        raise ApiError(400, "invalid_request", f"after {NUL_MESSAGE}") from None
    return request


# --- one customer ------------------------------------------------------------------------


async def _unknown(services: Services, customer_id: str) -> ApiError:
    message = f"no customer {customer_id!r}"
    when = await erasure.erased_at(services.pool, customer_id)
    if when is not None:
        message += f" (an erasure of this id was recorded at {when.isoformat()})"
    return ApiError(404, "not_found", message)


@router.get(
    "/api/customers/{customer_id:path}",
    response_model=CustomerPublic,
    responses=error_responses(404, s404="no such customer (erased ones say when)"),
)
async def customer(customer_id: str, services: ServicesDep) -> CustomerPublic:
    """A customer (or an alias of one): profile, consent, metrics, segments, merges, and
    every journey run with, for running ones, the step it waits at and what for."""
    found = await identify(services.pool, customer_id)
    if found is None:
        raise await _unknown(services, customer_id)
    temporal, status = await _temporal(services)
    return await customer_view(services.pool, found, temporal=temporal, temporal_status=status)


class ErasurePublic(BaseModel):
    erasure_id: int
    customer_hash: str  # SHA-256 of the canonical customer id, as recorded in ``erasures``
    erased: dict[str, int]
    temporal: dict[str, int]
    erased_at: datetime | None


@router.delete(
    "/api/customers/{customer_id:path}",
    response_model=ErasurePublic,
    responses=error_responses(
        404,
        503,
        s404="no such customer",
        s503="the customer is in journeys and Temporal is away: nothing was erased",
    ),
)
async def erase_customer(customer_id: str, services: ServicesDep) -> ErasurePublic:
    """Erase a customer and all their ids; the answer holds counts, never personal data."""
    temporal, status = await _temporal(services)
    try:
        done = await erasure.erase(
            services.pool, customer_id, temporal=temporal, temporal_problem=status
        )
    except erasure.TemporalRequired as exc:
        raise ApiError(503, "unavailable", str(exc)) from None
    if done is None:
        raise await _unknown(services, customer_id)
    return ErasurePublic(
        erasure_id=done.id,
        customer_hash=done.customer_hash,
        erased=done.erased,
        temporal=done.temporal,
        erased_at=done.erased_at,
    )


# --- who is where ------------------------------------------------------------------------


class SegmentMemberPublic(BaseModel):
    customer_id: str
    entered_at: datetime


class SegmentCustomersPublic(BaseModel):
    segment_id: str
    customers: list[SegmentMemberPublic]
    next: str | None  # pass as ``after`` for the next page; null on the last page


@router.get(
    "/api/segments/{segment_id}/customers",
    response_model=SegmentCustomersPublic,
    responses=error_responses(400, 404, s400="a bad limit or cursor", s404="no such segment"),
)
async def segment_customers(
    segment_id: str,
    services: ServicesDep,
    limit: int = listing.DEFAULT_LIMIT,
    after: str | None = None,
) -> SegmentCustomersPublic:
    """The segment's members, ordered by customer id, one keyset page at a time."""
    request = _page_request(limit, after, parts=1)
    if not await listing.segment_exists(services.pool, segment_id):
        raise ApiError(404, "not_found", f"no segment {segment_id!r} is deployed")
    page = await listing.segment_customers(services.pool, segment_id=segment_id, request=request)
    return SegmentCustomersPublic(
        segment_id=segment_id,
        customers=[SegmentMemberPublic(**row) for row in page.rows],
        next=page.next,
    )


class JourneyCustomerPublic(BaseModel):
    customer_id: str
    workflow_id: str
    version: str
    stage: str | None  # None while the run is entering
    status: str
    entered_at: datetime


class JourneyCustomersPublic(BaseModel):
    journey_id: str
    stage: str | None
    step: str | None
    customers: list[JourneyCustomerPublic]
    next: str | None


@router.get(
    "/api/journeys/{journey_id}/customers",
    response_model=JourneyCustomersPublic,
    responses=error_responses(
        400,
        404,
        503,
        s400="a bad limit or cursor, or an unknown stage or step",
        s404="no such journey",
        s503="filtering by step needs Temporal, which is away",
    ),
)
async def journey_customers(
    journey_id: str,
    services: ServicesDep,
    stage: str | None = None,
    step: str | None = None,
    limit: int = listing.DEFAULT_LIMIT,
    after: str | None = None,
) -> JourneyCustomersPublic:
    """Customers with a running run of the journey, by stage and by the step they wait at."""
    request = _page_request(limit, after, parts=2)
    active_version = await services.pool.fetchval(
        "SELECT active_version FROM journeys WHERE journey_id = $1", journey_id
    )
    if active_version is None:
        raise ApiError(404, "not_found", f"no journey {journey_id!r} is deployed")
    active = await load_plan(services.pool, journey_id=journey_id, version=active_version)
    others = [
        await load_plan(services.pool, journey_id=journey_id, version=version)
        for version in await listing.running_versions(services.pool, journey_id)
        if version != active_version
    ]
    places = listing.places(active, others)
    if stage is not None and stage not in places.stages:
        raise ApiError(
            400,
            "invalid_request",
            f"unknown stage {stage!r}; the stages of journey {journey_id!r} are:"
            f" {', '.join(places.active_stages)}",
        )
    workflow_ids: set[str] | None = None
    if step is not None:
        _check_step(journey_id, step, places)
        temporal, status = await _temporal(services)
        if temporal is None:
            raise ApiError(
                503,
                "unavailable",
                f"filtering by step asks Temporal, which is {status}; stage filters still work",
            )
        try:
            workflow_ids = await listing.workflows_at_step(
                temporal, journey_id=journey_id, step=step
            )
        except Exception as exc:
            raise ApiError(
                503, "unavailable", f"Temporal could not list the runs ({type(exc).__name__})"
            ) from None
    page = await listing.journey_customers(
        services.pool,
        journey_id=journey_id,
        request=request,
        stage=stage,
        workflow_ids=workflow_ids,
    )
    return JourneyCustomersPublic(
        journey_id=journey_id,
        stage=stage,
        step=step,
        customers=[JourneyCustomerPublic(**row) for row in page.rows],
        next=page.next,
    )


def _check_step(journey_id: str, step: str, places: listing.JourneyPlaces) -> None:
    if step in places.waiting_steps:
        return
    waiting = ", ".join(sorted(places.waiting_steps)) or "none"
    kind = places.other_steps.get(step)
    if kind is not None:
        raise ApiError(
            400,
            "invalid_request",
            f"step {step!r} is a {kind} step: customers pass through it without staying;"
            f" only wait and wait_for steps can be listed (here: {waiting})",
        )
    raise ApiError(
        400,
        "invalid_request",
        f"unknown step {step!r}; the wait and wait_for steps of journey {journey_id!r}"
        f" are: {waiting}",
    )
