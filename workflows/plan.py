"""The compiled journey plan: what the interpreter workflow executes.

A plan is immutable and identified by ``version``, a content hash computed by the compiler
(``journeyman.orchestrator.language``). Runs are pinned to the version they entered with, so
nothing here may change meaning for an existing hash: add fields with defaults only.
Durations are whole seconds so plans hash and compare exactly.

Steps nest (a branch holds lists of steps); ``workflows.program`` flattens a stage's steps
into instructions so that a run's position is one number, ``goto`` is a jump, and a run can be
resumed or migrated at any step.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

Scalar = str | int | float | bool | None


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


Operator = Literal["eq", "ne", "gt", "gte", "lt", "lte", "one_of", "exists"]
Channel = Literal["email", "sms", "push", "webhook", "in_app"]
CHANNELS: tuple[Channel, ...] = ("email", "sms", "push", "webhook", "in_app")
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


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


class Content(_Frozen):
    """What an email says: jinja2 templates rendered in a sandbox with the customer's data."""

    subject: str
    body: str
    html: str | None = None


class Kpi(_Frozen):
    """How a touchpoint's goal is measured: the ``name`` reports show (orders, visits,
    attendees) and what counts one: a tracked ``event``, or a page or screen view (``type``;
    ``event`` is then the page's name, None for any page), whose properties pass ``where``."""

    name: str
    type: Literal["track", "page", "screen"] = "track"
    event: str | None = None
    where: list[PropertyTest] = Field(default_factory=list)


class SendStep(_Frozen):
    """A message on one channel; every text is a jinja2 template.

    email: ``subject``, ``body`` (text), ``html``. sms: ``body``. push and in_app: ``subject``
    is the title, ``body`` the text, ``data`` extra key/values. webhook: ``url``, ``method``,
    ``headers`` and ``body`` (the request body). ``goal`` and ``kpi`` only feed the
    touchpoints report: they change nothing the message does.
    """

    kind: Literal["send"] = "send"
    id: str
    channel: Channel = "email"
    subject: str = ""
    body: str
    html: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    method: str = "POST"
    headers: dict[str, str] = Field(default_factory=dict)
    # The subscription group the message belongs to (consent and unsubscribe are per group).
    group: str = "marketing"
    # Per-locale content, chosen by the profile's ``locale`` trait ("fr-CA", then "fr").
    locales: dict[str, Content] = Field(default_factory=dict)
    template: str | None = None  # the named template the content came from, if any
    goal: str | None = None  # what the message is for: conversion, engagement, ...
    kpi: Kpi | None = None

    def content_for(self, locale: str | None) -> Content:
        if locale:
            tag = locale.replace("_", "-").lower()
            for candidate in (tag, tag.split("-")[0]):
                if candidate in self.locales:
                    return self.locales[candidate]
        return Content(subject=self.subject, body=self.body, html=self.html)


class LocalTime(_Frozen):
    """A wall-clock time ``HH:MM`` in the customer's time zone, on allowed weekdays."""

    at: str
    weekdays: list[Weekday] = Field(default_factory=lambda: list(WEEKDAYS))


class TraitDate(_Frozen):
    """A date held in a profile trait, moved by ``offset_seconds``, at ``at`` local time."""

    trait: str
    offset_seconds: int = 0
    at: str = "09:00"
    yearly: bool = False  # the next anniversary (birthdays, renewals)


class WaitStep(_Frozen):
    """Pause for ``seconds``, or until a local time of day, or until a date in the profile."""

    kind: Literal["wait"] = "wait"
    id: str
    seconds: int = Field(default=0, ge=0)
    until_time: LocalTime | None = None
    until_date: TraitDate | None = None


