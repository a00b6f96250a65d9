"""Plan steps built from touchpoints, and the event matches and KPIs that steps and stages hold.

``StepBuilder`` remembers where in the file each step came from, so that the checks of the
built plan (``checks.py``) can place their problems.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Literal

from journeyman.orchestrator.customers.events import (
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    SEGMENT_PROPERTY,
)
from journeyman.workflows.plan import (
    WEEKDAYS,
    BranchStep,
    Case,
    Content,
    Decision,
    EventMatch,
    ExitStep,
    ExperimentStep,
    GotoStep,
    Kpi,
    LocalTime,
    PropertyTest,
    Route,
    SendStep,
    SplitStep,
    Step,
    TraitDate,
    UpdateStep,
    WaitForStep,
    WaitStep,
)

from .kpis import KpiSpec
from .locations import Loc
from .matches import EventSpec, MatchSpec
from .property_filters import Condition
from .sends import (
    EmailSendSpec,
    InAppSendSpec,
    PushSendSpec,
    SendSpec,
    SmsSendSpec,
    TemplateSpec,
    WebhookSendSpec,
)
from .spec import JourneySpec
from .touchpoints import PathSpec, TouchpointSpec, WaitUntilSpec


def match_of(spec: MatchSpec | EventSpec) -> EventMatch:
    """The event match a file's match compiles to; a segment change is the engine's event."""
    if isinstance(spec, MatchSpec) and spec.enters_segment is not None:
        return segment_match(SEGMENT_ENTERED, spec.enters_segment)
    if isinstance(spec, MatchSpec) and spec.leaves_segment is not None:
        return segment_match(SEGMENT_EXITED, spec.leaves_segment)
    assert spec.event is not None
    return _match(spec.event, spec.where)


def segment_match(event: str, segment_id: str) -> EventMatch:
    """``Segment Entered`` or ``Segment Exited`` for one segment: what the router and the
    interpreter see, so that segment hooks need nothing of their own there."""
    return EventMatch(
        event=event, where=[PropertyTest(path=SEGMENT_PROPERTY, op="eq", value=segment_id)]
    )


def entry_match(
    event: str | None, where: Mapping[str, Sequence[Condition]], segment: str | None
) -> EventMatch | None:
    """The match of a journey's entry: starting to match ``segment``, or ``event``; None for
    an entry by API call or schedule only."""
    if segment is not None:
        return segment_match(SEGMENT_ENTERED, segment)
    return _match(event, where) if event is not None else None


def _match(event: str, where: Mapping[str, Sequence[Condition]]) -> EventMatch:
    return EventMatch(event=event, where=_tests(where))


def _tests(where: Mapping[str, Sequence[Condition]]) -> list[PropertyTest]:
    tests = [
        PropertyTest(path=path, op=c.op, value=c.value)
        for path, conditions in where.items()
        for c in conditions
    ]
    # Sorted so that reordering the keys of a `where` never changes the version.
    return sorted(tests, key=lambda t: (t.path, t.op))


def kpi_of(spec: KpiSpec) -> Kpi:
    """The KPI a file's ``kpi`` compiles to: its name and what counts one."""
    where = _tests(spec.where)
    if spec.event is not None:
        return Kpi(name=spec.name, event=spec.event, where=where)
    kind: Literal["page", "screen"] = "page" if spec.page is not None else "screen"
    view = spec.page if spec.page is not None else spec.screen
    named = view if isinstance(view, str) else None  # true: every page (or screen)
    return Kpi(name=spec.name, type=kind, event=named, where=where)


def _optional_kpi(spec: KpiSpec | None) -> Kpi | None:
    return kpi_of(spec) if spec is not None else None


