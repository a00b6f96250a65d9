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
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from typing import Any, Literal, TypeVar

import yaml
from pydantic import BaseModel

from journeyman.workflows.plan import Plan, Scalar, Weekday

from .compiler import compile_spec
from .fields import OPERATORS, DwellAction
from .kpis import KpiSpec, ObservedSpec
from .locations import Diagnostic, JourneyError, Loc, render_path
from .sends import (
    ContentSpec,
    EmailSendSpec,
    InAppSendSpec,
    NotificationContentSpec,
    PushSendSpec,
    SmsSendSpec,
    TemplateSpec,
    WebhookSendSpec,
)
from .spec import (
    BranchSpec,
    CapSpec,
    DecideSpec,
    DefaultsSpec,
    EntrySpec,
    ExperimentSpec,
    FrequencyCapSpec,
    GoalSpec,
    JourneySpec,
    MatchSpec,
    MetricSpec,
    PathSpec,
    QuietHoursSpec,
    ScheduleSpec,
    StageSpec,
    TouchpointSpec,
    UpdateSpec,
    WaitForSpec,
    WaitUntilSpec,
)

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

Duration = int | str
"""Whole seconds, or text like ``90s``, ``15m``, ``2h``, ``3d``, ``1w``, ``1d12h``."""
Where = Mapping[str, Any]
"""A property filter: ``{"plan": "pro", "cart.total": {"gte": 20}}``."""
Touchpoints = Sequence[TouchpointSpec]
_Model = TypeVar("_Model", bound=BaseModel)


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


def template(
    subject: str,
    body: str,
    *,
    html: str | None = None,
    locales: Mapping[str, ContentSpec] | None = None,
) -> TemplateSpec:
    """Named content for ``templates``; ``send(template=name)`` uses it."""
    return _build(TemplateSpec, subject=subject, body=body, html=html, locales=locales)


def content(subject: str, body: str, *, html: str | None = None) -> ContentSpec:
    """An email translation, for ``locales`` of ``send`` and ``template``."""
    return _build(ContentSpec, subject=subject, body=body, html=html)


def notification(title: str, body: str) -> NotificationContentSpec:
    """A push or in-app translation, for ``locales``."""
    return _build(NotificationContentSpec, title=title, body=body)


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


