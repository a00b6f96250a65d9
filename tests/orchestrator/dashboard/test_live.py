"""Live numbers: the event stream over a real server, sent on change, stopped on leaving."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx

from journeyman.orchestrator.dashboard import Feeds, formatting, readings
from journeyman.orchestrator.dashboard.live import stream

from .conftest import Dash, served
from .seed import EXPECTED, JOURNEY_ID, transitions

ENTERED = formatting.stage_key("awareness", "entered")


class Events:
    """The server-sent events of one open response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self._lines = response.aiter_lines()

    async def next(self, within: float = 10) -> dict[str, str]:
        """The next event's fields (``event``, ``data``, ``retry``; ``comment`` for a heartbeat)."""
        fields: dict[str, str] = {}

        async def read() -> dict[str, str]:
            async for line in self._lines:
                if line == "":
                    if fields:
                        return fields
                    continue
                name, _, value = line.partition(":")
                fields[name or "comment"] = value.removeprefix(" ")
            raise AssertionError("the stream ended")

        return await asyncio.wait_for(read(), within)

    async def numbers(self, within: float = 10) -> dict[str, str]:
        """The next numbers, past the reconnection delay the stream opens with."""
        found = await self.next(within)
        if found == {"retry": "3000"}:
            found = await self.next(within)
        assert found.get("event") == "numbers", found
        data: dict[str, str] = json.loads(found["data"])
        return data


def feeds_of(dash: Dash) -> Feeds:
    feeds: Feeds = dash.app.state.dashboard_feeds
    return feeds


async def eventually(check: Callable[[], bool], what: str, within: float = 5) -> None:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting until {what}")
        await asyncio.sleep(0.05)


async def test_the_stream_sends_the_page_numbers_then_each_change(dash: Dash) -> None:
    version = await dash.seeded()
    page = await readings.read_board(dash.pool, await _plan(dash, version), version=None)
    async with (
        served(dash.app) as url,
        httpx.AsyncClient(base_url=url, headers=dash.admin, timeout=30) as http,
        http.stream("GET", f"/dashboard/journeys/{JOURNEY_ID}/live") as response,
    ):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        assert response.headers["cache-control"] == "no-store"
        events = Events(response)
        assert await events.next() == {"retry": "3000"}
        first = await events.numbers()
        assert first == readings.page_numbers(page, "active")
        assert first[ENTERED] == str(EXPECTED.funnel["awareness"][0])

        # A customer enters while the page is open: the stream says so within seconds.
        started = time.monotonic()
        await transitions(dash.pool, "c8", [(None, "awareness", "entered")], version=version)
        second = await events.numbers(within=5)
        assert time.monotonic() - started < 3
        assert second[ENTERED] == "8"
        assert second[formatting.journey_key("entered")] == "8"
        assert second[formatting.stage_key("awareness", "current")] == "2"
        assert second[formatting.LAYOUT_KEY] == first[formatting.LAYOUT_KEY]
        changed = {k for k in first if first[k] != second[k]}
        assert ENTERED in changed and formatting.LAYOUT_KEY not in changed

        # Pausing the journey changes what the page draws: the layout says so.
        paused = await http.post(f"/api/journeys/{JOURNEY_ID}/pause")
        assert paused.status_code == 200
        third = await events.numbers(within=5)
        assert third[formatting.LAYOUT_KEY].endswith("|paused")
        assert third[formatting.journey_key("status")] == "paused"


async def test_nothing_is_sent_while_nothing_changes() -> None:
    feeds = Feeds(poll_seconds=0.05)

    async def read() -> dict[str, str]:
        return {"layout": "same", "stage:awareness:entered": "7"}

    async def still_here() -> bool:
        return False

    sent: list[str] = []

    async def collect(events: AsyncIterator[str]) -> None:
        async for chunk in events:
            sent.append(chunk)

    task = asyncio.create_task(
        collect(
            stream(feeds, ("spring", None), read, disconnected=still_here, heartbeat_seconds=0.3)
        )
    )
    await asyncio.sleep(1.0)  # about twenty polls, every one the same
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert sent[0] == "retry: 3000\n\n"
    assert [c for c in sent if c.startswith("event:")] == [
        'event: numbers\ndata: {"layout":"same","stage:awareness:entered":"7"}\n\n'
    ]
    heartbeats = [c for c in sent if c == ": heartbeat\n\n"]
    assert len(heartbeats) >= 2
    assert feeds.watchers == 0 and feeds.polling == 0


async def test_a_page_that_leaves_stops_the_polling(dash: Dash) -> None:
    await dash.seeded()
    async with served(dash.app) as url, httpx.AsyncClient(base_url=url, headers=dash.admin) as http:
        async with (
            http.stream("GET", f"/dashboard/journeys/{JOURNEY_ID}/live") as one,
            http.stream("GET", f"/dashboard/journeys/{JOURNEY_ID}/live") as two,
        ):
            await Events(one).numbers()
            await Events(two).numbers()
            feeds = feeds_of(dash)
            # Two pages, one feed: the counters are polled once for both.
            assert (feeds.watchers, feeds.polling) == (2, 1)
        await eventually(lambda: feeds.watchers == 0, "both streams are closed")
        assert feeds.polling == 0


async def test_the_stream_of_an_unknown_journey_or_version_is_a_404(dash: Dash) -> None:
    await dash.seeded()
    for path in (
        "/dashboard/journeys/nope/live",
        f"/dashboard/journeys/{JOURNEY_ID}/live?version=0",
    ):
        response = await dash.http.get(path, headers=dash.admin)
        assert response.status_code == 404
        assert response.text.startswith("no journey")


async def test_a_reader_that_fails_keeps_the_last_numbers() -> None:
    feeds = Feeds(poll_seconds=0.05)
    calls: list[int] = []

    async def read() -> dict[str, str]:
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("database away")
        return {"layout": "x", "n": str(min(len(calls), 3))}

    async def never() -> bool:
        return False

    events = stream(feeds, ("spring", None), read, disconnected=never)
    got: list[Any] = []
    async for chunk in events:
        got.append(chunk)
        if len([c for c in got if c.startswith("event:")]) == 2:
            break
    await events.aclose()
    numbers = [json.loads(c.split("data: ", 1)[1]) for c in got if c.startswith("event:")]
    assert numbers == [{"layout": "x", "n": "1"}, {"layout": "x", "n": "3"}]
    assert feeds.polling == 0


async def _plan(dash: Dash, version: str) -> Any:
    plan = await readings.plan_of(dash.pool, JOURNEY_ID, version)
    assert plan is not None
    return plan
