"""The compiled journey plan: what the interpreter workflow executes.

A plan is immutable and identified by ``version``, a content hash computed by the compiler
(``journeyman.orchestrator.language``). Runs are pinned to the version they entered with, so
nothing here may change meaning for an existing hash: add fields with defaults only.
Durations are whole seconds so plans hash and compare exactly.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "one_of", "exists"]


class PropertyTest(_Frozen):
    """One comparison against an event property, reached by a dotted ``path``.

    ``gt``/``gte``/``lt``/``lte`` take a number, ``one_of`` a list, ``exists`` a boolean.
    """

    path: str
    op: Operator = "eq"
    value: Scalar | list[Scalar] = None


class EventMatch(_Frozen):
    """An event name and property tests that must all hold."""

    event: str
    where: list[PropertyTest] = Field(default_factory=list)


class SendStep(_Frozen):
    kind: Literal["send"] = "send"
    id: str
    channel: Literal["email"] = "email"
    subject: str
    body: str
    html: str | None = None


class WaitStep(_Frozen):
    kind: Literal["wait"] = "wait"
    id: str
    seconds: int = Field(ge=0)


class WaitForStep(_Frozen):
    kind: Literal["wait_for"] = "wait_for"
    id: str
    match: EventMatch
    timeout_seconds: int = Field(gt=0)
    on_timeout: list[Step] = Field(default_factory=list)


Step = Annotated[SendStep | WaitStep | WaitForStep, Field(discriminator="kind")]


class StagePlan(_Frozen):
    """A lifecycle stage: its touchpoints, the goal that converts, and how long one may stay.

    Without a goal, a customer moves on when the touchpoints are done. With one, they move on
    the moment the goal event arrives, whatever step they are in. Either way, once
    ``max_dwell_seconds`` have passed in the stage they exit or continue as ``on_max_dwell`` says.
    """

    name: str
    goal: EventMatch | None = None
    steps: list[Step] = Field(default_factory=list)
    max_dwell_seconds: int | None = Field(default=None, gt=0)
    on_max_dwell: Literal["exit", "continue"] = "exit"


class Plan(_Frozen):
    journey_id: str
    name: str
    version: str
    entry: EventMatch
    stages: list[StagePlan]

    def step(self, step_id: str) -> Step:
        """Find a step by id anywhere in the plan, including inside ``on_timeout`` branches."""
        pending: list[Step] = [s for stage in self.stages for s in stage.steps]
        while pending:
            step = pending.pop()
            if step.id == step_id:
                return step
            if isinstance(step, WaitForStep):
                pending.extend(step.on_timeout)
        raise KeyError(step_id)

    def event_names(self) -> frozenset[str]:
        """Every event name this plan reacts to: entry, goals and waits (for ingest routing)."""
        names = {self.entry.event}
        pending: list[Step] = []
        for stage in self.stages:
            if stage.goal is not None:
                names.add(stage.goal.event)
            pending.extend(stage.steps)
        while pending:
            step = pending.pop()
            if isinstance(step, WaitForStep):
                names.add(step.match.event)
                pending.extend(step.on_timeout)
        return frozenset(names)


WaitForStep.model_rebuild()
