"""The run's stage and step in Temporal's visibility, with no upsert that changes nothing."""

from __future__ import annotations

from temporalio.client import WorkflowHandle
from temporalio.common import SearchAttributePair, TypedSearchAttributes

from journeyman.workflows.inputs import EVENT_SIGNAL, JourneyInput
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import Plan
from journeyman.workflows.search_attributes import JOURNEY_STAGE, JOURNEY_STEP

from .conftest import Harness, entry_of, event

TWO_STAGES = """
id: visible
name: Stage and step in visibility
entry: {event: Signed Up}
stages:
  - name: awareness
    touchpoints:
      - send: {id: welcome, subject: "Welcome", body: "Hello"}
      - wait: 1h
  - name: consideration
    touchpoints:
      - send: {id: compare, subject: "Compare", body: "Side by side"}
"""


async def _enter(
    harness: Harness, plan: Plan, customer: str, attributes: TypedSearchAttributes
) -> WorkflowHandle[JourneyWorkflow, str]:
    workflow_id = f"journey/{plan.journey_id}/{customer}"
    harness.started.append(workflow_id)
    return await harness.env.client.start_workflow(
        JourneyWorkflow.run,
        JourneyInput(journey_id=plan.journey_id, version=plan.version, customer_id=customer),
        id=workflow_id,
        task_queue=harness.task_queue,
        start_signal=EVENT_SIGNAL,
        start_signal_args=[event(entry_of(plan).event)],
        search_attributes=attributes,
    )


async def _upserted(handle: WorkflowHandle[JourneyWorkflow, str], name: str) -> int:
    """How many upserts in the run's history touch the attribute ``name``."""
    history = await handle.fetch_history()
    return sum(
        1
        for e in history.events
        if e.HasField("upsert_workflow_search_attributes_event_attributes")
        and name
        in e.upsert_workflow_search_attributes_event_attributes.search_attributes.indexed_fields
    )


async def test_stages_and_steps_are_published_and_the_step_cleared_in_the_next_stage(
    harness: Harness,
) -> None:
    plan = await harness.deploy(TWO_STAGES)
    await harness.profile("c1", email="ada@example.com")
    handle = await _enter(harness, plan, "c1", TypedSearchAttributes.empty)
    assert await handle.result() == "completed"
    attributes = (await handle.describe()).typed_search_attributes
    assert attributes.get(JOURNEY_STAGE) == "consideration"
    assert attributes.get(JOURNEY_STEP) is None  # the wait's step, cleared on leaving it
    assert await _upserted(handle, JOURNEY_STAGE.name) == 2
    # Set at the wait, unset with the next stage; never unset in the first stage, where it
    # was not set.
    assert await _upserted(handle, JOURNEY_STEP.name) == 2


async def test_a_stage_given_at_start_is_not_upserted_again(harness: Harness) -> None:
    plan = await harness.deploy(TWO_STAGES)
    await harness.profile("c2", email="bob@example.com")
    given = TypedSearchAttributes([SearchAttributePair(JOURNEY_STAGE, "awareness")])
    handle = await _enter(harness, plan, "c2", given)
    assert await handle.result() == "completed"
    assert (await handle.describe()).typed_search_attributes.get(JOURNEY_STAGE) == "consideration"
    assert await _upserted(handle, JOURNEY_STAGE.name) == 1  # the second stage only
