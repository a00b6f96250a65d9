"""Customers parked in a ``wait_for``: the journey, entering them over HTTP, knowing they wait.

The reaction and scale phases both start from customers who entered this journey and now sit
in its ``wait_for`` (a running workflow each, waiting for a signal). A customer is parked when
Temporal's visibility shows their run at the ``parked`` step: the workflow sets that search
attribute in the very task that starts the wait.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import httpx
from temporalio.client import Client

from . import workload
from .progress import Ticker

PARK_EVENT = "Bench Parked"
RELEASE_EVENT = "Bench Released"
WAIT_STEP = "parked"
RELEASED_SUBJECT = "Released"
CUSTOMERS_PER_REQUEST = 50  # identify + track each: 100 messages per request
POLL_SECONDS = 0.5

JOURNEY_SOURCE = f"""\
id: bench_parked
name: Bench customers waiting for an event
entry:
  event: {PARK_EVENT}
stages:
  - name: waiting
    touchpoints:
      - id: {WAIT_STEP}
        wait_for:
          event: {RELEASE_EVENT}
          timeout: 30d
      - send:
          id: released
          subject: "{RELEASED_SUBJECT}, {{{{ profile.first_name | default('there') }}}}"
          body: |
            Hi {{{{ profile.first_name | default('there') }}}}, we got your event.
"""


def customer_name(prefix: str, number: int) -> str:
    return f"{prefix}-{number:07d}"


def entry_bodies(customers: list[str], *, first_number: int = 0) -> list[tuple[bytes, int]]:
    """``/v1/batch`` bodies: each customer's ``identify`` (with an email) and entry event.

    ``first_number`` numbers the first customer's name trait, the rest following on.
    """
    out = []
    for start in range(0, len(customers), CUSTOMERS_PER_REQUEST):
        messages = []
        for number, customer in enumerate(customers[start : start + CUSTOMERS_PER_REQUEST]):
            messages.append(workload.identify(customer, first_number + start + number))
            messages.append(workload.track(customer, PARK_EVENT, {"plan": "basic"}))
        out.append((workload.body(messages), len(messages)))
    return out


async def parked_count(temporal: Client, task_queue: str) -> int:
    """Runs of ``task_queue`` waiting at the ``parked`` step, by Temporal's visibility."""
    query = (
        f"TaskQueue = '{task_queue}' AND JourneyStep = '{WAIT_STEP}'"
        " AND ExecutionStatus = 'Running'"
    )
    return (await temporal.count_workflows(query)).count


async def park(
    client: httpx.AsyncClient,
    temporal: Client,
    *,
    customers: list[str],
    already: int,
    task_queue: str,
    clients: int,
    time_limit: float,
    check: Callable[[], None],
    label: str = "parking",
) -> float:
    """Enter ``customers`` over HTTP and wait until ``already + len(customers)`` are parked.

    Returns the seconds from the first entry post until the last customer was parked.
    """
    total = already + len(customers)
    ticker = Ticker(label, total, unit="parked")
    started = time.monotonic()
    posting = asyncio.create_task(
        workload.post_all(client, entry_bodies(customers), concurrency=clients)
    )
    try:
        parked = already
        while parked < total:
            await asyncio.sleep(POLL_SECONDS)
            check()
            if posting.done():
                posting.result()  # raises what failed the posts
            parked = await parked_count(temporal, task_queue)
            ticker.update(parked)
            if time.monotonic() - started > time_limit:
                raise TimeoutError(
                    f"{label}: {parked} of {total} customers parked after {time_limit:.0f}s"
                )
        await posting
    finally:
        if not posting.done():
            posting.cancel()
            await asyncio.gather(posting, return_exceptions=True)
        ticker.close()
    return time.monotonic() - started
