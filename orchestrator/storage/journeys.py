"""Deployed journeys: immutable versions keyed by content hash, and the active pointer."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

import asyncpg

from journeyman.workflows.plan import Plan

DEPLOY_CHANNEL = "journeyman_deploy"


@dataclass(frozen=True)
class DeployResult:
    journey_id: str
    version: str
    created: bool  # a version not seen before
    activated: bool  # the active version changed


@dataclass(frozen=True)
class JourneySummary:
    journey_id: str
    name: str
    active_version: str
    versions: list[str]
    updated_at: datetime
    status: str = "active"


async def deploy_plan(conn: asyncpg.Connection, *, plan: Plan, source: str) -> DeployResult:
    """Store a plan's version (once) and make it the active one; running customers keep theirs."""
    async with conn.transaction():
        created = await conn.fetchval(
            "INSERT INTO journey_versions (journey_id, version, name, plan, source)"
            " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            plan.journey_id,
            plan.version,
            plan.name,
            plan.model_dump(mode="json"),
            source,
        )
        previous = await conn.fetchval(
            "SELECT active_version FROM journeys WHERE journey_id = $1 FOR UPDATE", plan.journey_id
        )
        activated = previous != plan.version
        if activated:
            await conn.execute(
                "INSERT INTO journeys (journey_id, active_version) VALUES ($1, $2)"
                " ON CONFLICT (journey_id) DO UPDATE"
                " SET active_version = excluded.active_version, updated_at = now()",
                plan.journey_id,
                plan.version,
            )
            payload = json.dumps({"journey_id": plan.journey_id, "version": plan.version})
            await conn.execute("SELECT pg_notify($1, $2)", DEPLOY_CHANNEL, payload)
    return DeployResult(plan.journey_id, plan.version, bool(created), activated)


async def load_plan(
    conn: asyncpg.Connection | asyncpg.Pool, *, journey_id: str, version: str
) -> Plan:
    """The plan of one version; KeyError when it was never deployed."""
    raw = await conn.fetchval(
        "SELECT plan FROM journey_versions WHERE journey_id = $1 AND version = $2",
        journey_id,
        version,
    )
    if raw is None:
        raise KeyError(f"{journey_id}@{version}")
    return Plan.model_validate(raw)


async def active_plans(conn: asyncpg.Connection | asyncpg.Pool) -> tuple[list[Plan], list[Plan]]:
    """The active plan of each journey admitting customers, and every other deployed version
    (paused and archived journeys only route events to the runs they already have)."""
    rows = await conn.fetch(
        "SELECT v.plan, (j.active_version = v.version AND j.status = 'active') AS active"
        " FROM journey_versions v"
        " JOIN journeys j USING (journey_id) ORDER BY v.journey_id, v.deployed_at"
    )
    active = [Plan.model_validate(r["plan"]) for r in rows if r["active"]]
    others = [Plan.model_validate(r["plan"]) for r in rows if not r["active"]]
    return active, others


async def list_journeys(conn: asyncpg.Connection | asyncpg.Pool) -> list[JourneySummary]:
    rows = await conn.fetch(
        "SELECT j.journey_id, a.name, j.active_version, j.updated_at, j.status,"
        " array_agg(v.version ORDER BY v.deployed_at) AS versions"
        " FROM journeys j JOIN journey_versions a"
        "   ON a.journey_id = j.journey_id AND a.version = j.active_version"
        " JOIN journey_versions v ON v.journey_id = j.journey_id"
        " GROUP BY j.journey_id, a.name, j.active_version, j.updated_at, j.status"
        " ORDER BY j.journey_id"
    )
    return [
        JourneySummary(
            journey_id=r["journey_id"],
            name=r["name"],
            active_version=r["active_version"],
            versions=list(r["versions"]),
            updated_at=r["updated_at"],
            status=r["status"],
        )
        for r in rows
    ]


JourneyStatus = Literal["active", "paused", "archived"]


async def journey_status(conn: asyncpg.Connection | asyncpg.Pool, journey_id: str) -> str | None:
    found: str | None = await conn.fetchval(
        "SELECT status FROM journeys WHERE journey_id = $1", journey_id
    )
    return found


async def set_status(conn: asyncpg.Connection, journey_id: str, status: JourneyStatus) -> bool:
    """Pause, resume (active) or archive a journey; False when it was never deployed."""
    async with conn.transaction():
        changed = await conn.fetchval(
            "UPDATE journeys SET status = $2, updated_at = now() WHERE journey_id = $1"
            " RETURNING true",
            journey_id,
            status,
        )
        if changed:
            # The ingest routers reload their trigger index: paused journeys admit no one.
            payload = json.dumps({"journey_id": journey_id, "status": status})
            await conn.execute("SELECT pg_notify($1, $2)", DEPLOY_CHANNEL, payload)
    return bool(changed)
