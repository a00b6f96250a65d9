"""The benchmark's journey and traffic: Segment-spec messages, and concurrent batch posting."""

from __future__ import annotations

import asyncio
import json
import random
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx

from .stack import ADMIN_TOKEN, WRITE_KEY

ENTRY_EVENT = "Bench Entered"
REPLY_EVENT = "Bench Replied"

# Exactly send, wait_for, send, in one goal-less stage: the customer moves on (and completes)
# when the touchpoints are done.
JOURNEY_SOURCE = f"""\
id: bench
name: Bench two-touchpoint journey
entry:
  event: {ENTRY_EVENT}
stages:
  - name: engage
    touchpoints:
      - send:
          id: first
          subject: "Welcome, {{{{ profile.first_name | default('there') }}}}"
          body: |
            Hi {{{{ profile.first_name | default('there') }}}}, thanks for signing up.
      - wait_for:
          event: {REPLY_EVENT}
          timeout: 1h
      - send:
          id: second
          subject: "Thanks for your reply"
          body: |
            Hi {{{{ profile.first_name | default('there') }}}}, we got your answer.
"""
FIRST_STEP, SECOND_STEP = "first", "second"
RETRIES = 5

# Roughly what an analytics SDK sends along with every message.
_CONTEXT = {
    "library": {"name": "analytics-python", "version": "2.3.3"},
    "ip": "203.0.113.7",
    "locale": "en-US",
    "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36",
}
# Ingest mix: most traffic concerns no journey; a tenth enters it or answers in it.
_MIX: list[tuple[str, float]] = [
    ("Page Viewed", 0.55),
    ("Product Viewed", 0.35),
    (ENTRY_EVENT, 0.05),
    (REPLY_EVENT, 0.05),
]


def _now() -> str:
    return datetime.now(UTC).isoformat()


def track(customer: str, event: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": customer,
        "event": event,
        "properties": properties,
        "messageId": str(uuid.uuid4()),
        "timestamp": _now(),
        "context": {**_CONTEXT, "page": {"path": "/products", "url": "https://shop.example/"}},
    }


def identify(customer: str, number: int) -> dict[str, Any]:
    return {
        "type": "identify",
        "userId": customer,
        "traits": {"email": f"{customer}@example.com", "first_name": f"Customer{number}"},
        "messageId": str(uuid.uuid4()),
        "timestamp": _now(),
        "context": _CONTEXT,
    }


def body(messages: Sequence[dict[str, Any]]) -> bytes:
    return json.dumps({"batch": list(messages)}).encode()


def ingest_bodies(
    events: int, *, batch_size: int, seed: int, partitions: int = 1, prefix: str = "ing"
) -> list[tuple[bytes, int]]:
    """Pre-encoded ``/v1/batch`` bodies of track events, each with its message count.

    Batch ``i`` draws its customers from partition ``i % partitions``: posted with as many
    clients (``post_all`` gives client ``k`` every ``k``-th body), no two requests in flight
    share a customer, as when each of several servers reports its own sessions.
    """
    rng = random.Random(seed)
    names = [name for name, _ in _MIX]
    weights = [weight for _, weight in _MIX]
    customers = max(events // 10, partitions)
    out = []
    for number, start in enumerate(range(0, events, batch_size)):
        size = min(batch_size, events - start)
        part = number % partitions
        batch = []
        for _ in range(size):
            customer = f"{prefix}-{rng.randrange(part, customers, partitions):06d}"
            name = rng.choices(names, weights)[0]
            props = {"product_id": rng.randrange(1000), "price": round(rng.uniform(5, 200), 2)}
            batch.append(track(customer, name, props))
        out.append((body(batch), size))
    return out


class PostError(RuntimeError):
    pass


@dataclass
class PostStats:
    """Latency of each successful request (s), and 5xx answers retried (as SDKs do)."""

    latencies: list[float] = field(default_factory=list)
    retried: int = 0
    errors: list[str] = field(default_factory=list)


async def post_all(
    client: httpx.AsyncClient,
    bodies: Sequence[tuple[bytes, int]],
    *,
    concurrency: int,
    on_accepted: Callable[[int], None] | None = None,
    stats: PostStats | None = None,
) -> PostStats:
    """POST every body to ``/v1/batch``; client ``k`` of ``concurrency`` posts every k-th body.

    A 5xx or a lost connection is retried with backoff, like the Segment SDKs do,
    up to ``RETRIES`` times; anything else that is not a 200 fails the run.
    """
    stats = stats or PostStats()

    async def one_client(mine: Sequence[tuple[bytes, int]]) -> None:
        for content, count in mine:
            for attempt in range(RETRIES + 1):
                started = time.perf_counter()
                try:
                    response = await client.post(
                        "/v1/batch",
                        content=content,
                        headers={"content-type": "application/json"},
                    )
                except httpx.TransportError as exc:
                    # A kept-alive connection the server closed as it was reused: sent again,
                    # as the SDKs do; the messageIds make a stored request a duplicate.
                    if attempt == RETRIES:
                        raise
                    stats.retried += 1
                    stats.errors.append(f"{type(exc).__name__}: {exc}")
                    await asyncio.sleep(0.05 * 2**attempt)
                    continue
                if response.status_code < 500 or attempt == RETRIES:
                    break
                stats.retried += 1
                stats.errors.append(f"{response.status_code} {response.text[:200]}")
                await asyncio.sleep(0.05 * 2**attempt)
            stats.latencies.append(time.perf_counter() - started)
            if response.status_code >= 500:
                raise PostError(
                    f"/v1/batch answered {response.status_code} {RETRIES + 1} times in a row"
                    f" ({stats.retried} retries in all so far): {response.text[:200]}"
                )
            if response.status_code != 200:
                raise PostError(f"/v1/batch answered {response.status_code}: {response.text}")
            answer = response.json()
            if answer["accepted"] + answer["duplicates"] != count:
                raise PostError(f"/v1/batch took {answer} of {count} messages")
            if on_accepted is not None:
                on_accepted(count)

    await asyncio.gather(*(one_client(bodies[k::concurrency]) for k in range(concurrency)))
    return stats


def api_client(base_url: str, *, connections: int) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        base_url=base_url,
        auth=(WRITE_KEY, ""),
        timeout=120,
        limits=httpx.Limits(max_connections=connections, max_keepalive_connections=connections),
    )


def admin_client(base_url: str) -> httpx.AsyncClient:
    """One connection with the admin token: the ``/api`` calls whose latency is measured."""
    return httpx.AsyncClient(
        base_url=base_url,
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        timeout=60,
        limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
    )
