"""An ingest client that behaves as the Segment SDKs do: messages queue up, go out in batches
from a few consumers, and a batch is retried, same messageIds and all, on 429, on any 5xx
(after ``Retry-After`` when given) and on connection errors, until it is accepted.

With several API addresses each request goes to the next one, as behind a load balancer, so
a retry after an API process died lands on another. Now and then a batch that was accepted
is sent again, as an SDK does when the answer is lost on the way back: it must come back as
duplicates. Every messageId that a 2xx answer accepted is kept in ``accepted``.
"""

from __future__ import annotations

import asyncio
import itertools
import random
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

UPLOAD_SIZE = 100  # as the Segment SDK's default
FLUSH_INTERVAL = 0.2
RESEND_SHARE = 0.05
MAX_RETRY_AFTER = 5.0
GIVE_UP_AFTER = 180.0  # a batch still refused after this long fails the drill


class IngestRefused(AssertionError):
    """The API refused a batch for good (a 4xx other than 429), or never accepted it."""


@dataclass
class RetryingClient:
    urls: list[str]
    write_key: str
    rng: random.Random
    consumers: int = 2
    accepted: set[str] = field(default_factory=set)
    # What the answers were, for the drill's report: status code or error type -> count.
    answers: Counter[str] = field(default_factory=Counter)
    # Batches each API address accepted.
    served: Counter[str] = field(default_factory=Counter)
    _queue: asyncio.Queue[list[dict[str, Any]]] = field(default_factory=asyncio.Queue)
    _next_url: itertools.cycle[str] | None = None

    def enqueue(self, messages: list[dict[str, Any]]) -> None:
        """Queue messages that must travel in one request, in this order."""
        self._queue.put_nowait(messages)

    async def run(self) -> None:
        """Consume the queue until cancelled (``drain`` first to send everything)."""
        self._next_url = itertools.cycle(self.urls)
        async with httpx.AsyncClient(timeout=30) as http, asyncio.TaskGroup() as group:
            for _ in range(self.consumers):
                group.create_task(self._consume(http))

    async def drain(self) -> None:
        """Until every queued message is accepted."""
        await self._queue.join()

    async def _consume(self, http: httpx.AsyncClient) -> None:
        carry: list[dict[str, Any]] | None = None
        while True:
            groups = [carry if carry is not None else await self._queue.get()]
            carry = None
            await asyncio.sleep(FLUSH_INTERVAL)  # let a batch fill up, as the SDKs do
            size = len(groups[0])
            while not self._queue.empty():
                group = self._queue.get_nowait()
                if size + len(group) > UPLOAD_SIZE:
                    carry = group  # first in this consumer's next batch
                    break
                groups.append(group)
                size += len(group)
            batch = [m for g in groups for m in g]
            await self._post(http, batch)
            if self.rng.random() < RESEND_SHARE:
                await self._post(http, batch, resent=True)
            for _ in groups:
                self._queue.task_done()

    async def _post(
        self, http: httpx.AsyncClient, batch: list[dict[str, Any]], *, resent: bool = False
    ) -> None:
        assert self._next_url is not None
        started = time.monotonic()
        for attempt in itertools.count():
            url = next(self._next_url)
            wait = min(2.0, 0.1 * 2**attempt) * self.rng.uniform(0.5, 1.0)
            try:
                response = await http.post(
                    f"{url}/v1/batch", json={"batch": batch}, auth=(self.write_key, "")
                )
            except httpx.TransportError as exc:
                self.answers[type(exc).__name__] += 1
            else:
                self.answers[str(response.status_code)] += 1
                if 200 <= response.status_code < 300:
                    self._check_answer(batch, response.json(), resent=resent)
                    self.served[url] += 1
                    return
                if response.status_code != 429 and response.status_code < 500:
                    raise IngestRefused(f"{url} refused a batch: {response.text}")
                retry_after = response.headers.get("Retry-After")
                if retry_after is not None:
                    wait = min(float(retry_after), MAX_RETRY_AFTER)
            if time.monotonic() - started > GIVE_UP_AFTER:
                raise IngestRefused(f"a batch was not accepted in {GIVE_UP_AFTER:.0f}s")
            await asyncio.sleep(wait)

    def _check_answer(
        self, batch: list[dict[str, Any]], answer: dict[str, Any], *, resent: bool
    ) -> None:
        if answer.get("rejected"):
            raise IngestRefused(f"messages rejected: {answer['rejected']}")
        if answer["accepted"] + answer["duplicates"] != len(batch):
            raise IngestRefused(f"{len(batch)} messages sent, answer: {answer}")
        if resent and answer["duplicates"] != len(batch):
            raise IngestRefused(f"a repeated batch stored something again: {answer}")
        self.accepted.update(m["messageId"] for m in batch)
