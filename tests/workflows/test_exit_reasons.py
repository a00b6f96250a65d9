"""Why runs leave a stage, as the real workflow records it on the time-skipping server: dwell
limits, exit rules and steps, the engine's run-ended event, gotos, archiving, holdouts; and the
cohort each run is counted in."""

from __future__ import annotations

import asyncio

from journeyman.orchestrator.storage import funnel
from journeyman.orchestrator.storage.cohorts import cohort_week, cohorts
from journeyman.orchestrator.storage.exits import StageExit, exits
from journeyman.orchestrator.storage.journeys import set_status
from journeyman.workflows.inputs import RUN_ENDED_EVENT
from journeyman.workflows.journey import JourneyWorkflow, is_held_out

from .conftest import Harness, event

REASONS = """
id: reasons
name: Why customers leave
entry: {event: Signed Up}
exit:
  - {event: Unsubscribed}
  - {event: Segment Exited, where: {segment: vip}}
stages:
  - name: onboarding
    touchpoints:
      - send: {id: survey, subject: "Survey", body: "Tell us"}
      - wait_for:
          event: Survey Answered
          timeout: 3d
          on_timeout:
            - exit: no answer to the survey
      - wait_for:
          event: Skip Ahead
          timeout: 1h
          on_event:
            - {id: skip, goto: done}
  - name: followup
    touchpoints:
      - {id: bye, exit: true}
  - name: done
    touchpoints:
      - send: {id: thanks, subject: "Thanks", body: "Hi"}
"""

DWELL = """
id: dwell-reasons
name: Dwell limits
entry: {event: Signed Up, holdout: 50%}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    max_dwell: 2d
    on_max_dwell: continue
    touchpoints:
      - send: {id: hi, subject: "Hi", body: "Hi"}
  - name: consideration
    goal: {event: Checkout Started}
    max_dwell: 3d
    on_max_dwell: exit
"""

ARCHIVED = """
id: archived-reasons
name: Archived while waiting
entry: {event: Signed Up}
stages:
  - name: only
    touchpoints:
      - wait: 1d
      - send: {id: late, subject: "Late", body: "Hi"}
"""


async def _surveyed(harness: Harness, count: int) -> None:
    """Every run has sent its survey, so each waits for the answer."""
    for _ in range(400):
        if len(harness.sink.messages) >= count:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"{len(harness.sink.messages)} of {count} surveys sent")


async def test_every_way_out_of_a_stage_is_recorded_with_its_reason(harness: Harness) -> None:
    plan = await harness.deploy(REASONS)
    customers = [f"u{n}" for n in range(1, 9)]
    for customer in customers:
        await harness.profile(customer, email=f"{customer}@example.com")
    runs = {c: await harness.enter(plan, c) for c in customers}
    await _surveyed(harness, len(customers))
    said = {
        "u1": [event("Unsubscribed")],
        "u3": [event("Survey Answered"), event("Skip Ahead")],
        "u4": [event(RUN_ENDED_EVENT, reason="merged")],
        "u5": [event(RUN_ENDED_EVENT, reason="erased")],
        "u6": [event(RUN_ENDED_EVENT, reason="reassigned")],
        "u7": [event("Segment Exited", segment="vip")],
        "u8": [event("Survey Answered")],
    }  # u2 says nothing
    for customer, events in said.items():
        for e in events:
            await runs[customer].signal(JourneyWorkflow.on_event, e)
    results = {c: await h.result() for c, h in runs.items()}
    assert results == {c: "completed" if c == "u3" else "exited" for c in customers}

    stages = [s.name for s in plan.stages]
    assert await exits(harness.pool, journey_id="reasons", stages=stages) == [
        StageExit("onboarding", "moved_on", "no_goal", None, 1, 0, 1),  # u8
        StageExit("onboarding", "moved_on", "goto", "skip", 1, 0, 1),  # u3
        StageExit("onboarding", "exited", "exit_rule", "Segment Exited (segment=vip)", 1, 0, 1),
        StageExit("onboarding", "exited", "exit_rule", "Unsubscribed", 1, 0, 1),
        StageExit("onboarding", "exited", "exit_step", "no answer to the survey", 1, 0, 1),
        StageExit("onboarding", "exited", "erasure", None, 1, 0, 1),
        StageExit("onboarding", "exited", "merge", None, 1, 0, 1),
        StageExit("onboarding", "exited", "unknown", "reassigned", 1, 0, 1),
        StageExit("followup", "exited", "exit_step", "bye", 1, 0, 1),  # u8, `exit: true`
        StageExit("done", "moved_on", "no_goal", None, 1, 0, 1),  # u3
    ]
    rows = await harness.pool.fetch(
        "SELECT customer_id, outcome, reason, reason_detail FROM stage_transitions"
        " WHERE journey_id = 'reasons' AND customer_id IN ('u2', 'u3') ORDER BY customer_id, seq"
    )
    assert [tuple(r) for r in rows] == [
        ("u2", "entered", None, None),
        ("u2", "exited", "exit_step", "no answer to the survey"),
        ("u3", "entered", None, None),
        ("u3", "moved_on", "goto", "skip"),
        ("u3", "moved_on", "no_goal", None),
    ]

    # All eight entered in one week, the week their runs started in (workflow time).
    started = (await runs["u1"].describe()).start_time
    [week] = await cohorts(
        harness.pool, journey_id="reasons", stages=stages, weeks=1, until=started
    )
    assert week.week == cohort_week(started)
    assert (week.entered, week.reached) == (8, {"onboarding": 8, "followup": 1, "done": 1})
    assert (week.converted, week.exited, week.completed, week.active) == (0, 7, 1, 0)


