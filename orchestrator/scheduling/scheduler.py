"""The scheduler: fires scheduled entries and admits the audience through the entry rules.

Each firing is claimed as a row (``schedule_firings``) before the audience is scanned, so
several workers never run it twice; entries are keyed by journey, firing and customer, so a
firing resumed after a crash admits nobody twice. After downtime only the latest missed
firing runs: a weekly newsletter should not go out five times on restart.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import asyncpg

from journeyman.orchestrator.ingest import admit
from journeyman.orchestrator.storage import active_plans, behaviour
from journeyman.workflows import expressions
from journeyman.workflows.plan import Plan, Schedule

from .cron import Cron

log = logging.getLogger(__name__)

BATCH = 500
POLL_SECONDS = 15.0


def due_times(schedule: Schedule, since: datetime, now: datetime) -> datetime | None:
    """The latest firing in (since, now], if any."""
    if schedule.at is not None:
        return schedule.at if since < schedule.at <= now else None
    if schedule.cron is None:
        return None
    cron, zone = Cron.parse(schedule.cron), ZoneInfo(schedule.timezone)
    latest: datetime | None = None
    moment = cron.next_after(since, zone)
    while moment is not None and moment <= now:
        latest = moment
        moment = cron.next_after(moment, zone)
    return latest


class Scheduler:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def run_forever(self) -> None:
        while True:
            try:
                await self.tick()
            except asyncio.CancelledError:
                raise
            except Exception:  # survive database restarts; the next tick tries again
                log.exception("scheduler tick failed")
            await asyncio.sleep(POLL_SECONDS)

    async def tick(self, now: datetime | None = None) -> int:
        """Fire what is due; returns how many customers were admitted."""
        moment = now or datetime.now(UTC)
        active, _ = await active_plans(self._pool)
        admitted = 0
        for plan in active:
            if plan.entry.schedule is None:
                continue
            fire_at = await self._claim(plan, plan.entry.schedule, moment)
            if fire_at is not None:
                admitted += await self.fire(plan, fire_at, moment)
        for plan, fire_at in await self._unfinished(active):
            admitted += await self.fire(plan, fire_at, moment)
        return admitted

    async def _claim(self, plan: Plan, schedule: Schedule, now: datetime) -> datetime | None:
        since = await self._pool.fetchval(
            "SELECT greatest(max(f.fire_at), min(v.deployed_at))"
            " FROM journey_versions v LEFT JOIN schedule_firings f USING (journey_id)"
            " WHERE v.journey_id = $1 AND v.version = $2",
            plan.journey_id,
            plan.version,
        )
        fire_at = due_times(schedule, since, now)
        if fire_at is None:
            return None
        claimed: datetime | None = await self._pool.fetchval(
            "INSERT INTO schedule_firings (journey_id, fire_at, version) VALUES ($1, $2, $3)"
            " ON CONFLICT DO NOTHING RETURNING fire_at",
            plan.journey_id,
            fire_at,
            plan.version,
        )
        return claimed

    async def _unfinished(self, active: list[Plan]) -> list[tuple[Plan, datetime]]:
        by_id = {plan.journey_id: plan for plan in active}
        rows = await self._pool.fetch(
            "SELECT journey_id, fire_at FROM schedule_firings"
            " WHERE finished_at IS NULL AND started_at < now() - interval '5 minutes'"
        )
        return [(by_id[r["journey_id"]], r["fire_at"]) for r in rows if r["journey_id"] in by_id]

    async def fire(self, plan: Plan, fire_at: datetime, now: datetime) -> int:
        """Admit every profile in the audience, in batches, through the entry rules."""
        schedule = plan.entry.schedule
        assert schedule is not None
        audience = expressions.parse(schedule.audience) if schedule.audience else None
        needs = expressions.needs(audience) if audience is not None else None
        admitted, after = 0, ""
        while True:
            rows = await self._pool.fetch(
                "SELECT customer_id FROM profiles WHERE customer_id > $1"
                " ORDER BY customer_id LIMIT $2",
                after,
                BATCH,
            )
            if not rows:
                break
            for row in rows:
                customer_id = row["customer_id"]
                if audience is not None and needs is not None:
                    async with self._pool.acquire() as conn:
                        context = await behaviour.load_context(
                            conn, customer_id=customer_id, needs=needs, event={}, now=now
                        )
                    if not expressions.evaluate(audience, context):
                        continue
                result = await admit(
                    self._pool,
                    plan=plan,
                    customer_id=customer_id,
                    properties={"scheduled_at": fire_at.isoformat()},
                    message_id=f"schedule/{plan.journey_id}/{fire_at.isoformat()}/{customer_id}",
                )
                admitted += int(result.entered)
            after = rows[-1]["customer_id"]
        await self._pool.execute(
            "UPDATE schedule_firings SET finished_at = now(), admitted = admitted + $3"
            " WHERE journey_id = $1 AND fire_at = $2",
            plan.journey_id,
            fire_at,
            admitted,
        )
        log.info("scheduled entry of %s at %s admitted %d", plan.journey_id, fire_at, admitted)
        return admitted
