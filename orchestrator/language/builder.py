"""Journeys written in Python: the spec models are the API, and a journey dumps to a file.

Each helper returns a validated spec model (``spec.py``), so bad input raises pydantic's
``ValidationError`` with the messages a file would get::

    spec = journey(
        "welcome", "Welcome", entry="Signed Up",
        stages=[stage("onboarding", send("Welcome!", "Hi there."), wait("2d"), exit_())],
    )
    plan = compile_python(spec)          # the checks a file gets; raises JourneyError

    Path("journeys/welcome.yaml").write_text(dump_yaml(spec))

Segment hooks: ``entry(segment="vip")``, ``exit=[leaves_segment("vip")]``,
``wait_for(enters_segment="vip", timeout="7d")``, ``goal(enters_segment="vip", within="30d")``.
Channels: ``send`` is an email; ``sms``, ``push``, ``in_app`` and ``webhook`` the others.
Goals and KPIs: ``send(..., goal="conversion", kpi=kpi("orders", "Order Completed"))``, and
``stage(..., observe=[observed("website", goal="traffic", kpi=kpi("visits", "Page Viewed"))])``.

``compile_source(dump_yaml(spec))`` gives the plan version ``build_plan(spec)`` gives.

This module holds the helpers of the journey, its entry, goals and stages, and names every
helper (``__all__``); those of touchpoints are in ``touchpoint_helpers.py``, ``dump_yaml`` in
``yaml_writer.py``.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any

from journeyman.workflows.plan import Plan

from .compiler import compile_spec
from .fields import DwellAction
from .kpis import KpiSpec, ObservedSpec
from .locations import Diagnostic, JourneyError, Loc, render_path
from .matches import GoalSpec, MatchSpec
from .sends import TemplateSpec
from .spec import (
    CapSpec,
    DefaultsSpec,
    EntrySpec,
    FrequencyCapSpec,
    JourneySpec,
    QuietHoursSpec,
    ScheduleSpec,
    StageSpec,
)
from .touchpoint_helpers import (
    Duration,
    Where,
    _build,
    branch,
    content,
    decide,
    exit_,
    experiment,
    goto,
    in_app,
    metric,
    notification,
    path,
    push,
    send,
    sms,
    split,
    template,
    update,
    wait,
    wait_for,
    webhook,
)
from .touchpoints import TouchpointSpec
from .yaml_writer import dump_yaml

__all__ = [
    "Duration",
    "Where",
    "branch",
    "compile_python",
    "content",
    "decide",
    "dump_yaml",
    "enters_segment",
    "entry",
    "event",
    "exit_",
    "experiment",
    "goal",
    "goto",
    "in_app",
    "journey",
    "kpi",
    "leaves_segment",
    "metric",
    "notification",
    "observed",
    "path",
    "push",
    "send",
    "sms",
    "split",
    "stage",
    "template",
    "update",
    "wait",
    "wait_for",
    "webhook",
]


def journey(
    id: str,
    name: str,
    *,
    entry: EntrySpec | str,
    stages: Sequence[StageSpec],
    goal: GoalSpec | None = None,
    exit: Sequence[MatchSpec | str] = (),
    timezone: str | None = None,
    quiet_hours: QuietHoursSpec | None = None,
    frequency_caps: Sequence[FrequencyCapSpec] = (),
    throttle: int | None = None,
    priority: int = 3,
    traits: Sequence[str] = (),
    templates: Mapping[str, TemplateSpec] | None = None,
    defaults: DefaultsSpec | None = None,
) -> JourneySpec:
    """A whole journey; ``entry`` and ``exit`` take an event name for a plain event match,
    ``exit`` also ``leaves_segment(...)`` and ``enters_segment(...)``."""
    return _build(
        JourneySpec,
        id=id,
        name=name,
        entry=EntrySpec(event=entry) if isinstance(entry, str) else entry,
        goal=goal,
        exit=[_event(item) for item in exit],
        timezone=timezone,
        quiet_hours=quiet_hours,
        frequency_caps=list(frequency_caps),
        throttle=throttle,
        priority=priority,
        traits=list(traits),
        templates=dict(templates or {}),
        defaults=defaults,
        stages=list(stages),
    )


def entry(
    event: str | None = None,
    *,
    where: Where | None = None,
    segment: str | None = None,
    api: bool = False,
    schedule: ScheduleSpec | None = None,
    reentry: str | Mapping[str, Any] = "once",
    cap: CapSpec | None = None,
    holdout: float | str = 0.0,
) -> EntrySpec:
    """Who enters: customers sending ``event`` or starting to match ``segment`` (an id), by
    API call, on a schedule; ``reentry`` and ``holdout`` are written as in a file
    (``{"after": "30d"}``)."""
    return _build(
        EntrySpec,
        event=event,
        where=where,
        segment=segment,
        api=api,
        schedule=schedule,
        reentry=reentry,
        cap=cap,
        holdout=holdout,
    )


def event(name: str, where: Where | None = None) -> MatchSpec:
    """An event match, for stage goals and exits."""
    return _build(MatchSpec, event=name, where=where)


def enters_segment(segment_id: str) -> MatchSpec:
    """The customer starts matching a segment or persona, for stage goals and exits."""
    return _build(MatchSpec, enters_segment=segment_id)


def leaves_segment(segment_id: str) -> MatchSpec:
    """The customer stops matching a segment or persona, for stage goals and exits."""
    return _build(MatchSpec, leaves_segment=segment_id)


def goal(
    event: str | None = None,
    *,
    within: Duration,
    where: Where | None = None,
    enters_segment: str | None = None,
    leaves_segment: str | None = None,
) -> GoalSpec:
    """The journey's conversion: ``event`` (or a segment change) within ``within`` of entering."""
    return _build(
        GoalSpec,
        event=event,
        where=where,
        enters_segment=enters_segment,
        leaves_segment=leaves_segment,
        within=within,
    )


