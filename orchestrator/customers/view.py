"""One customer as the engine sees them: identity, profile, metrics, segments and journeys.

Everything but the journeys' positions comes from Postgres. Where a running journey run is
(its stage and the step it waits at) comes from the run itself, asked over Temporal with a
``position`` query; the queries for one customer's runs go out concurrently and each has a
short deadline. When Temporal cannot answer (down, not configured, no worker polling), the
stage recorded in ``journey_runs`` stands in and the view says where each position came from.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg
from pydantic import BaseModel
from temporalio.client import Client
from temporalio.common import QueryRejectCondition

from journeyman.orchestrator.storage import load_plan
from journeyman.workflows.inputs import Position
from journeyman.workflows.plan import Plan, Step, WaitForStep, WaitStep

from . import metrics as customer_metrics

# How long the view waits for a run's answer before falling back to Postgres.
POSITION_TIMEOUT_SECONDS = 2.0
RUNNING = ("entering", "active")
# The merges a customer took part in, on either side (both sides are indexed).
MERGES_OF = (
    "SELECT from_id, into_id, reason, moved, merged_at FROM customer_merges"
    " WHERE into_id = ANY($1::text[]) OR from_id = ANY($1::text[]) ORDER BY id"
)

PositionSource = Literal["temporal", "journey_runs"]


@dataclass(frozen=True)
class Identity:
    """The id asked for, the canonical customer it stands for, and all that customer's ids."""

    requested_id: str
    customer_id: str
    aliases: list[str]

    @property
    def ids(self) -> list[str]:
        """The canonical id and every alias: rows written before a merge may carry either."""
        return [self.customer_id, *self.aliases]


async def identify(conn: asyncpg.Connection | asyncpg.Pool, requested_id: str) -> Identity | None:
    """Resolve an id (a customer or an alias of one); None when no such customer is stored.

    A customer exists while anything personal is stored under one of their ids: a profile,
    events, journey runs, metrics or segment memberships. The delivery ledger does not count:
    it outlives an erasure on purpose (``customers.erasure``).
    """
    customer_id: str = (
        await conn.fetchval(
            "SELECT customer_id FROM customer_aliases WHERE alias = $1", requested_id
        )
        or requested_id
    )
    aliases = [
        row["alias"]
        for row in await conn.fetch(
            "SELECT alias FROM customer_aliases WHERE customer_id = $1 ORDER BY alias",
            customer_id,
        )
    ]
    ids = [customer_id, *aliases]
    exists = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM profiles WHERE customer_id = ANY($1::text[]))"
        " OR EXISTS (SELECT 1 FROM events WHERE customer_id = ANY($1::text[]))"
        " OR EXISTS (SELECT 1 FROM journey_runs WHERE customer_id = ANY($1::text[]))"
        " OR EXISTS (SELECT 1 FROM customer_metrics WHERE customer_id = ANY($1::text[]))"
        " OR EXISTS (SELECT 1 FROM segment_memberships WHERE customer_id = ANY($1::text[]))",
        ids,
    )
    if not exists:
        return None
    return Identity(requested_id=requested_id, customer_id=customer_id, aliases=aliases)


# --- the response ------------------------------------------------------------------------


class SegmentPublic(BaseModel):
    id: str
    name: str
    kind: str
    entered_at: datetime


class MergePublic(BaseModel):
    from_id: str
    into_id: str
    reason: str
    merged_at: datetime
    moved: dict[str, Any]


class RunPublic(BaseModel):
    """One journey run of the customer; ``step`` and ``waiting_for`` only for running runs
    whose position Temporal reported."""

    journey_id: str
    journey_name: str | None
    workflow_id: str
    version: str
    status: str
    stage: str | None
    step: str | None = None
    waiting_for: dict[str, Any] | None = None
    position_source: PositionSource | None = None
    entered_at: datetime
    updated_at: datetime
    converted_at: datetime | None
    holdout: bool


class JourneysPublic(BaseModel):
    running: list[RunPublic]
    finished: list[RunPublic]
    # "ok", "not configured", "unavailable (...)", or "partial: ..." when some runs gave no
    # position; the runs without one show the stage recorded in journey_runs.
    temporal: str


class CustomerPublic(BaseModel):
    customer_id: str
    requested_id: str
    resolved_from_alias: bool
    aliases: list[str]
    traits: dict[str, Any]
    consent: dict[str, Any]
    created_at: datetime | None
    updated_at: datetime | None
    metrics: dict[str, Any] | None
    segments: list[SegmentPublic]
    merges: list[MergePublic]
    journeys: JourneysPublic


# --- waiting steps -----------------------------------------------------------------------


def describe_wait(step: Step) -> dict[str, Any]:
    """What a run at ``step`` waits for, in a few fields a person reads at a glance."""
    if isinstance(step, WaitForStep):
        found: dict[str, Any] = {
            "kind": "wait_for",
            "event": step.match.event,
            "timeout_seconds": step.timeout_seconds,
        }
        if step.match.where:
            found["where"] = [test.model_dump(mode="json") for test in step.match.where]
        if step.lookback_seconds:
            found["lookback_seconds"] = step.lookback_seconds
        return found
    if isinstance(step, WaitStep):
        if step.until_time is not None:
            return {"kind": "wait", "until_time": step.until_time.model_dump(mode="json")}
        if step.until_date is not None:
            return {"kind": "wait", "until_date": step.until_date.model_dump(mode="json")}
        return {"kind": "wait", "seconds": step.seconds}
    return {"kind": step.kind}


