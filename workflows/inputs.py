"""One input model per workflow, signal and activity, so fields can be added safely later.

These cross the Temporal boundary (pydantic data converter) and may sit in histories for
months: add fields with defaults only, never rename or remove.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

EVENT_SIGNAL = "event"


class JourneyEvent(BaseModel):
    """A customer event delivered to a run (the signal payload); ``message_id`` dedupes."""

    message_id: str
    name: str
    properties: dict[str, Any] = Field(default_factory=dict)
    occurred_at: datetime


class RunState(BaseModel):
    """What a run carries across continue-as-new."""

    run_key: str
    stage_index: int = 0
    seq: int = 0  # transitions recorded so far
    entry_event: JourneyEvent | None = None
    pending: list[JourneyEvent] = Field(default_factory=list)  # received, not yet consumed
    seen_ids: list[str] = Field(default_factory=list)  # recent message ids, for dedupe


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


SendStatus = Literal["sent", "failed", "skipped", "unknown", "duplicate"]


class SendResult(BaseModel):
    status: SendStatus
    reason: str | None = None


Outcome = Literal["entered", "converted", "moved_on", "exited"]


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
