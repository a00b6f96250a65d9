"""Clients that overload ``/v1/batch``: a flood that never backs off, and senders that honour
``Retry-After`` until every batch is stored.

Both tally every answer: its status, its ``Retry-After``, the ``error`` of a refusal, how long
it took, and any request that got no answer at all (a timeout, a dropped connection).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import httpx

# A request unanswered for this long counts as hung.
CLIENT_TIMEOUT = 30.0
JSON = {"Content-Type": "application/json"}


def batch(messages: int, *, pad: int = 0) -> bytes:
    """A ``/v1/batch`` body of ``messages`` tracks, each with a fresh ``messageId`` and
    ``pad`` bytes of properties."""
    return json.dumps(
        {
            "batch": [
                {
                    "type": "track",
                    "userId": f"shopper-{uuid.uuid4().hex[:10]}",
                    "event": "Product Viewed",
                    "messageId": str(uuid.uuid4()),
                    "properties": {"sku": "AC-60", "notes": "x" * pad},
                }
                for _ in range(messages)
            ]
        }
    ).encode()


def message_ids(body: bytes) -> list[str]:
    return [message["messageId"] for message in json.loads(body)["batch"]]


@dataclass
class Tally:
    """What the clients saw."""

    statuses: Counter[int] = field(default_factory=Counter)
    retry_after: Counter[str | None] = field(default_factory=Counter)  # of 503s and 429s
    refusals: Counter[str] = field(default_factory=Counter)  # the JSON ``error`` of those
    unanswered: list[str] = field(default_factory=list)  # transport errors, timeouts
    seconds: list[float] = field(default_factory=list)  # time to each answer
    bytes_sent: int = 0
    accepted: int = 0
    duplicates: int = 0

    @property
    def answers(self) -> int:
        return sum(self.statuses.values())

    def note(self, response: httpx.Response, took: float, size: int) -> None:
        self.statuses[response.status_code] += 1
        self.seconds.append(took)
        self.bytes_sent += size
        if response.status_code in (429, 503):
            self.retry_after[response.headers.get("retry-after")] += 1
            self.refusals[_error_of(response)] += 1
        elif response.status_code == 200:
            body = response.json()
            self.accepted += int(body["accepted"])
            self.duplicates += int(body["duplicates"])


def _error_of(response: httpx.Response) -> str:
    try:
        body: Any = response.json()
    except ValueError:
        return f"not JSON: {response.text[:80]!r}"
    return str(body.get("error")) if isinstance(body, dict) else repr(body)


def _client(url: str, write_key: str, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=url,
        auth=(write_key, ""),
        timeout=CLIENT_TIMEOUT,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


async def flood(
    url: str,
    write_key: str,
    *,
    clients: int,
    seconds: float,
    messages: int,
    pad: int,
    until_bytes: int | None = None,
) -> Tally:
    """``clients`` connections posting fresh batches back to back, never waiting between
    requests whatever the answer, for ``seconds`` or until ``until_bytes`` of batches got
    an answer, whichever comes first."""
    tally = Tally()
    stop_at = time.monotonic() + seconds

    def going() -> bool:
        enough = until_bytes is not None and tally.bytes_sent >= until_bytes
        return not enough and time.monotonic() < stop_at

    async with _client(url, write_key, clients) as http:

        async def one() -> None:
            while going():
                body = batch(messages, pad=pad)
                started = time.monotonic()
                try:
                    response = await http.post("/v1/batch", content=body, headers=JSON)
                except httpx.HTTPError as exc:
                    tally.unanswered.append(f"{type(exc).__name__}: {exc}")
                    continue
                tally.note(response, time.monotonic() - started, len(body))

        await asyncio.gather(*(one() for _ in range(clients)))
    return tally


async def deliver(url: str, write_key: str, bodies: list[bytes], *, clients: int) -> Tally:
    """Post every body once it is taken: ``clients`` senders share the bodies; a 503 or 429
    is retried after its ``Retry-After``, and a request left unanswered is sent again."""
    tally = Tally()
    queue: asyncio.Queue[bytes] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    async with _client(url, write_key, clients) as http:

        async def sender() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                while True:
                    started = time.monotonic()
                    try:
                        response = await http.post("/v1/batch", content=body, headers=JSON)
                    except httpx.HTTPError as exc:
                        tally.unanswered.append(f"{type(exc).__name__}: {exc}")
                        await asyncio.sleep(1)
                        continue
                    tally.note(response, time.monotonic() - started, len(body))
                    if response.status_code not in (429, 503):
                        break
                    await asyncio.sleep(float(response.headers["retry-after"]))

        await asyncio.gather(*(sender() for _ in range(clients)))
    return tally
