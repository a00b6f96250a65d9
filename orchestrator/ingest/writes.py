"""The ingest transaction's writes, each one statement however many rows it carries.

All the rows of a statement travel as one parameter, a JSON array of arrays (``json_rows``):
a batch of a hundred messages costs the round trip of one, orjson writes the whole of it in
one call, and Postgres parses it once.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final, Literal

import asyncpg
import orjson

from journeyman.orchestrator.customers import metrics
from journeyman.orchestrator.storage.outbox import OUTBOX_CHANNEL

from .segment import IncomingEvent


def _isoformat(value: Any) -> str:
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def json_rows(rows: Sequence[Sequence[Any]]) -> str:
    """Rows as one JSON array of arrays: the single parameter of a multi-row statement.

    Postgres reads it as ``jsonb`` once, and each statement takes its columns out by
    position (``x->>0``, or ``x->4`` for a JSON column, no second parse). Times are
    ISO-8601 text (one without a zone is UTC, as everywhere in ingest). What orjson cannot
    write (an integer beyond 64 bits, a non-text key) is written by ``json``, as the
    connection's codec would.
    """
    try:
        return orjson.dumps(rows, option=orjson.OPT_NAIVE_UTC).decode()
    except TypeError:
        return json.dumps(rows, default=_isoformat)


# Each row's customer is the one its id stands for now (``identity.canonical``, in SQL).
_INSERT_EVENTS: Final = """
INSERT INTO events (message_id, type, customer_id, event, properties, traits, context,
    occurred_at, user_id, anonymous_id, sent_at, source_id, received_at, group_id, previous_id)
SELECT x->>0, x->>1,
    coalesce((SELECT a.customer_id FROM customer_aliases a WHERE a.alias = x->>2), x->>2),
    x->>3, x->4, x->5, x->6, (x->>7)::timestamptz, x->>8, x->>9, (x->>10)::timestamptz,
    x->>11, coalesce((x->>12)::timestamptz, now()), x->>13, x->>14
FROM jsonb_array_elements($1::text::jsonb) WITH ORDINALITY AS rows(x, n)
ORDER BY n
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id, id, customer_id
"""


async def insert_events(
    conn: asyncpg.Connection, events: Sequence[IncomingEvent]
) -> list[tuple[IncomingEvent, int]]:
    """Store events (their message ids distinct), in order, each for the customer its id
    stands for now; (event, event id) of those stored now, the event for that customer.

    The others were stored before (by another request, or by one still in flight, which
    this waits for).
    """
    if not events:
        return []
    rows = [
        (
            e.message_id,
            e.type,
            e.customer_id,
            e.event,
            e.properties,
            e.traits,
            e.context,
            e.occurred_at,
            e.user_id,
            e.anonymous_id,
            e.sent_at,
            e.source_id,
            e.received_at,
            e.group_id,
            e.previous_id,
        )
        for e in events
    ]
    stored = {
        row["message_id"]: (row["id"], row["customer_id"])
        for row in await conn.fetch(_INSERT_EVENTS, json_rows(rows))
    }
    out = []
    for event in events:
        found = stored.get(event.message_id)
        if found is None:
            continue
        event_id, customer_id = found
        if customer_id != event.customer_id:
            event = event.model_copy(update={"customer_id": customer_id})
        out.append((event, event_id))
    return out


# Most messages set nothing on the profile (a track): it is made if need be, else left as
# it is (no new row version to write, index and vacuum); ``updated_at`` is when traits or
# consent last changed.
_UPSERT_PROFILES: Final = """
INSERT INTO profiles (customer_id, traits, consent)
SELECT x->>0, x->1, x->2 FROM jsonb_array_elements(:rows::text::jsonb) AS rows(x)
ON CONFLICT (customer_id) DO UPDATE SET
    traits = CASE WHEN excluded.traits = '{}' THEN profiles.traits
        ELSE profiles.traits || excluded.traits END,
    consent = CASE WHEN excluded.consent = '{}' THEN profiles.consent
        ELSE profiles.consent || excluded.consent END,
    updated_at = now()