def stage(
    name: str,
    *touchpoints: TouchpointSpec,
    goal: MatchSpec | str | None = None,
    max_dwell: Duration | None = None,
    on_max_dwell: DwellAction | None = None,
    observe: Sequence[ObservedSpec] = (),
) -> StageSpec:
    """A lifecycle stage; ``goal`` takes an event name for a plain event match, or
    ``enters_segment(...)`` / ``leaves_segment(...)``; ``observe`` lists the touchpoints the
    engine does not send but measures there (see ``observed``)."""
    return _build(
        StageSpec,
        name=name,
        goal=_event(goal) if goal is not None else None,
        max_dwell=max_dwell,
        on_max_dwell=on_max_dwell,
        observe=list(observe),
        touchpoints=list(touchpoints),
    )


def kpi(
    name: str,
    event: str | None = None,
    *,
    page: bool | str | None = None,
    screen: bool | str | None = None,
    where: Where | None = None,
) -> KpiSpec:
    """How a touchpoint's goal is measured, shown as ``name``: ``kpi("orders", "Order
    Completed")`` counts the event, ``kpi("visits", page=True)`` page views (``page="Pricing"``
    those of one page), ``screen=`` screen views; ``where`` filters their properties."""
    return _build(KpiSpec, name=name, event=event, page=page, screen=screen, where=where)


def observed(id: str, *, kpi: KpiSpec, goal: str | None = None) -> ObservedSpec:
    """A touchpoint the engine does not send (the website, an event, a store), for
    ``stage(observe=[...])``: measured by ``kpi`` among the customers in the stage."""
    return _build(ObservedSpec, id=id, goal=goal, kpi=kpi)


def compile_python(
    spec: JourneySpec,
    *,
    warnings: list[Diagnostic] | None = None,
    segments: Collection[str] | None = None,
) -> Plan:
    """Check a journey built in Python as a file is checked, and return its plan.

    Raises ``JourneyError`` whose diagnostics name places (``stages[0].touchpoints[1]``) but
    no file or line. Warnings are appended to ``warnings``, as ``compile_source`` does;
    ``segments`` are the segment ids it may name, as for ``compile_source``.
    """
    duplicates = list(_duplicates(spec))
    if duplicates:
        raise JourneyError(duplicates)
    plan, found = compile_spec(spec, segments=segments)
    if warnings is not None:
        warnings.extend(found)
    return plan


def _event(match: MatchSpec | str) -> MatchSpec:
    return MatchSpec(event=match) if isinstance(match, str) else match


def _duplicates(spec: JourneySpec) -> Iterator[Diagnostic]:
    """Stage names and step ids used twice, which a file's compiler finds in the raw YAML."""
    names: dict[str, Loc] = {}
    ids: dict[str, Loc] = {}
    for index, stage_spec in enumerate(spec.stages):
        yield from _claim(names, stage_spec.name, ("stages", index, "name"), "stage name")
        # Observed touchpoints first, as dump_yaml writes them.
        for n, seen in enumerate(stage_spec.observe):
            yield from _claim(ids, seen.id, ("stages", index, "observe", n, "id"), "touchpoint id")
        yield from _duplicate_ids(stage_spec.touchpoints, ("stages", index, "touchpoints"), ids)


def _duplicate_ids(
    touchpoints: Sequence[TouchpointSpec], loc: Loc, ids: dict[str, Loc]
) -> Iterator[Diagnostic]:
    for index, touchpoint in enumerate(touchpoints):
        here = (*loc, index)
        if touchpoint.id is not None:
            yield from _claim(ids, touchpoint.id, (*here, "id"), "step id")
        if touchpoint.send is not None and touchpoint.send.id is not None:
            yield from _claim(ids, touchpoint.send.id, (*here, "send", "id"), "step id")
        for nested, under in touchpoint.nested():
            yield from _duplicate_ids(nested, (*here, *under), ids)


def _claim(owners: dict[str, Loc], value: str, loc: Loc, what: str) -> Iterator[Diagnostic]:
    first = owners.setdefault(value, loc)
    if first is not loc:
        message = f"duplicate {what} '{value}' (first at {render_path(first)})"
        yield Diagnostic("<python>", None, None, render_path(loc), message)
