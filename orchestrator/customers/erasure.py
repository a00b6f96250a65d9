"""Erasure (the right to be forgotten): a customer and all their ids, gone from the engine.

What goes, in one Postgres transaction: the profile (traits, consent), every event and the
outbox rows made from them, metrics, segment memberships, aliases and recorded merges,
experiment assignments, stage transitions and journey runs. Running journeys end first:
each run's workflow is deleted in Temporal, which stops it at once and drops its history
(the events it was signalled, the profile reads of its activities), and the run is counted
as an exit from its stage so the funnel stays exact. Finished runs' histories are deleted too.

What stays, on purpose: the delivery ledger rows of the customer's messages, with their
recipient and subject blanked. A row says that a message went out (journey, step, channel,
status, time, the customer id it was counted under), which is what frequency caps and
journey throttles count, and what keeps "no customer gets the same message twice" true for
a send that is still being retried; the address and the subject are the personal part.

Deleting a running workflow rather than terminating it matters for coming back: journeys
start runs with a reject-duplicate id policy and a ``once`` run's workflow id is the
customer's id, so a terminated run's closed history would refuse the new customer's run
until Temporal's retention removed it. Deleting a running execution is immediate; deleting a
closed one is queued by Temporal and completes shortly after.

An ``erasures`` row records that it happened: a SHA-256 digest of the id (so a later request
can be matched, and never read back as the id) and the counts of what went.
"""

from __future__ import annotations

import asyncio
import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DeleteWorkflowExecutionRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from journeyman.orchestrator.inapp import storage as inapp_storage
from journeyman.orchestrator.storage import record_transition

from .view import Identity, identify

RUNNING = ("entering", "active")
RPC_TIMEOUT = timedelta(seconds=5)
# Concurrent Temporal calls per erasure: a customer has a handful of runs, rarely more.
TEMPORAL_CONCURRENCY = 16
VISIBILITY_CHUNK = 100


class TemporalRequired(RuntimeError):
    """The customer has journey runs and Temporal cannot end them now; nothing was erased."""


@dataclass(frozen=True)
class Erasure:
    id: int
    customer_hash: str
    erased: dict[str, int]
    temporal: dict[str, int] = field(default_factory=dict)
    erased_at: datetime | None = None


def customer_hash(customer_id: str) -> str:
    """The digest an erasure is recorded under; ids are often guessable (an email), so this
    identifies a repeated request, it does not make the id anonymous."""
    return hashlib.sha256(customer_id.encode("utf-8")).hexdigest()


