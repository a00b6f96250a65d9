"""Who is where: a segment's members and a journey's running customers, page by page.

Pages are keyset pages: ordered by customer id (then workflow id, since one customer can
have several runs of a journey), each page starting strictly after the last row of the
previous one. Unlike offsets, a customer entering or leaving between two requests never
shifts the rest, so paging through never repeats or skips someone who stayed put.

The cursor is opaque to callers (base64url of the last row's key) so its shape can change.

Filtering a journey's customers by step asks Temporal's visibility store, not each run:
every run records the step it waits at (a ``wait`` or ``wait_for``) in the ``JourneyStep``
search attribute, so one listing query answers for the whole journey, without a worker and
without waking any run. The price: visibility lags the runs by about a second, and the
listing covers every run at that step on each page request (fine for tens of thousands of
customers; a position query per run would cost one round trip to a worker per customer).
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from typing import Any

import asyncpg
from temporalio.client import Client

from journeyman.workflows.plan import Plan, walk
from journeyman.workflows.program import is_waiting
from journeyman.workflows.search_attributes import JOURNEY_ID, JOURNEY_STEP

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000
RUNNING = ("entering", "active")


class PageError(ValueError):
    """A paging parameter that cannot be right (limit out of range, a cursor we never made)."""


@dataclass(frozen=True)
class PageRequest:
    limit: int
    after: tuple[str, ...] | None  # the key of the last row already seen


def encode_cursor(key: tuple[str, ...]) -> str:
    raw = json.dumps(list(key), separators=(",", ":")).encode("utf-8")
    return base64.urlsafe_b64encode(raw).decode("ascii").rstrip("=")


def decode_cursor(cursor: str, *, parts: int) -> tuple[str, ...]:
    """The key a cursor holds; PageError for anything this API did not hand out."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        key = json.loads(raw.decode("utf-8"))
    except (binascii.Error, ValueError):
        key = None
    if not (isinstance(key, list) and len(key) == parts and all(isinstance(p, str) for p in key)):
        raise PageError(
            "after is not a cursor from this list: pass the 'next' value of the previous page"
        )
    return tuple(key)


def page_request(limit: int, after: str | None, *, parts: int) -> PageRequest:
    if not 1 <= limit <= MAX_LIMIT:
        raise PageError(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return PageRequest(limit, decode_cursor(after, parts=parts) if after is not None else None)


@dataclass(frozen=True)
class Page:
    rows: list[dict[str, Any]]
    next: str | None  # the cursor for the following page; None on the last one


def _page(rows: list[asyncpg.Record], request: PageRequest, key: tuple[str, ...]) -> Page:
    more = len(rows) > request.limit
    kept = [dict(row) for row in rows[: request.limit]]
    cursor = encode_cursor(tuple(kept[-1][k] for k in key)) if more else None
    return Page(kept, cursor)


# --- segments ----------------------------------------------------------------------------


async def segment_exists(conn: asyncpg.Connection | asyncpg.Pool, segment_id: str) -> bool:
    return bool(
        await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM segments WHERE segment_id = $1)", segment_id
        )
    )


async def segment_customers(
    conn: asyncpg.Connection | asyncpg.Pool, *, segment_id: str, request: PageRequest
) -> Page:
    """Members of a segment by customer id, with when each entered."""
    after = request.after[0] if request.after else None
    rows = await conn.fetch(
        "SELECT customer_id, entered_at FROM segment_memberships"
        " WHERE segment_id = $1 AND ($2::text IS NULL OR customer_id > $2)"
        " ORDER BY customer_id LIMIT $3",
        segment_id,
        after,
        request.limit + 1,
    )
    return _page(rows, request, ("customer_id",))


# --- journeys ----------------------------------------------------------------------------


@dataclass(frozen=True)
class JourneyPlaces:
    """Where a journey's customers can be: the active plan's stages, and every stage and
    waiting step of the versions customers still run on."""

    active_stages: list[str]
    stages: frozenset[str]
    waiting_steps: frozenset[str]
    other_steps: dict[str, str]  # step id -> kind, for steps no one waits at


def places(active: Plan, running_on: list[Plan]) -> JourneyPlaces:
    stages: set[str] = set()
    waiting: set[str] = set()
    others: dict[str, str] = {}
    for plan in [active, *running_on]:
        for stage in plan.stages:
            stages.add(stage.name)
            for step in walk(stage.steps):
                if is_waiting(step):
                    waiting.add(step.id)
                else:
                    others.setdefault(step.id, step.kind)
    return JourneyPlaces(
        active_stages=[stage.name for stage in active.stages],
        stages=frozenset(stages),
        waiting_steps=frozenset(waiting),
        other_steps={k: v for k, v in others.items() if k not in waiting},
    )


async def running_versions(conn: asyncpg.Connection | asyncpg.Pool, journey_id: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT version FROM journey_runs WHERE journey_id = $1"
        " AND status = ANY($2::text[])",
        journey_id,
        list(RUNNING),
    )
    return [row["version"] for row in rows]


def _quote(value: str) -> str:
    # Visibility queries are text: quoting keeps an id from bending the query.
    return value.replace("\\", "\\\\").replace("'", "\\'")


async def workflows_at_step(temporal: Client, *, journey_id: str, step: str) -> set[str]:
    """Workflow ids of the journey's running runs that wait at ``step`` (visibility)."""
    query = (
        f"{JOURNEY_ID.name} = '{_quote(journey_id)}' AND {JOURNEY_STEP.name} = '{_quote(step)}'"
        " AND ExecutionStatus = 'Running'"
    )
    return {execution.id async for execution in temporal.list_workflows(query)}


async def journey_customers(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    request: PageRequest,
    stage: str | None = None,
    workflow_ids: set[str] | None = None,
) -> Page:
    """Customers with a running run of the journey, optionally in one stage and limited to
    some runs (those Temporal lists at a step)."""
    after_customer, after_workflow = request.after if request.after else (None, None)
    rows = await conn.fetch(
        "SELECT customer_id, workflow_id, version, stage, status, entered_at FROM journey_runs"
        " WHERE journey_id = $1 AND status = ANY($2::text[])"
        "   AND ($3::text IS NULL OR stage = $3)"
        "   AND ($4::text[] IS NULL OR workflow_id = ANY($4::text[]))"
        "   AND ($5::text IS NULL OR (customer_id, workflow_id) > ($5, $6::text))"
        " ORDER BY customer_id, workflow_id LIMIT $7",
        journey_id,
        list(RUNNING),
        stage,
        sorted(workflow_ids) if workflow_ids is not None else None,
        after_customer,
        after_workflow,
        request.limit + 1,
    )
    return _page(rows, request, ("customer_id", "workflow_id"))