def send(
    subject: str | None = None,
    body: str | None = None,
    *,
    id: str | None = None,
    html: str | None = None,
    locales: Mapping[str, ContentSpec] | None = None,
    template: str | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """An email: inline ``subject`` and ``body`` (Jinja templates), or a named ``template``.

    ``group`` is the subscription group (``marketing`` when left out); ``goal`` and ``kpi``
    say what the message is for and how that is measured (see ``kpi``), as on every channel.
    """
    spec = _build(
        EmailSendSpec,
        id=id,
        group=group,
        goal=goal,
        kpi=kpi,
        template=template,
        subject=subject,
        body=body,
        html=html,
        locales=locales,
    )
    return _touchpoint("send", spec, None)


def sms(
    body: str,
    *,
    id: str | None = None,
    locales: Mapping[str, str] | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """A text message; ``locales`` maps language tags to translated bodies."""
    translated = {tag: {"body": text} for tag, text in (locales or {}).items()}
    spec = _build(
        SmsSendSpec,
        id=id,
        channel="sms",
        group=group,
        goal=goal,
        kpi=kpi,
        body=body,
        locales=translated,
    )
    return _touchpoint("send", spec, None)


def push(
    title: str,
    body: str,
    *,
    data: Mapping[str, str] | None = None,
    id: str | None = None,
    locales: Mapping[str, NotificationContentSpec] | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """A push notification: ``title``, ``body`` and ``data`` values are Jinja templates."""
    return _notification(
        PushSendSpec, "push", title, body, data, id, locales, group, goal=goal, kpi=kpi
    )


def in_app(
    title: str,
    body: str,
    *,
    data: Mapping[str, str] | None = None,
    id: str | None = None,
    locales: Mapping[str, NotificationContentSpec] | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """A message in the app's inbox, written like ``push``."""
    return _notification(
        InAppSendSpec, "in_app", title, body, data, id, locales, group, goal=goal, kpi=kpi
    )


def webhook(
    url: str,
    body: str | None = None,
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    id: str | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """An HTTP request: ``body`` and header values are Jinja templates, and so may be the
    path and query of ``url``."""
    spec = _build(
        WebhookSendSpec,
        id=id,
        channel="webhook",
        group=group,
        goal=goal,
        kpi=kpi,
        url=url,
        method=method,
        headers=headers,
        body=body,
    )
    return _touchpoint("send", spec, None)


def _notification(
    model: type[PushSendSpec | InAppSendSpec],
    channel: str,
    title: str,
    body: str,
    data: Mapping[str, str] | None,
    id: str | None,
    locales: Mapping[str, NotificationContentSpec] | None,
    group: str | None,
    *,
    goal: str | None,
    kpi: KpiSpec | None,
) -> TouchpointSpec:
    spec = _build(
        model,
        id=id,
        channel=channel,
        group=group,
        goal=goal,
        kpi=kpi,
        title=title,
        body=body,
        data=data,
        locales=locales,
    )
    return _touchpoint("send", spec, None)


def wait(
    duration: Duration | None = None,
    *,
    until: str | None = None,
    weekdays: Sequence[Weekday] | None = None,
    until_date: str | None = None,
    offset: Duration = 0,
    at: str = "09:00",
    yearly: bool = False,
    id: str | None = None,
) -> TouchpointSpec:
    """A pause: ``wait("3d")``, ``wait(until="09:00")`` or ``wait(until_date="birthday")``."""
    if duration is not None:
        if until is not None or until_date is not None:
            raise TypeError("wait takes a duration, or until / until_date, not both")
        return _touchpoint("wait", duration, id)
    timed = _build(
        WaitUntilSpec,
        until=until,
        weekdays=list(weekdays) if weekdays is not None else None,
        until_date=until_date,
        offset=offset,
        at=at,
        yearly=yearly,
    )
    return _touchpoint("wait", timed, id)


def wait_for(
    event: str | None = None,
    *,
    timeout: Duration,
    where: Where | None = None,
    enters_segment: str | None = None,
    leaves_segment: str | None = None,
    lookback: Duration = 0,
    on_event: Touchpoints = (),
    on_timeout: Touchpoints = (),
    id: str | None = None,
) -> TouchpointSpec:
    """Pause until ``event`` arrives or the customer ``enters_segment`` / ``leaves_segment``
    (then ``on_event``), at most ``timeout`` (then ``on_timeout``)."""
    spec = _build(
        WaitForSpec,
        event=event,
        where=where,
        enters_segment=enters_segment,
        leaves_segment=leaves_segment,
        timeout=timeout,
        lookback=lookback,
        on_event=list(on_event),
        on_timeout=list(on_timeout),
    )
    return _touchpoint("wait_for", spec, id)


def branch(
    cases: Sequence[tuple[str, Touchpoints]],
    otherwise: Touchpoints = (),
    *,
    id: str | None = None,
) -> TouchpointSpec:
    """The first ``(condition, touchpoints)`` case that holds runs, else ``otherwise``."""
    spec = _build(
        BranchSpec,
        cases=[{"when": when, "then": list(then)} for when, then in cases],
        otherwise=list(otherwise),
    )
    return _touchpoint("branch", spec, id)


def path(name: str, *then: TouchpointSpec, weight: int = 1) -> PathSpec:
    """A path of a ``split`` or a variant of an ``experiment``."""
    return _build(PathSpec, name=name, weight=weight, then=list(then))


def split(*paths: PathSpec, id: str | None = None) -> TouchpointSpec:
    """Random paths by weight: ``split(path("a", ..., weight=3), path("b", ...))``."""
    return _touchpoint("split", list(paths), id)


def metric(event: str, *, within: Duration, where: Where | None = None) -> MetricSpec:
    """An experiment's success: ``event`` within ``within`` of entering the experiment."""
    return _build(MetricSpec, event=event, where=where, within=within)


def decide(after: Duration, *, min_per_variant: int = 100, confidence: float = 0.95) -> DecideSpec:
    """When an experiment picks its winner."""
    return _build(DecideSpec, after=after, min_per_variant=min_per_variant, confidence=confidence)


def experiment(
    *variants: PathSpec,
    control: str,
    metric: MetricSpec,
    decide: DecideSpec | None = None,
    id: str | None = None,
) -> TouchpointSpec:
    """An A/B/n test of ``variants`` (see ``path``) against ``control``."""
    spec = _build(
        ExperimentSpec, variants=list(variants), control=control, metric=metric, decide=decide
    )
    return _touchpoint("experiment", spec, id)


def update(
    *,
    set: Mapping[str, Scalar] | None = None,
    increment: Mapping[str, int | float] | None = None,
    tags: Sequence[str] = (),
    id: str | None = None,
) -> TouchpointSpec:
    """Change the profile: ``set`` traits, ``increment`` numbers, add ``tags``."""
    spec = _build(UpdateSpec, set=set, increment=increment, tags=list(tags))
    return _touchpoint("update", spec, id)


def goto(target: str, *, id: str | None = None) -> TouchpointSpec:
    """Jump to a stage or a step id."""
    return _touchpoint("goto", target, id)


def exit_(reason: str | Literal[True] = True, *, id: str | None = None) -> TouchpointSpec:
    """Leave the journey, with the ``reason`` shown in reports."""
    return _touchpoint("exit", reason, id)


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


def dump_yaml(spec: JourneySpec, *, schema: str | None = None) -> str:
    """The journey as a file: block style, keys in model order, defaults left out.

    ``schema`` (a path or URL of ``journey.schema.json``) adds the comment editors read.
    """
    data = _prune(spec.model_dump(mode="json", exclude_defaults=True))
    text = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100, indent=2)
    header = f"# yaml-language-server: $schema={schema}\n" if schema else ""
    return header + text


def _build(model: type[_Model], **fields: Any) -> _Model:
    # Left out, a field takes its default, as a key missing from a file does.
    return model.model_validate({key: value for key, value in fields.items() if value is not None})


def _touchpoint(kind: str, value: object, id: str | None) -> TouchpointSpec:
    return _build(TouchpointSpec, id=id, **{kind: value})


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


def _prune(value: Any) -> Any:
    """Leave out empty mappings: a model whose fields are all at their default (``cap: {}``)."""
    if isinstance(value, dict):
        pruned = {key: _prune(item) for key, item in value.items()}
        return {key: item for key, item in pruned.items() if item != {}}
    if isinstance(value, list):
        return [_prune(item) for item in value]
    return value


_STR = "tag:yaml.org,2002:str"
_OPERATORS = frozenset(OPERATORS)


class _Dumper(yaml.SafeDumper):
    """PyYAML's safe dumper, writing lists indented under their key as journey files do."""

    def increase_indent(self, flow: bool = False, indentless: bool = False) -> None:
        super().increase_indent(flow, False)


def _represent_str(dumper: _Dumper, value: str) -> yaml.ScalarNode:
    if "\n" in value:
        return dumper.represent_scalar(_STR, value, style="|")
    # Quote what YAML would read as something else ("09:00", "yes", "null") or cannot
    # write plain ("{{ ... }}"), in double quotes like the shipped files.
    analysis = dumper.analyze_scalar(value)
    plain = analysis.allow_flow_plain and analysis.allow_block_plain and not analysis.empty
    if not plain or _resolve(dumper, value) != _STR:
        return dumper.represent_scalar(_STR, value, style='"')
    return dumper.represent_scalar(_STR, value)


def _resolve(dumper: _Dumper, value: str) -> str:
    """The tag YAML gives ``value`` written plain."""
    tag: str = dumper.resolve(yaml.ScalarNode, value, (True, False))  # type: ignore[no-untyped-call]
    return tag


def _is_scalar(value: object) -> bool:
    return value is None or (isinstance(value, str | int | float | bool) and "\n" not in str(value))


def _represent_list(dumper: _Dumper, items: list[Any]) -> yaml.SequenceNode:
    # Short lists of scalars read best inline: weekdays: [mon, tue], tags: [welcomed].
    flow = all(_is_scalar(item) for item in items)
    return dumper.represent_sequence("tag:yaml.org,2002:seq", items, flow_style=flow)


def _represent_dict(dumper: _Dumper, mapping: dict[str, Any]) -> yaml.MappingNode:
    # Conditions inline, as in the docs: cart.total: {gte: 20, lt: 500}.
    flow = bool(mapping) and mapping.keys() <= _OPERATORS
    flow = flow and all(_is_scalar(v) or isinstance(v, list) for v in mapping.values())
    return dumper.represent_mapping("tag:yaml.org,2002:map", mapping, flow_style=flow)


_Dumper.add_representer(str, _represent_str)
_Dumper.add_representer(list, _represent_list)
_Dumper.add_representer(dict, _represent_dict)
