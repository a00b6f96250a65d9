"""Fifty customers through the five-stage lifecycle journey, over HTTP, on real servers."""

from __future__ import annotations

from collections import Counter, defaultdict

import pytest
from segment.analytics.client import Client as SegmentClient

from .conftest import ADMIN_TOKEN, REPO, WRITE_KEY, Stack
from .traffic import (
    STAGES,
    expected_emails,
    expected_funnel,
    people,
    round_messages,
    wait_until,
)

pytestmark = pytest.mark.e2e

LIFECYCLE = REPO / "journeys" / "lifecycle.yaml"


def _inboxes(stack: Stack) -> dict[str, list[str]]:
    inbox: dict[str, list[str]] = defaultdict(list)
    for message in stack.sink.messages:
        address = str(message["To"]).rpartition("<")[2].rstrip(">")
        inbox[address].append(str(message["Subject"]))
    return inbox


def _funnel_matches(stack: Stack, expected: dict[str, dict[str, int]]) -> bool:
    actual = stack.funnel("lifecycle")
    return all(
        {k: actual[s][k] for k in ("entered", "converted", "current")} == expected[s]
        for s in STAGES
    )


def _settle(stack: Stack, want: dict[str, dict[str, int]], emails: int, *, label: str) -> None:
    wait_until(
        lambda: _funnel_matches(stack, want),
        lambda: f"{label}: {stack.funnel('lifecycle')} != {want}",
    )
    wait_until(
        lambda: len(stack.sink.messages) >= emails,
        lambda: f"{label}: {len(stack.sink.messages)} of {emails} emails",
    )


def _wait_for_visible_runs(stack: Stack, stage: str, expected: int) -> None:
    query = f"JourneyStage = '{stage}' AND ExecutionStatus = 'Running'"
    wait_until(  # visibility is eventually consistent
        lambda: stack.count_runs(query) == expected,
        lambda: f"{query}: {stack.count_runs(query)} runs, expected {expected}",
    )


def _send_with_segment_sdk(stack: Stack, messages: list[dict[str, object]]) -> None:
    """The unmodified Segment client, pointed at Journeyman, gzip on."""
    errors: list[object] = []
    client = SegmentClient(
        WRITE_KEY,
        host=stack.api_url,
        gzip=True,
        sync_mode=True,
        max_retries=1,
        on_error=lambda error, _batch: errors.append(error),
    )
    for m in messages:
        if m["type"] == "identify":
            client.identify(m["userId"], m["traits"], message_id=m["messageId"])
        else:
            client.track(m["userId"], m["event"], {}, message_id=m["messageId"])
    client.flush()
    assert errors == []


def test_fifty_customers_move_through_the_lifecycle(stack: Stack) -> None:
    stack.start("api")
    stack.start("worker")
    stack.deploy(LIFECYCLE)
    group = people(50, seed=11, prefix="e2e")
    by_segment_sdk = {p.user_id for p in group[::2]}  # half the traffic through the real SDK

    for k in range(len(STAGES) + 1):
        messages = round_messages(group, k)
        _send_with_segment_sdk(stack, [m for m in messages if m["userId"] in by_segment_sdk])
        stack.post_batch([m for m in messages if m["userId"] not in by_segment_sdk])
        want = expected_funnel(group, after_round=k)
        total = sum(len(expected_emails(p, after_round=k)) for p in group)
        _settle(stack, want, total, label=f"round {k}")

    inbox = _inboxes(stack)
    for person in group:
        assert Counter(inbox[person.email]) == Counter(expected_emails(person, after_round=5)), (
            person
        )
    assert len(stack.sink.messages) == sum(len(expected_emails(p, after_round=5)) for p in group)
    funnel = stack.funnel("lifecycle")
    assert funnel["loyalty"]["converted"] == sum(1 for p in group if p.depth == 5)
    # The stage is visible in Temporal too, without asking any workflow.
    for stage in STAGES:
        _wait_for_visible_runs(stack, stage, funnel[stage]["current"])


def test_restarting_worker_and_api_loses_nothing_and_sends_nothing_twice(stack: Stack) -> None:
    stack.start("api")
    stack.start("worker")
    stack.deploy(LIFECYCLE)
    group = people(30, seed=5, prefix="restart")

    stack.post_batch(round_messages(group, 0))
    stack.stop("worker")  # mid-flight: sends and transitions of round 0 are under way
    stack.post_batch(round_messages(group, 1))  # accepted while no worker runs
    stack.stop("api")
    stack.start("api")
    stack.post_batch(round_messages(group, 2))
    stack.start("worker")

    total = sum(len(expected_emails(p, after_round=2)) for p in group)
    _settle(stack, expected_funnel(group, after_round=2), total, label="after restarts")

    inbox = _inboxes(stack)
    for person in group:
        assert Counter(inbox[person.email]) == Counter(expected_emails(person, after_round=2)), (
            person
        )
    ids = [m["Message-ID"] for m in stack.sink.messages]
    assert len(ids) == len(set(ids)) == total
    for role in ("api", "worker"):
        log = stack.log_tail(role, limit=None)
        assert WRITE_KEY not in log and ADMIN_TOKEN not in log, role  # secrets never logged
