"""One journey's numbers, shaped for the map: stages with their touchpoints, and totals.

Built from the plan (which stages and touchpoints exist, in order), the per-stage funnel
counters and the per-touchpoint KPIs, with no I/O, so the page and the live stream agree.

Definitions a reader of the dashboard relies on (docs/dashboard.md):

- a stage's *drop-off* is the customers who left it without converting: ``moved_on``
  (no goal reached) plus ``exited``; the *busiest drop-off* is the stage where that number
  is largest (the first such stage on a tie, none while it is 0 everywhere);
- a *key station* is the touchpoint of its stage that was the last touch of the most
  conversions (every one tied for the most; none while the stage has no conversions);
- an *observed* station is a touchpoint the engine does not send (the website, social media,
  an event, a store): it is only measured, by the KPI the journey declares for it, so it is
  never key;
- the journey's *entered* is the entries into its first stage, *converted* the customers
  who reached the journey's goal or the last stage's goal, *inside now* everyone in a stage.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from journeyman.orchestrator.proportions import Interval, wilson
from journeyman.orchestrator.storage.funnel import StageFunnel
from journeyman.orchestrator.storage.kpis import TouchpointKind, counted_as
from journeyman.orchestrator.storage.touchpoint_report import TouchpointKpis
from journeyman.workflows.plan import Plan, SendStep, Step, children

from . import formatting as fmt


@dataclass(frozen=True)
class Measure:
    """A touchpoint's declared goal and KPI, and what the KPI counted (docs/kpis.md)."""

    goal: str | None = None
    kpi: str | None = None  # the KPI's name (orders, visits); None: no KPI declared
    kpi_event: str | None = None  # what counts one: an event's name, ``page``, ``screen``
    count: int = 0  # KPI events counted
    customers: int = 0  # distinct customers who sent them

    @property
    def declared(self) -> bool:
        return self.goal is not None or self.kpi is not None


@dataclass(frozen=True)
class Station:
    """A send step on the map, with what became of its messages and its goal and KPI."""

    step_id: str
    channel: str
    nested_in: str | None  # the branch, split, wait or experiment step it sits under
    sent: int = 0
    opened: int = 0
    clicked: int = 0
    conversions: int = 0
    key: bool = False
    measure: Measure = Measure()


@dataclass(frozen=True)
class Observed:
    """A touchpoint of a stage the engine does not send (``observe`` in the journey file),
    with its goal and what its KPI counted among the customers in the stage."""

    touchpoint_id: str
    measure: Measure


@dataclass(frozen=True)
class Stage:
    name: str
    entered: int
    current: int
    converted: int
    moved_on: int
    exited: int
    goal: int
    migrated: int
    stations: tuple[Station, ...]
    in_plan: bool  # False for a stage only older versions had
    dropoff: bool = False
    observed: tuple[Observed, ...] = ()

    @property
    def dropped(self) -> int:
        """Left without converting: no goal reached, or exited."""
        return self.moved_on + self.exited

    @property
    def interval(self) -> Interval:
        return wilson(min(self.converted, self.entered), self.entered)


@dataclass(frozen=True)
class Totals:
    entered: int
    current: int
    converted: int

    @property
    def interval(self) -> Interval:
        return wilson(min(self.converted, self.entered), self.entered)


@dataclass(frozen=True)
class Board:
    journey_id: str
    version: str  # the plan drawn: the version asked for, or the active one
    stages: tuple[Stage, ...]
    totals: Totals
    # Every touchpoint of the touchpoints report: observed ones and send steps, older
    # versions' send steps too.
    touchpoints: tuple[TouchpointKpis, ...]

    @property
    def dropoff(self) -> Stage | None:
        return next((s for s in self.stages if s.dropoff), None)

    def layout(self) -> str:
        """What the drawing depends on beyond the numbers: a change needs a new page."""
        keys = ",".join(st.step_id for s in self.stages for st in s.stations if st.key)
        found = self.dropoff
        return f"{self.version}|{found.name if found else ''}|{keys}"


def stations(plan: Plan) -> dict[str, list[Station]]:
    """Every send step of each stage, nested ones included, in document order."""

    def visit(steps: list[Step], parent: str | None, into: list[Station]) -> None:
        for step in steps:
            if isinstance(step, SendStep):
                measure = Measure(
                    goal=step.goal,
                    kpi=step.kpi.name if step.kpi is not None else None,
                    kpi_event=counted_as(step.kpi) if step.kpi is not None else None,
                )
                into.append(Station(step.id, step.channel, parent, measure=measure))
            for nested in children(step):
                visit(nested, step.id, into)

    found: dict[str, list[Station]] = {}
    for stage in plan.stages:
        visit(stage.steps, None, found.setdefault(stage.name, []))
    return found


def observed(plan: Plan) -> dict[str, list[Observed]]:
    """Every observed touchpoint of each stage, in document order."""
    return {
        stage.name: [
            Observed(seen.id, Measure(seen.goal, seen.kpi.name, counted_as(seen.kpi)))
            for seen in stage.observed
        ]
        for stage in plan.stages
    }


def _counted(measure: Measure, kpis: TouchpointKpis | None) -> Measure:
    if kpis is None or measure.kpi is None:
        return measure
    return replace(measure, count=kpis.kpi_count or 0, customers=kpis.kpi_customers or 0)


def _with_counts(station: Station, kpis: TouchpointKpis | None) -> Station:
    if kpis is None:
        return station
    return replace(
        station,
        sent=kpis.sent,
        opened=kpis.opened,
        clicked=kpis.clicked,
        conversions=kpis.conversions,
        measure=_counted(station.measure, kpis),
    )


