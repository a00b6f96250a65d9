"""Live numbers for open journey pages, as server-sent events.

One *feed* per journey (and version filter) polls the counters once a second, however many
pages watch it, and remembers the latest numbers; each open page's stream sends them only
when they changed, and a comment line as a heartbeat when nothing did, so proxies keep the
connection open. The feed stops polling when the last page closes.

The stream's messages::

    retry: 3000                         reconnect after 3 s if the connection drops

    event: numbers                      the page's numbers, by live key
    data: {"stage:awareness:entered": "12", ..., "layout": "..."}

    : heartbeat

Keys name what they count: ``journey:<field>``, ``stage:<stage>:<field>``, ``funnel:...``
(the bars), ``step:<step id>:<field>`` for a send step's numbers and its KPI
(``kpi_count``, ``kpi_customers``, ``kpi_customers_text``), and ``observed:<id>:<field>`` for
an observed touchpoint's KPI (``formatting``).

``layout`` changes when the drawing itself must change (the busiest drop-off moved to
another stage, another touchpoint became key, a new version is active): the page reloads.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Final

import asyncpg

from journeyman.orchestrator.storage.touchpoint_report import TouchpointKpis
from journeyman.workflows.plan import Plan

from . import formatting as fmt
from . import readings

log = logging.getLogger(__name__)

POLL_SECONDS: Final = 1.0
# Touchpoint KPIs read the journey's deliveries and its customers' KPI events: every fifth
# poll is fresh enough.
TOUCHPOINTS_EVERY: Final = 5
HEARTBEAT_SECONDS: Final = 15.0
RETRY_MILLISECONDS: Final = 3000
GONE: Final = "gone"  # the layout of a journey that is no longer deployed

Numbers = dict[str, str]
Reader = Callable[[], Awaitable[Numbers]]


class JourneyReader:
    """Reads one journey's live numbers; keeps the plan and the touchpoints between reads."""

    def __init__(self, pool: asyncpg.Pool, journey_id: str, version: str | None) -> None:
        self.pool, self.journey_id, self.version = pool, journey_id, version
        self._plan: Plan | None = None
        self._touchpoints: list[TouchpointKpis] | None = None
        self._reads = 0

    async def __call__(self) -> Numbers:
        found = await readings.head(self.pool, self.journey_id)
        if found is None:
            return {fmt.LAYOUT_KEY: GONE}
        wanted = self.version or found.active_version
        if self._plan is None or self._plan.version != wanted:
            self._plan = await readings.plan_of(self.pool, self.journey_id, wanted)
            self._touchpoints = None
        if self._plan is None:
            return {fmt.LAYOUT_KEY: GONE}
        if self._touchpoints is None or self._reads % TOUCHPOINTS_EVERY == 0:
            self._touchpoints = await readings.read_touchpoints(self.pool, self._plan, self.version)
        self._reads += 1
        board = await readings.read_board(
            self.pool, self._plan, version=self.version, touchpoint_rows=self._touchpoints
        )
        return readings.page_numbers(board, found.status)


class Feed:
    """The latest numbers of one journey, polled while anyone watches."""

    def __init__(self, read: Reader, *, poll_seconds: float) -> None:
        self._read = read
        self._poll_seconds = poll_seconds
        self._changed = asyncio.Condition()
        self.latest: Numbers | None = None
        self.serial = 0  # how many different readings there have been
        self.watchers = 0
        self.task: asyncio.Task[None] | None = None

    async def poll(self) -> None:
        while True:
            try:
                numbers = await self._read()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the database may be away a moment: keep the last numbers
                log.warning("dashboard live numbers: %s; retrying", type(exc).__name__)
            else:
                if numbers != self.latest:
                    async with self._changed:
                        self.latest = numbers
                        self.serial += 1
                        self._changed.notify_all()
            await asyncio.sleep(self._poll_seconds)

    async def wait(self, seen: int, seconds: float) -> int | None:
        """The serial of a reading newer than ``seen``, or None after ``seconds``."""
        async with self._changed:
            try:
                await asyncio.wait_for(self._changed.wait_for(lambda: self.serial != seen), seconds)
            except TimeoutError:
                return None
            return self.serial


class Feeds:
    """The feeds of one API process, by (journey id, version filter)."""

    def __init__(self, *, poll_seconds: float = POLL_SECONDS) -> None:
        self.poll_seconds = poll_seconds
        self._feeds: dict[tuple[str, str | None], Feed] = {}

    @property
    def watchers(self) -> int:
        """Open streams, over every feed."""
        return sum(feed.watchers for feed in self._feeds.values())

    @property
    def polling(self) -> int:
        """Feeds polling now: one per journey (and version filter) that someone watches."""
        return sum(1 for feed in self._feeds.values() if feed.task and not feed.task.done())

    @contextlib.asynccontextmanager
    async def watch(self, key: tuple[str, str | None], read: Reader) -> AsyncIterator[Feed]:
        feed = self._feeds.get(key)
        if feed is None:
            feed = self._feeds[key] = Feed(read, poll_seconds=self.poll_seconds)
            feed.task = asyncio.create_task(feed.poll(), name=f"dashboard-feed-{key[0]}")
        feed.watchers += 1
        try:
            yield feed
        finally:
            feed.watchers -= 1
            if feed.watchers == 0:
                del self._feeds[key]
                if feed.task is not None:
                    feed.task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await feed.task


def event(numbers: Numbers) -> str:
    return f"event: numbers\ndata: {json.dumps(numbers, separators=(',', ':'))}\n\n"


async def stream(
    feeds: Feeds,
    key: tuple[str, str | None],
    read: Reader,
    *,
    disconnected: Callable[[], Awaitable[bool]],
    heartbeat_seconds: float = HEARTBEAT_SECONDS,
) -> AsyncGenerator[str, None]:
    """The event stream of one open page, until the client goes away."""
    async with feeds.watch(key, read) as feed:
        yield f"retry: {RETRY_MILLISECONDS}\n\n"
        seen, quiet = 0, 0.0
        while True:
            # Short waits, so a client that left is noticed within a second even on servers
            # that only report it when asked.
            serial = await feed.wait(seen, min(1.0, heartbeat_seconds))
            if await disconnected():
                return
            if serial is not None and feed.latest is not None:
                seen, quiet = serial, 0.0
                yield event(feed.latest)
                continue
            quiet += min(1.0, heartbeat_seconds)
            if quiet >= heartbeat_seconds:
                quiet = 0.0
                yield ": heartbeat\n\n"