async def erased_at(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> datetime | None:
    """When an id was last erased (matched by its digest), if ever."""
    found: datetime | None = await conn.fetchval(
        "SELECT max(erased_at) FROM erasures WHERE customer_hash = $1", customer_hash(customer_id)
    )
    return found


async def erase(
    pool: asyncpg.Pool, requested_id: str, *, temporal: Client | None, temporal_problem: str
) -> Erasure | None:
    """Erase the customer ``requested_id`` stands for (it may be an alias); None when unknown.

    ``temporal`` is None when Temporal is not configured or unreachable (``temporal_problem``
    says which); a customer with journey runs then raises TemporalRequired, erasing nothing,
    since their running workflows would go on sending and recording.
    """
    found = await identify(pool, requested_id)
    if found is None:
        return None
    runs = await pool.fetch(
        "SELECT workflow_id, status FROM journey_runs WHERE customer_id = ANY($1::text[])",
        found.ids,
    )
    if runs and temporal is None:
        raise TemporalRequired(
            f"the customer has journey runs and Temporal is {temporal_problem}: their workflows"
            " cannot be ended, so nothing was erased; try again when Temporal is reachable"
        )
    ended: set[str] = set()
    if temporal is not None:
        running = [row["workflow_id"] for row in runs if row["status"] in RUNNING]
        problems = await _delete_executions(temporal, [(wid, "") for wid in running], ended)
        if problems:
            raise TemporalRequired(
                f"{len(problems)} of the customer's running journeys could not be ended"
                f" ({problems[0]}); {len(ended)} were, nothing else was erased; try again"
            )
    erased = await _erase_rows(pool, found)
    if erased is None:
        return None  # erased by a concurrent request meanwhile
    erasure, all_runs, still_running = erased
    if temporal is None:
        return erasure
    # Runs that began between the first look and the transaction end here (best effort:
    # Postgres no longer knows them either way).
    late = [(wid, "") for wid in still_running if wid not in ended]
    await _delete_executions(temporal, late, ended)
    histories, failures = await _delete_histories(temporal, all_runs)
    temporal_counts = {
        "runs_ended": len(ended),
        "histories_deleted": histories,
        "histories_not_deleted": failures,
    }
    # The record says what Temporal did too; the Postgres part is committed either way.
    await pool.execute(
        "UPDATE erasures SET erased = erased || jsonb_build_object('temporal', $2::jsonb)"
        " WHERE id = $1",
        erasure.id,
        temporal_counts,
    )
    return Erasure(
        id=erasure.id,
        customer_hash=erasure.customer_hash,
        erased=erasure.erased,
        temporal=temporal_counts,
        erased_at=erasure.erased_at,
    )


# --- Postgres ----------------------------------------------------------------------------


async def _erase_rows(
    pool: asyncpg.Pool, found: Identity
) -> tuple[Erasure, list[str], list[str]] | None:
    """Every row, in one transaction; the workflow ids of all the customer's runs, and of
    those that were still running."""
    async with pool.acquire() as conn, conn.transaction():
        # The same per-customer locks identity merges take: a merge into this customer
        # waits for the erasure, and the ids resolved below are final for it.
        for customer_id in sorted(found.ids):
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", customer_id)
        identity = await identify(conn, found.requested_id)
        if identity is None:
            return None
        ids = identity.ids
        for customer_id in sorted(set(ids) - set(found.ids)):
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext($1))", customer_id)
        counts: dict[str, int] = {}
        runs = await conn.fetch(
            "SELECT workflow_id, journey_id, version, customer_id, stage, status, holdout"
            " FROM journey_runs WHERE customer_id = ANY($1::text[])"
            " ORDER BY workflow_id FOR UPDATE",
            ids,
        )
        exited = 0
        for run in runs:
            if run["status"] not in RUNNING or run["stage"] is None:
                continue  # finished, or never counted into a stage
            # The run leaves its stage as an exit, so the stage's "in it now" drops and the
            # funnel's entered = converted + moved on + exited + ... still adds up.
            exited += await record_transition(
                conn,
                run_key=f"{run['workflow_id']}@erased/{uuid.uuid4()}",
                seq=1,
                journey_id=run["journey_id"],
                version=run["version"],
                customer_id=run["customer_id"],
                workflow_id=run["workflow_id"],
                from_stage=run["stage"],
                to_stage=None,
                outcome="exited",
                holdout=run["holdout"],
                reason="erasure",
            )
        counts["runs_exited"] = exited
        counts["outbox"] = await _affected(
            conn,
            "DELETE FROM outbox WHERE customer_id = ANY($1::text[])"
            " OR event_id IN (SELECT id FROM events WHERE customer_id = ANY($1::text[]))",
            ids,
        )
        counts["events"] = await _affected(
            conn, "DELETE FROM events WHERE customer_id = ANY($1::text[])", ids
        )
        counts["profile"] = await _affected(
            conn, "DELETE FROM profiles WHERE customer_id = ANY($1::text[])", ids
        )
        counts["metrics"] = await _affected(
            conn, "DELETE FROM customer_metrics WHERE customer_id = ANY($1::text[])", ids
        )
        counts["segment_memberships"] = await _affected(
            conn, "DELETE FROM segment_memberships WHERE customer_id = ANY($1::text[])", ids
        )
        counts["aliases"] = await _affected(
            conn,
            "DELETE FROM customer_aliases WHERE customer_id = ANY($1::text[])"
            " OR alias = ANY($1::text[])",
            ids,
        )
        counts["merges"] = await _affected(
            conn,
            "DELETE FROM customer_merges WHERE from_id = ANY($1::text[])"
            " OR into_id = ANY($1::text[])",
            ids,
        )
        counts["in_app_messages"] = await inapp_storage.erase(conn, customer_ids=ids)
        counts["subscription_choices"] = await _affected(
            conn, "DELETE FROM subscription_preferences WHERE customer_id = ANY($1::text[])", ids
        )
        # Suppressions of the customer go; those of an address (a bounce, a spam complaint)
        # stay: they protect the address, whoever it belongs to next.
        counts["suppressions"] = await _affected(
            conn,
            "DELETE FROM suppressions WHERE customer_id = ANY($1::text[]) AND address IS NULL",
            ids,
        )
        await conn.execute(
            "UPDATE suppressions s SET customer_id = NULL WHERE customer_id = ANY($1::text[])"
            " AND NOT EXISTS (SELECT 1 FROM suppressions t WHERE t.customer_id IS NULL"
            " AND t.channel = s.channel AND t.address = s.address"
            " AND coalesce(t.group_key, '') = coalesce(s.group_key, '') AND t.reason = s.reason)",
            ids,
        )
        # What is left duplicates an address suppression already kept without an owner.
        await conn.execute("DELETE FROM suppressions WHERE customer_id = ANY($1::text[])", ids)
        counts["experiment_assignments"] = await _affected(
            conn, "DELETE FROM experiment_assignments WHERE customer_id = ANY($1::text[])", ids
        )
        # The ledger row stays (caps, throttles and the no-second-send guarantee count it);
        # only what it says about the person goes: the address and the subject line.
        counts["deliveries_blanked"] = await _affected(
            conn,
            "UPDATE deliveries SET recipient = NULL, subject = NULL, updated_at = now()"
            " WHERE customer_id = ANY($1::text[])"
            " AND (recipient IS NOT NULL OR subject IS NOT NULL)",
            ids,
        )
        # The per-stage KPI counters keep their totals; the per-customer trail goes.
        counts["stage_transitions"] = await _affected(
            conn, "DELETE FROM stage_transitions WHERE customer_id = ANY($1::text[])", ids
        )
        # Without the runs, a later event under the same id is a new customer: re-entry
        # rules (a ``once`` journey) start afresh for them.
        counts["journey_runs"] = await _affected(
            conn, "DELETE FROM journey_runs WHERE customer_id = ANY($1::text[])", ids
        )
        digest = customer_hash(identity.customer_id)
        row = await conn.fetchrow(
            "INSERT INTO erasures (customer_hash, erased) VALUES ($1, $2) RETURNING id, erased_at",
            digest,
            counts,
        )
        assert row is not None
    erasure = Erasure(id=row["id"], customer_hash=digest, erased=counts, erased_at=row["erased_at"])
    all_runs = [run["workflow_id"] for run in runs]
    running = [run["workflow_id"] for run in runs if run["status"] in RUNNING]
    return erasure, all_runs, running


