"""What must hold after a drill, each check returning the problems it found (none: it holds).

- Every event the API accepted is stored exactly once, and nothing else is stored.
- Every event routed to a run reached it (the outbox is empty).
- Every customer has one run, in the status and stage their events say, in Postgres and in
  Temporal's own view of the runs.
- The funnel counts each customer once per stage.
- No message reached the SMTP server twice (by its ``Message-ID``), and every message due
  was sent; the one allowance is the ledger's own ``unknown``: a send interrupted by the
  worker's death after it handed the message to the SMTP server (a claim not yet handed over
  is taken over and sent), which the engine does not repeat on a channel without an
  idempotency key. Such sends are listed in ``Messages.interrupted``.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from email.message import EmailMessage

import asyncpg
from temporalio.client import Client

from journeyman.channels.base import message_id_for

from .traffic import JOURNEY, Customer, expected_funnel, expected_place, expected_sends
from .traffic import expected_subject as subject_of

SENDER = "Shop <journeys@shop.example>"
ENGINE_SOURCE = "journeyman"  # events the engine records itself


async def stored_events(database_url: str, accepted: set[str], sent: set[str]) -> list[str]:
    problems = []
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT message_id, count(*) AS n FROM events WHERE message_id = any($1::text[])"
            " GROUP BY message_id",
            list(sent),
        )
        others = await conn.fetch(
            "SELECT message_id, type, event, source_id FROM events"
            " WHERE NOT (message_id = any($1::text[])) AND source_id IS DISTINCT FROM $2",
            list(sent),
            ENGINE_SOURCE,
        )
    finally:
        await conn.close()
    counts = {r["message_id"]: r["n"] for r in rows}
    if missing := sorted(accepted - counts.keys()):
        problems.append(f"{len(missing)} accepted events are not stored, e.g. {missing[:5]}")
    if twice := {m: n for m, n in counts.items() if n != 1}:
        problems.append(f"events stored more than once: {dict(list(twice.items())[:5])}")
    if unanswered := sorted(sent - accepted):
        problems.append(f"{len(unanswered)} events were never accepted, e.g. {unanswered[:5]}")
    if others:
        problems.append(
            f"{len(others)} events nobody sent are stored: {[dict(r) for r in others[:5]]}"
        )
    return problems


async def outbox(database_url: str) -> list[str]:
    """Every event routed to a run was delivered to Temporal: none pending, no dead letter."""
    conn = await asyncpg.connect(database_url)
    try:
        stuck = await conn.fetch(
            "SELECT id, workflow_id, attempts, last_error FROM outbox"
            " WHERE delivered_at IS NULL ORDER BY id LIMIT 5"
        )
    finally:
        await conn.close()
    return [f"outbox row never delivered: {dict(r)}" for r in stuck]


async def places(database_url: str, group: list[Customer]) -> list[str]:
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT customer_id, status, stage FROM journey_runs WHERE journey_id = $1", JOURNEY
        )
    finally:
        await conn.close()
    runs: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for r in rows:
        runs[r["customer_id"]].append((r["status"], r["stage"]))
    problems = []
    for c in group:
        want = expected_place(c)
        if runs.get(c.user_id) != [want]:
            problems.append(f"{c} is at {runs.get(c.user_id)}, expected {want}")
    if strangers := runs.keys() - {c.user_id for c in group}:
        problems.append(f"runs of customers who never signed up: {sorted(strangers)[:5]}")
    return problems


async def temporal_view(
    address: str, task_queue: str, group: list[Customer], *, within: float = 30
) -> list[str]:
    """Temporal's own view agrees: one run per customer, running in its stage or completed.

    Visibility trails the runs by a moment, so the counts get ``within`` seconds to agree.
    """
    want = {"": len(group)}
    for status, stage in map(expected_place, group):
        key = f"ExecutionStatus = 'Running' AND JourneyStage = '{stage}'"
        if status == "completed":
            key = "ExecutionStatus = 'Completed'"
        want[key] = want.get(key, 0) + 1
    client = await Client.connect(address)
    deadline = time.monotonic() + within
    while True:
        got = {}
        for key in want:
            query = f"TaskQueue = '{task_queue}' AND WorkflowType = 'JourneyWorkflow'"
            got[key] = (await client.count_workflows(f"{query} AND {key}" if key else query)).count
        if got == want or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    return [
        f"Temporal counts {got[key]} runs where {key or 'any'}, expected {n}"
        for key, n in want.items()
        if got[key] != n
    ]


def funnel(actual: dict[str, dict[str, int]], group: list[Customer]) -> list[str]:
    want = expected_funnel(group)
    problems = []
    for stage, counts in want.items():
        got = {k: actual.get(stage, {}).get(k) for k in counts}
        if got != counts:
            problems.append(f"funnel {stage}: {got}, expected {counts}")
    return problems


@dataclass
class Messages:
    problems: list[str] = field(default_factory=list)
    # (customer, step, delivered anyway?) for sends the ledger records as `unknown`
    interrupted: list[tuple[str, str, bool]] = field(default_factory=list)
    delivered: int = 0

    @property
    def lost(self) -> list[tuple[str, str]]:
        """Due messages that never reached the SMTP server (interrupted before it had them)."""
        return [(c, s) for c, s, arrived in self.interrupted if not arrived]


async def messages(
    database_url: str, received: list[EmailMessage], group: list[Customer]
) -> Messages:
    out = Messages(delivered=len(received))
    by_id = Counter(str(m["Message-ID"]) for m in received)
    if twice := {k: n for k, n in by_id.items() if n > 1}:
        out.problems.append(
            f"{len(twice)} messages arrived more than once: {list(twice.items())[:5]}"
        )
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT send_key, customer_id, step_id, status, handed_over_at IS NOT NULL AS handed"
            " FROM deliveries WHERE journey_id = $1",
            JOURNEY,
        )
    finally:
        await conn.close()
    ledger: dict[tuple[str, str], list[asyncpg.Record]] = defaultdict(list)
    for r in rows:
        ledger[(r["customer_id"], r["step_id"])].append(r)
    inbox: dict[tuple[str, str], list[str]] = defaultdict(list)
    for m in received:
        address = str(m["To"]).rpartition("<")[2].rstrip(">")
        inbox[(address, str(m["Subject"]))].append(str(m["Message-ID"]))
    expected_mail: set[tuple[str, str]] = set()
    for c in group:
        due = expected_sends(c)
        if extra := {step for cust, step in ledger if cust == c.user_id} - set(due):
            out.problems.append(f"{c.user_id} has sends that were not due: {sorted(extra)}")
        for step in due:
            mail = (c.email, subject_of(c, step))
            expected_mail.add(mail)
            claims = ledger.get((c.user_id, step), [])
            if len(claims) != 1:
                out.problems.append(f"{c.user_id} {step}: {len(claims)} ledger rows, expected 1")
                continue
            claim = claims[0]
            arrived = inbox.get(mail, [])
            message_id = message_id_for(claim["send_key"], from_address=SENDER)
            if claim["status"] == "sent":
                if arrived != [message_id]:
                    out.problems.append(
                        f"{c.user_id} {step} is sent in the ledger; the server has {arrived}"
                    )
            elif claim["status"] == "unknown":
                if not claim["handed"]:
                    # Died before the provider call: that claim must be taken over and sent.
                    out.problems.append(f"{c.user_id} {step} is unknown but was never handed over")
                if arrived not in ([], [message_id]):
                    out.problems.append(f"{c.user_id} {step} (unknown) arrived as {arrived}")
                out.interrupted.append((c.user_id, step, bool(arrived)))
            else:
                out.problems.append(f"{c.user_id} {step} is {claim['status']} in the ledger")
    if strays := {mail: ids for mail, ids in inbox.items() if mail not in expected_mail}:
        out.problems.append(f"messages nobody was due: {list(strays.items())[:5]}")
    return out


def secrets_in_logs(logs: dict[str, str], secrets: list[str]) -> list[str]:
    return [
        f"{name}'s log shows a secret"
        for name, text in logs.items()
        if any(s in text for s in secrets)
    ]