async def test_dwell_limits_are_timeouts_and_held_out_customers_count_apart(
    harness: Harness,
) -> None:
    plan = await harness.deploy(DWELL)
    people = [f"d{n}" for n in range(100)]
    held = next(c for c in people if is_held_out(plan, c))
    treated, buyer = [c for c in people if not is_held_out(plan, c)][:2]
    for customer in (held, treated, buyer):
        await harness.profile(customer, email=f"{customer}@example.com")
    runs = {c: await harness.enter(plan, c) for c in (held, treated, buyer)}
    await runs[buyer].signal(JourneyWorkflow.on_event, event("Product Viewed"))
    await runs[buyer].signal(JourneyWorkflow.on_event, event("Checkout Started"))
    assert await runs[buyer].result() == "completed"
    assert await runs[held].result() == "exited"
    assert await runs[treated].result() == "exited"

    stages = [s.name for s in plan.stages]
    assert await exits(harness.pool, journey_id="dwell-reasons", stages=stages) == [
        StageExit("awareness", "moved_on", "timeout", None, 1, 1, 2),
        StageExit("consideration", "exited", "timeout", None, 1, 1, 2),
    ]
    by_stage = {
        s.stage: s for s in await funnel(harness.pool, journey_id="dwell-reasons", stages=stages)
    }
    assert by_stage["awareness"].exits_by_reason == {"timeout": 1, "holdout": 1}
    assert by_stage["consideration"].exits_by_reason == {"timeout": 1, "holdout": 1}
    assert (by_stage["consideration"].exited, by_stage["consideration"].converted) == (2, 1)

    started = (await runs[buyer].describe()).start_time
    [week] = await cohorts(
        harness.pool, journey_id="dwell-reasons", stages=stages, weeks=1, until=started
    )
    # The buyer converted out of the last stage: that is the journey's conversion.
    assert (week.entered, week.converted, week.exited, week.active) == (3, 1, 2, 0)
    assert week.reached == {"awareness": 3, "consideration": 3}


async def test_archiving_ends_a_waiting_run_as_archived(harness: Harness) -> None:
    plan = await harness.deploy(ARCHIVED)
    await harness.profile("a1", email="a1@example.com")
    run = await harness.enter(plan, "a1")
    async with harness.pool.acquire() as conn:
        assert await set_status(conn, "archived-reasons", "archived")
    assert await run.result() == "exited"
    assert harness.sink.messages == []
    assert await exits(harness.pool, journey_id="archived-reasons", stages=["only"]) == [
        StageExit("only", "exited", "archived", None, 1, 0, 1)
    ]