WHERE excluded.traits <> '{}' OR excluded.consent <> '{}'
"""

_INSERT_RUNS: Final = """
INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, entry_key)
SELECT x->>0, x->>1, x->>2, x->>3, x->>4
FROM jsonb_array_elements(:rows::text::jsonb) AS rows(x)
ON CONFLICT DO NOTHING RETURNING workflow_id
"""

# In the order given: the dispatcher delivers in id order.
_INSERT_OUTBOX: Final = """
INSERT INTO outbox (event_id, journey_id, version, customer_id, workflow_id, payload)
SELECT (x->>0)::bigint, x->>1, x->>2, x->>3, x->>4, x->5
FROM jsonb_array_elements(:rows::text::jsonb) WITH ORDINALITY AS rows(x, n) ORDER BY n
"""


@dataclass(slots=True)
class ProfileUpdate:
    """What a transaction's events set on one profile, merged in the events' order."""

    traits: Mapping[str, Any]
    consent: Mapping[str, Any]


class ConcurrentEntry(Exception):
    """Another transaction entered a customer into a journey while this one was routing."""

    def __init__(self, workflow_ids: list[str]) -> None:
        super().__init__(f"runs entered concurrently: {', '.join(workflow_ids)}")
        self.workflow_ids = workflow_ids


@dataclass(frozen=True, slots=True)
class NewRun:
    """A journey run entered by this transaction (its row is written with the outbox rows)."""

    journey_id: str
    customer_id: str
    version: str
    workflow_id: str
    entry_key: str | None


@dataclass(frozen=True, slots=True)
class OutboxRow:
    """An event on its way to one run."""

    event_id: int
    journey_id: str
    version: str
    customer_id: str
    workflow_id: str
    payload: dict[str, Any]


@dataclass
class Writes:
    """What a chunk of messages writes once everything about it is known: ``write``."""

    profiles: dict[str, ProfileUpdate] = field(default_factory=dict)
    metrics: str | None = None  # ``MetricsUpdate.rows``
    runs: list[NewRun] = field(default_factory=list)
    outbox: list[OutboxRow] = field(default_factory=list)

    def profile(
        self, customer_id: str, traits: Mapping[str, Any], consent: Mapping[str, Any]
    ) -> None:
        """Merge traits and consent into the customer's profile (creating it if need be).

        The dicts given are kept, never changed: a merge makes a new one.
        """
        update = self.profiles.get(customer_id)
        if update is None:
            self.profiles[customer_id] = ProfileUpdate(traits, consent)
            return
        # ``a || b`` in SQL is a shallow merge where b wins: the events' merge in order.
        if traits:
            update.traits = {**update.traits, **traits}
        if consent:
            update.consent = {**update.consent, **consent}


def _profile_rows(profiles: Mapping[str, ProfileUpdate]) -> str:
    # In customer order, so concurrent transactions take the rows' locks in the same order.
    return json_rows([(c, p.traits, p.consent) for c, p in sorted(profiles.items())])


def _outbox_rows(rows: Iterable[OutboxRow]) -> str:
    return json_rows(
        [
            (r.event_id, r.journey_id, r.version, r.customer_id, r.workflow_id, r.payload)
            for r in rows
        ]
    )


async def write(
    conn: asyncpg.Connection, writes: Writes, *, conflicts: Literal["raise", "skip"]
) -> int:
    """Write profiles, metrics, new runs and outbox rows in one statement (each part a
    data-modifying CTE), and wake the dispatcher if rows went to the outbox; the outbox
    rows written.

    A run entered first by a concurrent transaction raises ``ConcurrentEntry`` (the caller
    retries the transaction, which then routes to that run). With ``conflicts="skip"`` the
    runs are written first, and the rows bound for a run that could not be are dropped
    instead, as if the customer had not been let in.
    """
    parts: list[tuple[str, str, str]] = []  # (name, statement, its JSON rows)
    if writes.profiles:
        parts.append(("written_profiles", _UPSERT_PROFILES, _profile_rows(writes.profiles)))
    if writes.metrics is not None:
        parts.append(("written_metrics", metrics.upsert_sql(":rows"), writes.metrics))
    runs = writes.runs
    outbox = writes.outbox
    if conflicts == "skip" and runs:
        entered = await _run_statement(conn, [], runs)
        outbox = [row for row in outbox if row.workflow_id not in _lost(runs, entered)]
        runs = []
    if outbox:
        parts.append(("written_outbox", _INSERT_OUTBOX, _outbox_rows(outbox)))
    entered = await _run_statement(conn, parts, runs, notify=bool(outbox))
    lost = _lost(runs, entered)
    if lost:
        raise ConcurrentEntry(sorted(lost))
    return len(outbox)


def _lost(runs: Sequence[NewRun], entered: set[str]) -> set[str]:
    return {run.workflow_id for run in runs if run.workflow_id not in entered}


async def _run_statement(
    conn: asyncpg.Connection,
    parts: list[tuple[str, str, str]],
    runs: Sequence[NewRun],
    *,
    notify: bool = False,
) -> set[str]:
    """One statement of the ``parts`` as CTEs, inserting ``runs`` last; the workflow ids of
    the runs inserted."""
    args: list[str] = []
    ctes = []
    for name, statement, rows in parts:
        args.append(rows)
        ctes.append(f"{name} AS ({statement.replace(':rows', f'${len(args)}')})")
    if runs:
        rows = json_rows(
            [(r.journey_id, r.customer_id, r.version, r.workflow_id, r.entry_key) for r in runs]
        )
        args.append(rows)
        ctes.append(f"written_runs AS ({_INSERT_RUNS.replace(':rows', f'${len(args)}')})")
        main = "SELECT workflow_id FROM written_runs"
    else:
        main = "SELECT NULL::text AS workflow_id WHERE false"
    if notify:
        # Postgres delivers the notification only if the transaction commits.
        args.append(OUTBOX_CHANNEL)
        main += f" UNION ALL SELECT pg_notify(${len(args)}, '')::text"
    if not ctes and not notify:
        return set()
    sql = (f"WITH {', '.join(ctes)} " if ctes else "") + main
    return {row["workflow_id"] for row in await conn.fetch(sql, *args) if row["workflow_id"]}


async def insert_outbox(conn: asyncpg.Connection, rows: Sequence[OutboxRow]) -> int:
    """Write outbox rows in the order given and wake the dispatcher; the rows written."""
    return await write(conn, Writes(outbox=list(rows)), conflicts="skip")
