"""Journey versions in flight: who waits where, and explicit migrations between versions.

Which version a run is on comes from Postgres (``journey_runs``, kept current by the run's
transitions); the step it waits at comes from Temporal's visibility (the ``JourneyStep``
search attribute the workflow sets at each wait). A migration is previewed first, then
applied by signalling each movable run, and reported from what the runs then recorded.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from typing import Any

import asyncpg
from temporalio.client import Client

from journeyman.workflows.inputs import MIGRATE_SIGNAL, MigrateInput
from journeyman.workflows.plan import Plan, walk
from journeyman.workflows.program import is_waiting
from journeyman.workflows.search_attributes import JOURNEY_STAGE, JOURNEY_STEP

from .storage import load_plan


@dataclass(frozen=True)
class Waiting:
    workflow_id: str
    version: str
    stage: str | None
    step: str | None


async def waiting_runs(pool: asyncpg.Pool, temporal: Client, journey_id: str) -> list[Waiting]:
    """Every running run of a journey, with its version and the step it waits at."""
    versions = {
        row["workflow_id"]: row["version"]
        for row in await pool.fetch(
            "SELECT workflow_id, version FROM journey_runs WHERE journey_id = $1"
            " AND status IN ('entering', 'active')",
            journey_id,
        )
    }
    found: list[Waiting] = []
    query = f"JourneyId = '{_quote(journey_id)}' AND ExecutionStatus = 'Running'"
    async for execution in temporal.list_workflows(query):
        version = versions.get(execution.id)
        if version is None:
            continue
        attributes = execution.typed_search_attributes
        found.append(
            Waiting(
                workflow_id=execution.id,
                version=version,
                stage=attributes.get(JOURNEY_STAGE),
                step=attributes.get(JOURNEY_STEP),
            )
        )
    return found


def _quote(value: str) -> str:
    # Journey ids are [a-z0-9_-]; quoting anyway keeps a visibility query from being bent.
    return value.replace("\\", "\\\\").replace("'", "\\'")


def customers_per_step(runs: list[Waiting], version: str) -> dict[str, int]:
    return dict(Counter(run.step for run in runs if run.version == version and run.step))


@dataclass
class MigrationPlan:
    """What a migration would do: per old step, where its customers go or why they stay."""

    journey_id: str
    to_version: str
    steps: dict[str, str]  # old step id -> new step id (explicit and implied)
    moves: dict[str, int] = field(default_factory=dict)  # "old -> new" -> customers
    stays: dict[str, int] = field(default_factory=dict)  # reason -> customers
    workflow_ids: list[str] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        data = asdict(self)
        data["customers"] = len(self.workflow_ids)
        del data["workflow_ids"]
        return data


class MigrationError(ValueError):
    """A migration request that cannot be right whatever the runs do (bad version or step)."""


def plan_migration(
    runs: list[Waiting], old_plans: dict[str, Plan], new: Plan, mapping: dict[str, str]
) -> MigrationPlan:
    new_ids = {step.id for stage in new.stages for step in walk(stage.steps)}
    unknown = sorted(target for target in mapping.values() if target not in new_ids)
    if unknown:
        raise MigrationError(f"not steps of version {new.version}: {', '.join(unknown)}")
    result = MigrationPlan(new.journey_id, new.version, dict(mapping))
    for run in runs:
        if run.version == new.version:
            continue
        old = old_plans.get(run.version)
        step = _find(old, run.step) if old is not None and run.step else None
        if step is None or not is_waiting(step):
            reason = "not waiting at a step"
        else:
            target = mapping.get(step.id, step.id)
            if target in new_ids:
                result.steps.setdefault(step.id, target)
                key = f"{step.id} -> {target}"
                result.moves[key] = result.moves.get(key, 0) + 1
                result.workflow_ids.append(run.workflow_id)
                continue
            reason = f"step {step.id} has no counterpart (map it with {step.id}=NEW_STEP)"
        result.stays[reason] = result.stays.get(reason, 0) + 1
    return result


def _find(plan: Plan, step_id: str) -> Any:
    try:
        return plan.step(step_id)
    except KeyError:
        return None


async def preview(
    pool: asyncpg.Pool,
    temporal: Client,
    journey_id: str,
    to_version: str,
    mapping: dict[str, str],
) -> MigrationPlan:
    new = await _plan(pool, journey_id, to_version)
    runs = await waiting_runs(pool, temporal, journey_id)
    old_plans = {v: await _plan(pool, journey_id, v) for v in {r.version for r in runs}}
    return plan_migration(runs, old_plans, new, mapping)


async def _plan(pool: asyncpg.Pool, journey_id: str, version: str) -> Plan:
    try:
        return await load_plan(pool, journey_id=journey_id, version=version)
    except KeyError:
        raise MigrationError(f"journey {journey_id!r} has no version {version!r}") from None


async def apply(pool: asyncpg.Pool, temporal: Client, planned: MigrationPlan) -> int:
    """Record the migration and signal every movable run; returns the migration's id."""
    migration_id: int = await pool.fetchval(
        "INSERT INTO journey_migrations (journey_id, from_version, to_version, steps, report)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        planned.journey_id,
        "*",
        planned.to_version,
        planned.steps,
        {"planned": planned.summary(), "workflow_ids": planned.workflow_ids},
    )
    request = MigrateInput(version=planned.to_version, steps=planned.steps)
    for workflow_id in planned.workflow_ids:
        # A run that ended meanwhile simply is not moved; the report shows it.
        try:
            await temporal.get_workflow_handle(workflow_id).signal(MIGRATE_SIGNAL, request)
        except Exception:
            continue
    return migration_id


async def report(pool: asyncpg.Pool, journey_id: str, migration_id: int) -> dict[str, Any]:
    """What became of a migration: how many of the signalled runs are now on the new version."""
    row = await pool.fetchrow(
        "SELECT to_version, steps, report, requested_at FROM journey_migrations"
        " WHERE id = $1 AND journey_id = $2",
        migration_id,
        journey_id,
    )
    if row is None:
        raise KeyError(migration_id)
    stored = row["report"] if isinstance(row["report"], dict) else json.loads(row["report"])
    ids: list[str] = stored.get("workflow_ids", [])
    moved = await pool.fetchval(
        "SELECT count(*) FROM journey_runs WHERE workflow_id = ANY($1) AND version = $2",
        ids,
        row["to_version"],
    )
    return {
        "id": migration_id,
        "journey_id": journey_id,
        "to_version": row["to_version"],
        "requested_at": row["requested_at"].isoformat(),
        "planned": stored.get("planned", {}),
        "signalled": len(ids),
        "moved": int(moved),
        "not_moved": len(ids) - int(moved),
    }