class WaitForStep(_Frozen):
    """Pause until an event arrives; then run ``on_event``, or ``on_timeout`` after the timeout.

    Events that arrived up to ``lookback_seconds`` before the step started count too.
    """

    kind: Literal["wait_for"] = "wait_for"
    id: str
    match: EventMatch
    timeout_seconds: int = Field(gt=0)
    lookback_seconds: int = Field(default=0, ge=0)
    on_event: list[Step] = Field(default_factory=list)
    on_timeout: list[Step] = Field(default_factory=list)


class Case(_Frozen):
    when: str  # a condition (``workflows.expressions``), evaluated by an activity
    steps: list[Step] = Field(default_factory=list)


class BranchStep(_Frozen):
    """Multi-way: the first case whose condition holds, else ``otherwise``."""

    kind: Literal["branch"] = "branch"
    id: str
    cases: list[Case]
    otherwise: list[Step] = Field(default_factory=list)


class Route(_Frozen):
    name: str
    weight: int = Field(gt=0)
    steps: list[Step] = Field(default_factory=list)


class SplitStep(_Frozen):
    """A random split by weight, the same path for the same customer every time."""

    kind: Literal["split"] = "split"
    id: str
    paths: list[Route]


class Decision(_Frozen):
    """When an experiment picks its winner: after ``after_seconds`` with enough entrants."""

    after_seconds: int = Field(gt=0)
    min_per_variant: int = Field(default=100, gt=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)


class ExperimentStep(_Frozen):
    """A/B/n paths with a control; once decided, later entrants take the winner's path."""

    kind: Literal["experiment"] = "experiment"
    id: str
    variants: list[Route]
    control: str
    metric: EventMatch
    window_seconds: int = Field(gt=0)
    decide: Decision | None = None


class UpdateStep(_Frozen):
    """Set or increment profile traits and add tags."""

    kind: Literal["update"] = "update"
    id: str
    set: dict[str, Scalar] = Field(default_factory=dict)
    increment: dict[str, int | float] = Field(default_factory=dict)
    tags: list[str] = Field(default_factory=list)


class GotoStep(_Frozen):
    kind: Literal["goto"] = "goto"
    id: str
    target: str  # a stage name or a step id
    stage: bool = False  # the target is a stage


class ExitStep(_Frozen):
    kind: Literal["exit"] = "exit"
    id: str
    reason: str | None = None


Step = Annotated[
    SendStep
    | WaitStep
    | WaitForStep
    | BranchStep
    | SplitStep
    | ExperimentStep
    | UpdateStep
    | GotoStep
    | ExitStep,
    Field(discriminator="kind"),
]


def children(step: Step) -> Iterator[list[Step]]:
    """The nested step lists of a step, in document order."""
    if isinstance(step, WaitForStep):
        yield step.on_event
        yield step.on_timeout
    elif isinstance(step, BranchStep):
        for case in step.cases:
            yield case.steps
        yield step.otherwise
    elif isinstance(step, SplitStep):
        for path in step.paths:
            yield path.steps
    elif isinstance(step, ExperimentStep):
        for variant in step.variants:
            yield variant.steps


def walk(steps: list[Step]) -> Iterator[Step]:
    """Every step in ``steps`` and nested under them, in document order."""
    for step in steps:
        yield step
        for nested in children(step):
            yield from walk(nested)


class ObservedTouchpoint(_Frozen):
    """A touchpoint the engine does not send (the website, social media, an event, a store),
    measured by its KPI among the customers in the stage; the interpreter never reads it."""

    id: str
    goal: str | None = None
    kpi: Kpi


class StagePlan(_Frozen):
    """A lifecycle stage: its touchpoints, the goal that converts, and how long one may stay.

    Without a goal, a customer moves on when the touchpoints are done. With one, they move on
    the moment the goal event arrives, whatever step they are in. Either way, once
    ``max_dwell_seconds`` have passed in the stage they exit or continue as ``on_max_dwell`` says.
    ``observed`` touchpoints are only measured (the touchpoints report).
    """

    name: str
    goal: EventMatch | None = None
    steps: list[Step] = Field(default_factory=list)
    max_dwell_seconds: int | None = Field(default=None, gt=0)
    on_max_dwell: Literal["exit", "continue"] = "exit"
    observed: list[ObservedTouchpoint] = Field(default_factory=list)


