"""Generated customers for the Postgres scale phase, as COPY text rows of the engine's tables.

Each customer has a profile, behavioural metrics, ten events (an identify, the sign-up, page
views, product views, a checkout and an order), one finished run of the five-stage journey
below with its stage transitions, and every fifth one an anonymous id merged into them. The
KPI counters the engine would have bumped for those transitions are returned beside the rows
(``Counters``), so the funnel reads what the transitions say. Runs are finished (completed or
exited), so looking a customer up asks Postgres only, never Temporal.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from journeyman.orchestrator.ingest import workflow_id_for

STAGES = ("awareness", "consideration", "purchase", "service", "loyalty")
EVENTS_PER_CUSTOMER = 10
MERGED_EVERY = 5  # every fifth customer has an anonymous id merged into them
ADVANCE = 0.6  # chance a customer converts out of a stage (the rest exit on max dwell)

JOURNEY_SOURCE = """\
id: pg_lifecycle
name: Bench lifecycle over generated customers
entry:
  event: Signed Up
defaults:
  max_dwell: 30d
  on_max_dwell: exit
stages:
  - name: awareness
    goal: {event: Product Viewed}
    touchpoints:
      - send: {id: welcome, subject: "Welcome", body: "Hello {{ profile.first_name }}"}
  - name: consideration
    goal: {event: Checkout Started}
  - name: purchase
    goal: {event: Order Completed}
  - name: service
    goal: {event: Survey Answered}
  - name: loyalty
    goal: {event: Referral Sent}
"""

# table -> columns, in the order each generated line gives them
COLUMNS: dict[str, list[str]] = {
    "profiles": ["customer_id", "traits", "consent", "created_at", "updated_at"],
    "customer_metrics": [
        "customer_id",
        "order_count",
        "revenue_total",
        "first_order_at",
        "last_order_at",
        "categories",
        "products",
        "last_seen_at",
        "channels",
        "devices",
        "last_channel",
        "last_device",
        "frequency_class",
        "recency_class",
        "updated_at",
    ],
    "events": [
        "message_id",
        "type",
        "customer_id",
        "event",
        "properties",
        "traits",
        "context",
        "occurred_at",
        "received_at",
        "user_id",
        "anonymous_id",
    ],
    "journey_runs": [
        "journey_id",
        "customer_id",
        "version",
        "workflow_id",
        "stage",
        "status",
        "entered_at",
        "updated_at",
        "converted_at",
        "holdout",
    ],
    "stage_transitions": [
        "run_key",
        "seq",
        "journey_id",
        "version",
        "customer_id",
        "from_stage",
        "to_stage",
        "outcome",
        "at",
        "reason",
    ],
    "customer_aliases": ["alias", "customer_id", "created_at"],
    "customer_merges": ["from_id", "into_id", "reason", "message_id", "merged_at"],
}

NULL = "\\N"
_CITIES = ("Taipei", "Kaohsiung", "Shanghai", "Seoul", "Busan", "Taichung")
_CATEGORIES = ("skincare", "anti-aging", "makeup", "fragrance", "haircare")


# What an analytics SDK sends with every message; one cell, the same for every event.
_CONTEXT = json.dumps(
    {
        "library": {"name": "analytics-python", "version": "2.3.3"},
        "ip": "203.0.113.7",
        "locale": "zh-TW",
        "userAgent": "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/126.0",
    }
)


@dataclass
class Counters:
    """What the engine's transitions would have counted: ``stage_kpis`` and exits by reason."""

    # (stage, column) -> count; columns as in stage_kpis
    stages: Counter[tuple[str, str]] = field(default_factory=Counter)
    # stage -> runs that exited it on max dwell (reason "timeout")
    timeouts: Counter[str] = field(default_factory=Counter)

    def add(self, other: Counters) -> None:
        self.stages.update(other.stages)
        self.timeouts.update(other.timeouts)


@dataclass
class Chunk:
    """Generated rows (COPY text lines) per table, and the counters their runs imply."""

    lines: dict[str, list[str]]
    counters: Counters
    customers: int


def customer_id(number: int) -> str:
    return f"pg-{number:07d}"


def generate(
    start: int, stop: int, *, journey_id: str, version: str, now: datetime, seed: int
) -> Chunk:
    """Customers ``start`` to ``stop - 1``; the same arguments always give the same rows."""
    rng = random.Random(f"{seed}:{start}:{stop}")
    lines: dict[str, list[str]] = {table: [] for table in COLUMNS}
    counters = Counters()
    for number in range(start, stop):
        _customer(number, rng, lines, counters, journey_id=journey_id, version=version, now=now)
    return Chunk(lines=lines, counters=counters, customers=stop - start)