class StepBuilder:
    """Builds plan steps from touchpoints, remembering where in the file each step came from."""

    def __init__(self, spec: JourneySpec) -> None:
        self.spec = spec
        self.locations: dict[str, Loc] = {}

    def build(self, touchpoints: Sequence[TouchpointSpec], prefix: str, loc: Loc) -> list[Step]:
        # Default ids come from 1-based positions: stable for a file, readable in logs.
        steps: list[Step] = []
        for position, touchpoint in enumerate(touchpoints, start=1):
            step_id = touchpoint.step_id or f"{prefix}.{position}"
            here = (*loc, position - 1)
            self.locations.setdefault(step_id, here)
            steps.append(self._step(touchpoint, step_id, here))
        return steps

    def _step(self, touchpoint: TouchpointSpec, step_id: str, loc: Loc) -> Step:
        kind = touchpoint.kind
        if touchpoint.send is not None:
            return self._send(touchpoint.send, step_id)
        if kind == "wait":
            return _wait(touchpoint.wait, step_id)
        if touchpoint.wait_for is not None:
            spec = touchpoint.wait_for
            at = (*loc, "wait_for")
            return WaitForStep(
                id=step_id,
                match=match_of(spec),
                timeout_seconds=spec.timeout,
                lookback_seconds=spec.lookback,
                on_event=self.build(spec.on_event, f"{step_id}.event", (*at, "on_event")),
                on_timeout=self.build(spec.on_timeout, f"{step_id}.timeout", (*at, "on_timeout")),
            )
        if touchpoint.branch is not None:
            at = (*loc, "branch")
            return BranchStep(
                id=step_id,
                cases=[
                    Case(
                        when=case.when,
                        steps=self.build(
                            case.then, f"{step_id}.case{n}", (*at, "cases", n - 1, "then")
                        ),
                    )
                    for n, case in enumerate(touchpoint.branch.cases, start=1)
                ],
                otherwise=self.build(
                    touchpoint.branch.otherwise, f"{step_id}.otherwise", (*at, "otherwise")
                ),
            )
        if touchpoint.split is not None:
            return SplitStep(
                id=step_id, paths=self._paths(touchpoint.split, step_id, (*loc, "split"))
            )
        if touchpoint.experiment is not None:
            spec_x = touchpoint.experiment
            at = (*loc, "experiment", "variants")
            decide = spec_x.decide
            return ExperimentStep(
                id=step_id,
                variants=self._paths(spec_x.variants, step_id, at),
                control=spec_x.control,
                metric=match_of(spec_x.metric),
                window_seconds=spec_x.metric.within,
                decide=(
                    Decision(
                        after_seconds=decide.after,
                        min_per_variant=decide.min_per_variant,
                        confidence=decide.confidence,
                    )
                    if decide is not None
                    else None
                ),
            )
        if touchpoint.update is not None:
            update = touchpoint.update
            return UpdateStep(
                id=step_id, set=update.set, increment=update.increment, tags=update.tags
            )
        if touchpoint.goto is not None:
            stages = {stage.name for stage in self.spec.stages}
            return GotoStep(id=step_id, target=touchpoint.goto, stage=touchpoint.goto in stages)
        reason = touchpoint.exit if isinstance(touchpoint.exit, str) else None
        return ExitStep(id=step_id, reason=reason)

    def _paths(self, paths: Sequence[PathSpec], step_id: str, loc: Loc) -> list[Route]:
        return [
            Route(
                name=path.name,
                weight=path.weight,
                steps=self.build(path.then, f"{step_id}.{path.name}", (*loc, n, "then")),
            )
            for n, path in enumerate(paths)
        ]

    def _send(self, send: SendSpec, step_id: str) -> SendStep:
        if isinstance(send, EmailSendSpec):
            return self._email(send, step_id)
        if isinstance(send, SmsSendSpec):
            return SendStep(
                id=step_id,
                channel="sms",
                body=send.body,
                group=send.group,
                goal=send.goal,
                kpi=_optional_kpi(send.kpi),
                locales={
                    name: Content(subject="", body=c.body) for name, c in send.locales.items()
                },
            )
        if isinstance(send, PushSendSpec | InAppSendSpec):
            # A notification's title is the plan's subject, as the plan model says.
            return SendStep(
                id=step_id,
                channel=send.channel,
                subject=send.title,
                body=send.body,
                data=send.data,
                group=send.group,
                goal=send.goal,
                kpi=_optional_kpi(send.kpi),
                locales={
                    name: Content(subject=c.title, body=c.body) for name, c in send.locales.items()
                },
            )
        if isinstance(send, WebhookSendSpec):
            return SendStep(
                id=step_id,
                channel="webhook",
                url=send.url,
                method=send.method,
                headers=send.headers,
                body=send.body or "",
                group=send.group,
                goal=send.goal,
                kpi=_optional_kpi(send.kpi),
            )
        raise AssertionError(f"a send on channel {send.channel!r} never validates")

    def _email(self, send: EmailSendSpec, step_id: str) -> SendStep:
        if send.template is not None:
            template = self.spec.templates.get(send.template)
            if template is None:
                # Reported by the checks with its location; build a placeholder meanwhile.
                return SendStep(
                    id=step_id,
                    channel="email",
                    subject="",
                    body="",
                    group=send.group,
                    template=send.template,
                    goal=send.goal,
                    kpi=_optional_kpi(send.kpi),
                )
            content: TemplateSpec | EmailSendSpec = template
            locales = template.locales
        else:
            content, locales = send, send.locales
        assert content.subject is not None and content.body is not None
        return SendStep(
            id=step_id,
            channel="email",
            subject=content.subject,
            body=content.body,
            html=content.html,
            group=send.group,
            locales={
                name.lower(): Content(subject=c.subject, body=c.body, html=c.html)
                for name, c in locales.items()
            },
            template=send.template,
            goal=send.goal,
            kpi=_optional_kpi(send.kpi),
        )


def _wait(wait: int | WaitUntilSpec | None, step_id: str) -> WaitStep:
    if isinstance(wait, int):
        return WaitStep(id=step_id, seconds=wait)
    assert wait is not None
    if wait.until is not None:
        weekdays = list(wait.weekdays) if wait.weekdays is not None else list(WEEKDAYS)
        return WaitStep(id=step_id, until_time=LocalTime(at=wait.until, weekdays=weekdays))
    assert wait.until_date is not None
    return WaitStep(
        id=step_id,
        until_date=TraitDate(
            trait=wait.until_date, offset_seconds=wait.offset, at=wait.at, yearly=wait.yearly
        ),
    )