def _mark_keys(found: list[Station]) -> tuple[Station, ...]:
    best = max((s.conversions for s in found), default=0)
    return tuple(replace(s, key=best > 0 and s.conversions == best) for s in found)


def build(plan: Plan, funnel: list[StageFunnel], touchpoints: list[TouchpointKpis]) -> Board:
    """The board of ``plan`` from its counters (``funnel`` may list stages the plan lacks)."""
    # By kind too: an observed touchpoint may share its id with an older version's send step.
    by_step = {(t.kind, t.step_id): t for t in touchpoints}
    placed = stations(plan)
    seen = observed(plan)
    in_plan = {s.name for s in plan.stages}
    drafts = [
        Stage(
            name=row.stage,
            entered=row.entered,
            current=row.current,
            converted=row.converted,
            moved_on=row.moved_on,
            exited=row.exited,
            goal=row.goal,
            migrated=row.migrated,
            stations=_mark_keys(
                [
                    _with_counts(s, by_step.get(("message", s.step_id)))
                    for s in placed.get(row.stage, [])
                ]
            ),
            in_plan=row.stage in in_plan,
            observed=tuple(
                replace(o, measure=_counted(o.measure, by_step.get(("observed", o.touchpoint_id))))
                for o in seen.get(row.stage, [])
            ),
        )
        for row in funnel
    ]
    worst = max((s.dropped for s in drafts), default=0)
    worst_name = next((s.name for s in drafts if worst > 0 and s.dropped == worst), None)
    stages = tuple(replace(s, dropoff=s.name == worst_name) for s in drafts)
    by_name = {s.name: s for s in stages}
    first = by_name.get(plan.stages[0].name) if plan.stages else None
    last = by_name.get(plan.stages[-1].name) if plan.stages else None
    totals = Totals(
        entered=first.entered if first else 0,
        current=sum(s.current for s in stages),
        converted=sum(s.goal for s in stages) + (last.converted if last else 0),
    )
    return Board(plan.journey_id, plan.version, stages, totals, tuple(touchpoints))


# The columns of the touchpoint table, each a live number.
TOUCHPOINT_COUNTS = (
    "sent",
    "delivered",
    "opened",
    "clicked",
    "unsubscribed",
    "failed",
    "bounced",
    "suppressed",
    "conversions",
)


def numbers(board: Board) -> dict[str, str]:
    """Every number the page shows that can change while it is open, by live key."""
    out: dict[str, str] = {fmt.LAYOUT_KEY: board.layout()}
    totals = board.totals
    out[fmt.journey_key("entered")] = fmt.count(totals.entered)
    out[fmt.journey_key("current")] = fmt.count(totals.current)
    out[fmt.journey_key("converted")] = fmt.count(totals.converted)
    out[fmt.journey_key("rate")] = fmt.rate(totals.converted, totals.entered)
    for stage in board.stages:
        name = stage.name
        out[fmt.stage_key(name, "entered")] = fmt.count(stage.entered)
        out[fmt.stage_key(name, "current")] = fmt.count(stage.current)
        out[fmt.stage_key(name, "converted")] = fmt.count(stage.converted)
        out[fmt.stage_key(name, "rate")] = fmt.rate(stage.converted, stage.entered)
        out[fmt.stage_key(name, "dropped")] = fmt.count(stage.dropped)
        out[fmt.stage_key(name, "moved_on")] = fmt.count(stage.moved_on)
        out[fmt.stage_key(name, "exited")] = fmt.count(stage.exited)
        out[fmt.stage_key(name, "goal")] = fmt.count(stage.goal)
    for row in board.touchpoints:
        if row.kind == "observed":
            if row.kpi is not None:
                out.update(_kpi_numbers(row.step_id, "observed", row.kpi_count, row.kpi_customers))
            continue
        for field in TOUCHPOINT_COUNTS:
            out[fmt.step_key(row.step_id, field)] = fmt.count(getattr(row, field))
        out[fmt.step_key(row.step_id, "opened_rate")] = fmt.rate(row.opened, row.sent)
        out[fmt.step_key(row.step_id, "clicked_rate")] = fmt.rate(row.clicked, row.sent)
        if row.kpi is not None:
            out.update(_kpi_numbers(row.step_id, "message", row.kpi_count, row.kpi_customers))
    for stage in board.stages:
        # A station the ledger has not seen yet still shows its zeros.
        for station in stage.stations:
            step = station.step_id
            out.setdefault(fmt.step_key(step, "sent"), fmt.count(station.sent))
            out.setdefault(fmt.step_key(step, "opened_rate"), fmt.NONE)
            out.setdefault(fmt.step_key(step, "clicked_rate"), fmt.NONE)
            out.setdefault(fmt.step_key(step, "conversions"), fmt.count(station.conversions))
            if station.measure.kpi is not None:
                found = station.measure
                _keep(out, _kpi_numbers(step, "message", found.count, found.customers))
        for seen in stage.observed:
            found = seen.measure
            _keep(out, _kpi_numbers(seen.touchpoint_id, "observed", found.count, found.customers))
    return out


def _keep(out: dict[str, str], defaults: dict[str, str]) -> None:
    """Add the ``defaults`` that ``out`` has no value for."""
    for key, value in defaults.items():
        out.setdefault(key, value)


def _kpi_numbers(
    touchpoint_id: str, kind: TouchpointKind, count: int | None, customers: int | None
) -> dict[str, str]:
    """A KPI's live numbers: its count, its customers, and the customers in words."""
    key = fmt.kpi_key(touchpoint_id, kind)
    return {
        key("kpi_count"): fmt.count(count or 0),
        key("kpi_customers"): fmt.count(customers or 0),
        key("kpi_customers_text"): fmt.customers(customers or 0),
    }
