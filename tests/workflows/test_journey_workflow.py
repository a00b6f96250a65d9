"""The interpreter on the time-skipping server: goals, delays, dwell limits, exactly-once sends."""

from __future__ import annotations

import asyncio
from datetime import timedelta

from temporalio.client import WorkflowExecutionStatus, WorkflowHandle
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from journeyman.orchestrator.storage import funnel
from journeyman.workflows.journey import JourneyWorkflow

from .conftest import Harness, event

TWO_STAGES = """
id: mid-delay
name: Converts mid delay
entry: {event: Signed Up}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    touchpoints:
      - send: {id: welcome, subject: "Welcome {{ profile.first_name }}", body: "Hello"}
      - wait: 10d
      - send: {id: nudge, subject: "Still there?", body: "Have a look"}
  - name: consideration
    touchpoints:
      - send: {id: compare, subject: "Compare plans", body: "Side by side"}
"""

TIMEOUT = """
id: never-converts
name: Never converts
entry: {event: Signed Up}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    max_dwell: 7d
    on_max_dwell: exit
    touchpoints:
      - send: {id: welcome, subject: "Welcome", body: "Hello"}
  - name: consideration
    touchpoints:
      - send: {id: compare, subject: "Compare", body: "Side by side"}
"""


async def _run_time(handle: WorkflowHandle[JourneyWorkflow, str]) -> timedelta:
    """Workflow time from start to close, read from the run itself (the test server skips
    on once the run is over, so the environment's clock says less)."""
    described = await handle.describe()
    assert described.close_time is not None
    return described.close_time - described.start_time


async def _stage_becomes(handle: object, stage: str, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await handle.query(JourneyWorkflow.current_stage) == stage:  # type: ignore[attr-defined]
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"run never reached {stage}")


async def test_goal_mid_delay_moves_the_customer_on_at_once(harness: Harness) -> None:
    plan = await harness.deploy(TWO_STAGES)
    await harness.profile("c1", email="ada@example.com", first_name="Ada")
    handle = await harness.enter(plan, "c1")
    await asyncio.to_thread(harness.sink.wait_for_messages, 1)
    before = await harness.env.get_current_time()

    await handle.signal(JourneyWorkflow.on_event, event("Product Viewed"))
    await _stage_becomes(handle, "consideration")
    # The ten-day delay did not have to pass: the goal interrupted it.
    assert await harness.env.get_current_time() - before < timedelta(days=1)

    assert await handle.result() == "completed"
    subjects = [m["Subject"] for m in harness.sink.messages]
    assert subjects == ["Welcome Ada", "Compare plans"]  # the nudge after the delay never went
    assert harness.sink.messages[0]["To"] == "Ada <ada@example.com>"
    stages = {
        s.stage: s
        for s in await funnel(
            harness.pool, journey_id=plan.journey_id, stages=["awareness", "consideration"]
        )
    }
    assert (stages["awareness"].entered, stages["awareness"].converted) == (1, 1)
    assert (stages["consideration"].entered, stages["consideration"].moved_on) == (1, 1)
    assert stages["awareness"].current == stages["consideration"].current == 0


async def test_customer_who_never_converts_exits_after_max_dwell(harness: Harness) -> None:
    plan = await harness.deploy(TIMEOUT)
    await harness.profile("c2", email="bo@example.com")
    handle = await harness.enter(plan, "c2")

    assert await handle.result() == "exited"
    assert timedelta(days=7) <= await _run_time(handle) < timedelta(days=7, hours=1)
    assert [m["Subject"] for m in harness.sink.messages] == ["Welcome"]
    assert await harness.kpis(plan.journey_id) == {
        "awareness": {"entered": 1, "converted": 0, "moved_on": 0, "exited": 1}
    }
    status = await harness.pool.fetchval(
        "SELECT status FROM journey_runs WHERE journey_id = $1 AND customer_id = 'c2'",
        plan.journey_id,
    )
    assert status == "exited"


async def test_duplicate_signal_is_ignored_and_history_replays(harness: Harness) -> None:
    plan = await harness.deploy(TWO_STAGES)
    await harness.profile("c3", email="cy@example.com", first_name="Cy")
    handle = await harness.enter(plan, "c3")
    goal = event("Product Viewed")
    await handle.signal(JourneyWorkflow.on_event, goal)
    await handle.signal(JourneyWorkflow.on_event, goal)  # at-least-once delivery repeats it
    assert await handle.result() == "completed"
    assert (await handle.describe()).status == WorkflowExecutionStatus.COMPLETED
    kpis = await harness.kpis(plan.journey_id)
    assert kpis["awareness"]["converted"] == 1 and kpis["consideration"]["entered"] == 1

    # The recorded history replays on today's interpreter without non-determinism.
    history = await handle.fetch_history()
    replayer = Replayer(workflows=[JourneyWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


DWELL_CONTINUE = """
id: dwell-continue
name: Dwell then continue
entry: {event: Signed Up}
stages:
  - name: service
    max_dwell: 2d
    on_max_dwell: continue
    touchpoints:
      - wait: 30d
      - send: {id: late, subject: "Too late", body: "never sent"}
  - name: loyalty
    touchpoints:
      - send: {id: points, subject: "Your points", body: "Thanks"}
"""


async def test_max_dwell_with_continue_moves_on_without_converting(harness: Harness) -> None:
    plan = await harness.deploy(DWELL_CONTINUE)
    await harness.profile("c4", email="di@example.com")
    handle = await harness.enter(plan, "c4")
    assert await handle.result() == "completed"
    assert timedelta(days=2) <= await _run_time(handle) < timedelta(days=3)
    assert [m["Subject"] for m in harness.sink.messages] == ["Your points"]
    kpis = await harness.kpis(plan.journey_id)
    assert kpis["service"] == {"entered": 1, "converted": 0, "moved_on": 1, "exited": 0}


REPLY = """
id: reply
name: Reply while sending
entry: {event: Signed Up}
stages:
  - name: consideration
    touchpoints:
      - send: {id: offer, subject: "An offer", body: "Reply if interested"}
      - wait_for:
          event: Offer Clicked
          timeout: 1d
          on_timeout:
            - send: {id: reminder, subject: "Reminder", body: "Still interested?"}
"""


async def test_reply_arriving_during_the_send_satisfies_the_next_wait_for(harness: Harness) -> None:
    plan = await harness.deploy(REPLY)
    await harness.profile("c5", email="ed@example.com")
    handle = await harness.enter(plan, "c5")
    # The reply lands while the offer is still being sent and recorded.
    await handle.signal(JourneyWorkflow.on_event, event("Offer Clicked"))
    assert await handle.result() == "completed"
    assert [m["Subject"] for m in harness.sink.messages] == ["An offer"]
    assert await _run_time(handle) < timedelta(hours=1)
