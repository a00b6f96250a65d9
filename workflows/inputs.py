"""One input model per workflow, signal and activity, so fields can be added safely later.

These cross the Temporal boundary (pydantic data converter) and may sit in histories for
months: add fields with defaults only, never rename or remove.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

EVENT_SIGNAL = "event"

# An engine event that ends the run that receives it, counted as an exit from its stage:
# sent when two customers merge and both were on the journey, or when a customer is erased.
RUN_ENDED_EVENT = "Journey Run Ended"


class JourneyEvent(BaseModel):
    """A customer event delivered to a run (the signal payload); ``message_id`` dedupes."""

    message_id: str
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime
    received_at: datetime | None = None  # workflow time of arrival, set by the run


class RunState(BaseModel):
    """What a run carries across continue-as-new."""

    run_key: str
    stage_index: int = 0
    seq: int = 0  # transitions recorded so far
    entry_event: JourneyEvent | None = None
    pending: list[JourneyEvent] = Field(default_factory=list)  # received, not yet consumed
    seen_ids: list[str] = Field(default_factory=list)  # recent message ids, for dedupe
    version: str | None = None  # set when a migration moved the run to another version
    pc: int = 0  # position in the current stage's program (``workflows.program``)
    visits: dict[str, int] = Field(default_factory=dict)  # step id -> times started
    entered_at: datetime | None = None
    stage_started_at: datetime | None = None
    holdout: bool = False  # held out: receives nothing, still counted


class JourneyInput(BaseModel):
    journey_id: str
    version: str
    customer_id: str
    state: RunState | None = None


class LoadPlanInput(BaseModel):
    journey_id: str
    version: str


class SendInput(BaseModel):
    send_key: str  # deterministic: run, step, iteration
    journey_id: str
    version: str
    customer_id: str
    step_id: str
    stage: str
    entry_event: JourneyEvent | None = None
    now: datetime | None = None  # workflow time, for quiet hours


SendStatus = Literal[
    "sent",
    "failed",
    "skipped",
    "unknown",
    "duplicate",
    "deferred",
    "capped",
    "archived",
    "suppressed",  # consent, an unsubscribe or a bounce said no (the reason names the rule)
]


class SendResult(BaseModel):
    status: SendStatus
    reason: str | None = None
    retry_at: datetime | None = None  # deferred (quiet hours, throttle): try again then


class StepInput(BaseModel):
    """A step that needs the customer's data: branch, experiment, update, timed wait."""

    journey_id: str
    version: str
    customer_id: str
    step_id: str
    entry_event: JourneyEvent | None = None
    # Workflow time: what "now" means for this run (the time-skipping server moves it).
    now: datetime | None = None


class MigrateInput(BaseModel):
    """Move a waiting run to ``version``; ``steps`` maps old step ids to new ones (default:
    the same id). Runs not at a waiting step, or whose step has no mapping, stay."""

    version: str
    steps: dict[str, str] = Field(default_factory=dict)


MIGRATE_SIGNAL = "migrate"


class Position(BaseModel):
    version: str
    stage: str | None
    step: str | None  # the waiting step, if any


# ``goal``: the journey's conversion goal was reached (the run ends converted).
# ``migrated``: moved to another version by an explicit migration.
Outcome = Literal["entered", "converted", "moved_on", "exited", "goal", "migrated"]


# Why a run left a stage without converting (``moved_on``, ``exited`` or ``migrated``):
# ``timeout``: the stage's max dwell passed (exit or continue, as ``on_max_dwell`` says);
# ``exit_rule``: a journey-wide exit event; ``exit_step``: an ``exit`` touchpoint;
# ``erasure`` and ``merge``: the engine ended the run (``RUN_ENDED_EVENT``); ``archived``: the
# journey was archived; ``no_goal``: the touchpoints were done in a stage with no goal;
# ``goto``: a jump to another stage; ``migration``: moved to another version; ``unknown``:
# recorded before reasons were, or by a caller that gave none.
ExitReason = Literal[
    "timeout",
    "exit_rule",
    "exit_step",
    "erasure",
    "merge",
    "archived",
    "no_goal",
    "goto",
    "migration",
    "unknown",
]


class TransitionInput(BaseModel):
    run_key: str
    seq: int
    journey_id: str
    version: str
    customer_id: str
    workflow_id: str
    from_stage: str | None
    to_stage: str | None
    outcome: Outcome
    from_version: str | None = None  # a migration: the version the run leaves
    holdout: bool = False
    # Leaving without converting: why, and the words behind it (an exit step's text, the
    # exit event, the goto target). Absent in transitions recorded by older workers.
    reason: ExitReason | None = None
    reason_detail: str | None = None
    entered_at: datetime | None = None  # when the run entered: its cohort week
    at: datetime | None = None  # when the transition happened, on the run's clock