class Reentry(_Frozen):
    """Whether a customer may enter again: ``once`` ever, ``after`` a cool-down, or
    ``concurrent`` runs keyed by an entry event property (one run per cart)."""

    mode: Literal["once", "after", "concurrent"] = "once"
    cooldown_seconds: int = Field(default=0, ge=0)
    key: str | None = None  # property path, for concurrent


class EntryCap(_Frozen):
    total: int | None = Field(default=None, gt=0)
    per_day: int | None = Field(default=None, gt=0)


class Schedule(_Frozen):
    """Entry of an audience at set times: every time ``cron`` fires (in ``timezone``), or
    once ``at`` an instant. ``audience`` is a condition over each profile (None: everyone)."""

    cron: str | None = None
    at: datetime | None = None
    timezone: str = "UTC"
    audience: str | None = None


class Entry(_Frozen):
    """How customers enter: an event (``match``), an API call, and/or a ``schedule``."""

    match: EventMatch | None = None
    api: bool = False
    schedule: Schedule | None = None
    reentry: Reentry = Field(default_factory=Reentry)
    cap: EntryCap = Field(default_factory=EntryCap)
    holdout_percent: float = Field(default=0, ge=0, lt=100)


class Goal(_Frozen):
    """The journey's conversion: the event, counted within ``within_seconds`` of entry."""

    match: EventMatch
    within_seconds: int = Field(gt=0)


class QuietHours(_Frozen):
    start: str  # HH:MM local
    end: str
    action: Literal["defer", "skip"] = "defer"


class FrequencyCap(_Frozen):
    """At most ``limit`` messages on ``channel`` per ``window_seconds``, across all journeys."""

    channel: Channel
    limit: int = Field(gt=0)
    window_seconds: int = Field(gt=0)


class Delivery(_Frozen):
    """Rules every send of the journey obeys."""

    timezone: str | None = None  # when the profile has none
    quiet_hours: QuietHours | None = None
    frequency_caps: list[FrequencyCap] = Field(default_factory=list)
    throttle_per_minute: int | None = Field(default=None, gt=0)
    priority: int = Field(default=3, ge=1, le=5)  # 1 is the most urgent


class Plan(_Frozen):
    journey_id: str
    name: str
    version: str
    entry: Entry
    goal: Goal | None = None
    exits: list[EventMatch] = Field(default_factory=list)
    delivery: Delivery = Field(default_factory=Delivery)
    stages: list[StagePlan]

    def step(self, step_id: str) -> Step:
        """Find a step by id anywhere in the plan, nested ones included."""
        for stage in self.stages:
            for step in walk(stage.steps):
                if step.id == step_id:
                    return step
        raise KeyError(step_id)

    def stage_index(self, name: str) -> int:
        for index, stage in enumerate(self.stages):
            if stage.name == name:
                return index
        raise KeyError(name)

    def event_names(self) -> frozenset[str]:
        """Every event name this plan reacts to: entry, goals, exits and waits (for routing)."""
        names = {match.event for match in self.exits}
        if self.entry.match is not None:
            names.add(self.entry.match.event)
        if self.goal is not None:
            names.add(self.goal.match.event)
        for stage in self.stages:
            if stage.goal is not None:
                names.add(stage.goal.event)
            for step in walk(stage.steps):
                if isinstance(step, WaitForStep):
                    names.add(step.match.event)
        return frozenset(names)


WaitForStep.model_rebuild()
Case.model_rebuild()
BranchStep.model_rebuild()
Route.model_rebuild()
SplitStep.model_rebuild()
ExperimentStep.model_rebuild()
StagePlan.model_rebuild()
Plan.model_rebuild()