class _Plans:
    """Plans by (journey, version), each read once per request; None when never deployed."""

    def __init__(self, conn: asyncpg.Connection | asyncpg.Pool) -> None:
        self._conn = conn
        self._cache: dict[tuple[str, str], Plan | None] = {}

    async def get(self, journey_id: str, version: str) -> Plan | None:
        key = (journey_id, version)
        if key not in self._cache:
            try:
                self._cache[key] = await load_plan(
                    self._conn, journey_id=journey_id, version=version
                )
            except KeyError:
                self._cache[key] = None
        return self._cache[key]


# --- positions from Temporal -------------------------------------------------------------


async def _position(temporal: Client, workflow_id: str, wait_seconds: float) -> Position | None:
    """The run's answer, or None when it cannot give one in time (not started yet, ended,
    no worker polling, Temporal away)."""
    handle = temporal.get_workflow_handle(workflow_id)
    try:
        return await asyncio.wait_for(
            handle.query(
                "position",
                result_type=Position,
                # Only an open execution speaks for the run: a closed one under the same id
                # (an earlier customer's, before an erasure) would answer from its history.
                reject_condition=QueryRejectCondition.NOT_OPEN,
                rpc_timeout=timedelta(seconds=wait_seconds),
            ),
            wait_seconds,
        )
    except asyncio.CancelledError:
        raise
    except Exception:  # any failure means the same thing here: fall back to Postgres
        return None


async def positions(
    temporal: Client | None, workflow_ids: Iterable[str], *, wait_seconds: float
) -> dict[str, Position | None]:
    """Ask every run where it is, all at once; None for those that did not answer."""
    ids = list(workflow_ids)
    if temporal is None or not ids:
        return dict.fromkeys(ids)
    answers = await asyncio.gather(*(_position(temporal, wid, wait_seconds) for wid in ids))
    return dict(zip(ids, answers, strict=True))


# --- assembling the view -----------------------------------------------------------------


async def customer_view(
    pool: asyncpg.Pool,
    identity: Identity,
    *,
    temporal: Client | None,
    temporal_status: str,
    wait_seconds: float = POSITION_TIMEOUT_SECONDS,
) -> CustomerPublic:
    """Everything stored about one customer, with where their running journeys stand.

    ``temporal`` is None when it is not configured or could not be reached;
    ``temporal_status`` then says which ("not configured", "unavailable (...)").
    """
    ids = identity.ids
    async with pool.acquire() as conn:
        profile = await conn.fetchrow(
            "SELECT traits, consent, created_at, updated_at FROM profiles WHERE customer_id = $1",
            identity.customer_id,
        )
        found_metrics = await customer_metrics.load(conn, identity.customer_id)
        segments = await conn.fetch(
            "SELECT m.segment_id, s.name, s.kind, m.entered_at FROM segment_memberships m"
            " JOIN segments s USING (segment_id) WHERE m.customer_id = ANY($1::text[])"
            " ORDER BY m.entered_at, m.segment_id",
            ids,
        )
        merges = await conn.fetch(MERGES_OF, ids)
        runs = await conn.fetch(
            "SELECT r.journey_id, v.name AS journey_name, r.workflow_id, r.version, r.status,"
            " r.stage, r.entered_at, r.updated_at, r.converted_at, r.holdout"
            " FROM journey_runs r LEFT JOIN journey_versions v"
            "   ON v.journey_id = r.journey_id AND v.version = r.version"
            " WHERE r.customer_id = ANY($1::text[]) ORDER BY r.entered_at, r.workflow_id",
            ids,
        )
    running_ids = [row["workflow_id"] for row in runs if row["status"] in RUNNING]
    answers = await positions(temporal, running_ids, wait_seconds=wait_seconds)
    plans = _Plans(pool)
    running: list[RunPublic] = []
    finished: list[RunPublic] = []
    for row in runs:
        run = RunPublic(**dict(row))
        if row["status"] not in RUNNING:
            finished.append(run)
            continue
        answer = answers.get(row["workflow_id"])
        if answer is None:
            run.position_source = "journey_runs"
        else:
            run.position_source = "temporal"
            run.version, run.stage, run.step = (
                answer.version or run.version,
                answer.stage,
                answer.step,
            )
            plan = await plans.get(run.journey_id, run.version) if answer.step else None
            if plan is not None and answer.step is not None:
                try:
                    run.waiting_for = describe_wait(plan.step(answer.step))
                except KeyError:
                    run.waiting_for = None
        running.append(run)
    status = temporal_status
    if temporal is not None and running_ids:
        silent = sum(1 for wid in running_ids if answers.get(wid) is None)
        if silent:
            status = (
                f"partial: {silent} of {len(running_ids)} running runs gave no position (not"
                f" started yet, already ended, or no answer within {wait_seconds:g}s); their"
                " stage is the one recorded in journey_runs"
            )
    return CustomerPublic(
        customer_id=identity.customer_id,
        requested_id=identity.requested_id,
        resolved_from_alias=identity.requested_id != identity.customer_id,
        aliases=identity.aliases,
        traits=profile["traits"] if profile else {},
        consent=profile["consent"] if profile else {},
        created_at=profile["created_at"] if profile else None,
        updated_at=profile["updated_at"] if profile else None,
        metrics=found_metrics.model_dump(mode="json") if found_metrics is not None else None,
        segments=[
            SegmentPublic(
                id=row["segment_id"],
                name=row["name"],
                kind=row["kind"],
                entered_at=row["entered_at"],
            )
            for row in segments
        ],
        merges=[MergePublic(**dict(row)) for row in merges],
        journeys=JourneysPublic(running=running, finished=finished, temporal=status),
    )