def _customer(
    number: int,
    rng: random.Random,
    lines: dict[str, list[str]],
    counters: Counters,
    *,
    journey_id: str,
    version: str,
    now: datetime,
) -> None:
    # Hot path (a million customers is seventeen million rows): lines are written out with
    # f-strings. Every generated value is plain ASCII without quotes, backslashes or tabs, so
    # the JSON and the text need no escaping; tests load the rows into a real Postgres.
    cid = customer_id(number)
    born = now - timedelta(days=rng.uniform(1, 365))
    category = rng.choice(_CATEGORIES)
    reached = 0
    while reached < len(STAGES) - 1 and rng.random() < ADVANCE:
        reached += 1
    ordered = reached >= STAGES.index("purchase")
    revenue = round(rng.uniform(10, 300), 2) if ordered else 0
    anonymous = f"anon-{number:07d}" if number % MERGED_EVERY == 0 else None
    times = [(born + timedelta(minutes=7 * k)).isoformat() for k in range(EVENTS_PER_CUSTOMER)]
    received = [(born + timedelta(minutes=7 * k, seconds=0.2)).isoformat() for k in range(10)]
    traits = (
        f'{{"email": "{cid}@example.com", "first_name": "Customer{number}",'
        f' "city": "{rng.choice(_CITIES)}", "age": {rng.randrange(18, 80)}}}'
    )
    last = times[-1]
    lines["profiles"].append(f'{cid}\t{traits}\t{{"email": true}}\t{times[0]}\t{last}\n')
    if ordered:
        bought = (
            f'1\t{revenue}\t{times[9]}\t{times[9]}\t{{"{category}": 1}}\t{{"p{number % 997}": 1}}'
        )
        frequency = "sporadic"
    else:
        bought, frequency = f"0\t0\t{NULL}\t{NULL}\t{{}}\t{{}}", "none"
    lines["customer_metrics"].append(
        f'{cid}\t{bought}\t{last}\t{{"web": 10}}\t{{"desktop": 10}}\tweb\tdesktop'
        f"\t{frequency}\tactive\t{last}\n"
    )
    product = rng.randrange(1000)
    viewed = f'{{"product_id": {product}, "category": "{category}", "price": {revenue}}}'
    events = (
        ("identify", NULL, "{}", traits),
        ("track", "Signed Up", '{"source": "web"}', "{}"),
        ("page", "Home", '{"name": "Home", "path": "/"}', "{}"),
        ("page", "Category", f'{{"name": "Category", "path": "/{category}"}}', "{}"),
        ("page", "Product", f'{{"name": "Product", "path": "/p/{product}"}}', "{}"),
        ("track", "Product Viewed", viewed, "{}"),
        ("track", "Product Viewed", viewed, "{}"),
        ("track", "Product Viewed", viewed, "{}"),
        ("track", "Checkout Started", f'{{"cart_value": {revenue}}}', "{}"),
        ("track", "Order Completed", f'{{"order_id": "o-{number}", "revenue": {revenue}}}', "{}"),
    )
    out = lines["events"]
    for k, (kind, name, properties, event_traits) in enumerate(events):
        anon = anonymous if anonymous is not None and k == 0 else NULL
        out.append(
            f"{cid}-e{k}\t{kind}\t{cid}\t{name}\t{properties}\t{event_traits}\t{_CONTEXT}"
            f"\t{times[k]}\t{received[k]}\t{cid}\t{anon}\n"
        )
    _run(cid, number, reached, times, lines, counters, journey_id=journey_id, version=version)
    if anonymous is not None:
        lines["customer_aliases"].append(f"{anonymous}\t{cid}\t{times[0]}\n")
        lines["customer_merges"].append(f"{anonymous}\t{cid}\tidentify\t{cid}-e0\t{times[0]}\n")


def _run(
    cid: str,
    number: int,
    reached: int,
    times: list[str],
    lines: dict[str, list[str]],
    counters: Counters,
    *,
    journey_id: str,
    version: str,
) -> None:
    """One finished run: entered, converted up to stage ``reached``, then out of it."""
    workflow_id = workflow_id_for(journey_id, cid)
    run_key = f"{workflow_id}@run-{number}"
    steps: list[tuple[str | None, str | None, str, str | None]] = [
        (None, STAGES[0], "entered", None)
    ]
    steps += [(STAGES[k], STAGES[k + 1], "converted", None) for k in range(reached)]
    last = STAGES[reached]
    # Converting out of the last stage completes the run; elsewhere the max dwell ends it.
    done = reached == len(STAGES) - 1 and number % 2 == 0
    steps.append((last, None, "converted", None) if done else (last, None, "exited", "timeout"))
    out = lines["stage_transitions"]
    for seq, (source, target, outcome, reason) in enumerate(steps, start=1):
        at = times[min(seq, EVENTS_PER_CUSTOMER - 1)]
        out.append(
            f"{run_key}\t{seq}\t{journey_id}\t{version}\t{cid}\t{source or NULL}"
            f"\t{target or NULL}\t{outcome}\t{at}\t{reason or NULL}\n"
        )
        if source is not None:
            counters.stages[(source, outcome)] += 1
        if target is not None:
            counters.stages[(target, "entered")] += 1
        if reason == "timeout" and source is not None:
            counters.timeouts[source] += 1
    status = "completed" if done else "exited"
    end = times[min(len(steps), EVENTS_PER_CUSTOMER - 1)]
    lines["journey_runs"].append(
        f"{journey_id}\t{cid}\t{version}\t{workflow_id}\t{last}\t{status}\t{times[1]}"
        f"\t{end}\t{NULL}\tf\n"
    )
