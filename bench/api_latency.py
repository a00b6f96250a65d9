"""Latency of administration calls (the funnel, a customer look-up), one call at a time."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Any

import httpx

from .stats import Summary, summarize


class CallFailed(RuntimeError):
    pass


async def time_calls(
    client: httpx.AsyncClient,
    paths: Sequence[str],
    *,
    check: Callable[[str, dict[str, Any]], None] | None = None,
) -> Summary:
    """GET each path in turn (after one untimed call to warm the connection and caches).

    Every answer must be 200; ``check`` may look at each answer's JSON and raise. One call at
    a time, so each figure is a request's own latency, not a queue's.
    """
    if not paths:
        raise ValueError("no calls to time")
    await _get(client, paths[0])
    seconds = []
    for path in paths:
        started = time.perf_counter()
        body = await _get(client, path)
        seconds.append(time.perf_counter() - started)
        if check is not None:
            check(path, body)
    return summarize(seconds)


async def _get(client: httpx.AsyncClient, path: str) -> dict[str, Any]:
    response = await client.get(path)
    if response.status_code != 200:
        raise CallFailed(f"GET {path} answered {response.status_code}: {response.text[:300]}")
    body: dict[str, Any] = response.json()
    return body