async def _affected(conn: asyncpg.Connection, statement: str, ids: list[str]) -> int:
    """Rows a DELETE or UPDATE touched, from asyncpg's command status (``DELETE 3``)."""
    status: str = await conn.execute(statement, ids)
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


# --- Temporal ----------------------------------------------------------------------------


async def _delete(temporal: Client, workflow_id: str, run_id: str) -> str:
    """Delete one execution (the latest of the id when ``run_id`` is empty; Temporal
    terminates a running one first): "deleted", "gone" when there was none, else why not."""
    request = DeleteWorkflowExecutionRequest(
        namespace=temporal.namespace,
        workflow_execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
    )
    try:
        await temporal.workflow_service.delete_workflow_execution(
            request, retry=True, timeout=RPC_TIMEOUT
        )
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            return "gone"
        return f"{exc.status.name}: {exc.message}"
    return "deleted"


async def _delete_executions(
    temporal: Client, executions: Iterable[tuple[str, str]], ended: set[str]
) -> list[str]:
    """Delete executions concurrently; adds the workflow ids deleted (or already gone) to
    ``ended`` and returns why the others could not be, one line each."""
    gate = asyncio.Semaphore(TEMPORAL_CONCURRENCY)
    problems: list[str] = []

    async def one(workflow_id: str, run_id: str) -> None:
        async with gate:
            outcome = await _delete(temporal, workflow_id, run_id)
        if outcome in ("deleted", "gone"):
            ended.add(workflow_id)
        else:
            problems.append(outcome)

    await asyncio.gather(*(one(wid, rid) for wid, rid in executions))
    return problems


def _quote(value: str) -> str:
    # Visibility queries are text: quoting keeps an id from bending the query.
    return value.replace("\\", "\\\\").replace("'", "\\'")


async def _delete_histories(temporal: Client, workflow_ids: list[str]) -> tuple[int, int]:
    """Delete every execution still stored under the runs' workflow ids (finished runs, and
    the earlier links of runs that continued as new): (deleted, could not be deleted)."""
    executions: list[tuple[str, str]] = []
    failures = 0
    for start in range(0, len(workflow_ids), VISIBILITY_CHUNK):
        chunk = workflow_ids[start : start + VISIBILITY_CHUNK]
        listed = ", ".join(f"'{_quote(wid)}'" for wid in chunk)
        try:
            async for execution in temporal.list_workflows(f"WorkflowId IN ({listed})"):
                # Running ones were ended above; one running now is a new customer's run
                # under the same id (they came back meanwhile), which is not ours to delete.
                if execution.status != WorkflowExecutionStatus.RUNNING:
                    executions.append((execution.id, execution.run_id or ""))
        except RPCError:
            failures += len(chunk)
    gate = asyncio.Semaphore(TEMPORAL_CONCURRENCY)

    async def one(workflow_id: str, run_id: str) -> str:
        async with gate:
            return await _delete(temporal, workflow_id, run_id)

    outcomes = await asyncio.gather(*(one(wid, rid) for wid, rid in executions))
    deleted = sum(1 for outcome in outcomes if outcome == "deleted")
    failed = sum(1 for outcome in outcomes if outcome not in ("deleted", "gone"))
    return deleted, failures + failed
