"""Semantic checks on a compiled journey: what the file's grammar cannot see on its own.

Errors stop a deploy: unknown template or goto target, an unreachable step, a loop that no
wait slows down, a goal or KPI no event can satisfy, a condition that does not parse, a segment
the journeys folder does not define. Warnings do not: a condition that reads a trait nothing
declares, a segment that cannot be checked because no segments folder is known, a send's goal
without a KPI to measure it.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from journeyman.orchestrator.customers.events import (
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    SEGMENT_PROPERTY,
)
from journeyman.workflows import expressions
from journeyman.workflows.plan import (
    BranchStep,
    EventMatch,
    ExitStep,
    ExperimentStep,
    GotoStep,
    Kpi,
    Plan,
    PropertyTest,
    SendStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
    children,
    walk,
)
from journeyman.workflows.program import compile_stage

from .kpis import KpiSpec
from .locations import Loc
from .property_filters import Condition
from .spec import EventSpec, JourneySpec, MatchSpec, TouchpointSpec

# Traits the Segment spec reserves for identify calls, and ones the engine itself reads.
WELL_KNOWN_TRAITS = frozenset(
    {
        "address", "age", "avatar", "birthday", "company", "created_at", "description",
        "email", "first_name", "gender", "id", "last_name", "locale", "name", "phone",
        "tags", "timezone", "title", "username", "website",
    }
)  # fmt: skip


@dataclass(frozen=True)
class Problem:
    loc: Loc
    message: str
    severity: Literal["error", "warning"] = "error"


def check(
    spec: JourneySpec,
    plan: Plan,
    locations: Mapping[str, Loc],
    *,
    segments: Collection[str] | None = None,
) -> list[Problem]:
    """Every semantic problem of a plan; ``locations`` maps step ids to their place in the file.

    ``segments``: the segment ids defined beside the journey; None when no segments folder
    is known, which turns an unknown segment from an error into a warning.
    """
    problems: list[Problem] = []
    steps = [step for stage in plan.stages for step in walk(stage.steps)]
    names = {stage.name for stage in plan.stages}
    ids = {step.id for step in steps}
    targets_exist = True
    for step in steps:
        loc = locations.get(step.id, ())
        if isinstance(step, SendStep) and step.template and step.template not in spec.templates:
            known = ", ".join(sorted(spec.templates)) or "none are defined"
            message = f"unknown template '{step.template}' (templates: {known})"
            problems.append(Problem((*loc, "send", "template"), message))
        if isinstance(step, GotoStep) and step.target not in names | ids:
            message = f"goto target '{step.target}' is neither a stage nor a step id"
            problems.append(Problem((*loc, "goto"), message))
            targets_exist = False
        if isinstance(step, GotoStep) and step.target in names and step.target in ids:
            # It goes to the stage: unless the step opens that stage, the step id is ignored.
            stage = plan.stages[plan.stage_index(step.target)]
            if not stage.steps or stage.steps[0].id != step.target:
                message = f"goto target '{step.target}' is both a stage and a step id; rename one"
                problems.append(Problem((*loc, "goto"), message))
    for stage in plan.stages:
        problems.extend(_unreachable(stage.steps, locations))
    if targets_exist:  # the flow is only well defined once every target exists
        problems.extend(_loops(plan, locations))
    problems.extend(_impossible(spec, plan, locations))
    problems.extend(_conditions(spec, plan, locations, steps))
    problems.extend(_segments(spec, segments))
    problems.extend(_unmeasured(steps, locations))
    return problems


def _unmeasured(steps: Sequence[Step], locations: Mapping[str, Loc]) -> Iterator[Problem]:
    """A send's goal with no KPI: the touchpoints report can show it, never measure it."""
    for step in steps:
        if isinstance(step, SendStep) and step.goal is not None and step.kpi is None:
            message = (
                f"goal '{step.goal}' has no kpi to measure it; add"
                " kpi: {name: ..., event: ...} beside it"
            )
            yield Problem((*locations.get(step.id, ()), "send", "goal"), message, "warning")


def segment_references(spec: JourneySpec) -> Iterator[tuple[str, Loc]]:
    """Every segment id the journey names, with its place: the short forms (``segment``,
    ``enters_segment``, ``leaves_segment``) and engine events written out in full."""
    entry = spec.entry
    if entry.segment is not None:
        yield entry.segment, ("entry", "segment")
    elif entry.event is not None:
        yield from _named_in_event(entry.event, entry.where, ("entry",))
    matches: list[tuple[MatchSpec | EventSpec, Loc]] = []
    if spec.goal is not None:
        matches.append((spec.goal, ("goal",)))
    matches.extend((match, ("exit", n)) for n, match in enumerate(spec.exit))
    for s, stage in enumerate(spec.stages):
        if stage.goal is not None:
            matches.append((stage.goal, ("stages", s, "goal")))
        for touchpoint, loc in _touchpoints(stage.touchpoints, ("stages", s, "touchpoints")):
            if touchpoint.wait_for is not None:
                matches.append((touchpoint.wait_for, (*loc, "wait_for")))
            if touchpoint.experiment is not None:
                matches.append((touchpoint.experiment.metric, (*loc, "experiment", "metric")))
    for match, loc in matches:
        if isinstance(match, MatchSpec) and match.enters_segment is not None:
            yield match.enters_segment, (*loc, "enters_segment")
        elif isinstance(match, MatchSpec) and match.leaves_segment is not None:
            yield match.leaves_segment, (*loc, "leaves_segment")
        elif match.event is not None:
            yield from _named_in_event(match.event, match.where, loc)
    for kpi, loc in _kpis(spec):
        if kpi.event is not None:
            yield from _named_in_event(kpi.event, kpi.where, loc)


def _kpis(spec: JourneySpec) -> Iterator[tuple[KpiSpec, Loc]]:
    """Every KPI of the journey as written, sends' and observed touchpoints', with its place."""
    for s, stage in enumerate(spec.stages):
        for n, seen in enumerate(stage.observe):
            yield seen.kpi, ("stages", s, "observe", n, "kpi")
        for touchpoint, loc in _touchpoints(stage.touchpoints, ("stages", s, "touchpoints")):
            if touchpoint.send is not None and touchpoint.send.kpi is not None:
                yield touchpoint.send.kpi, (*loc, "send", "kpi")


def _touchpoints(
    touchpoints: Sequence[TouchpointSpec], loc: Loc
) -> Iterator[tuple[TouchpointSpec, Loc]]:
    for index, touchpoint in enumerate(touchpoints):
        here = (*loc, index)
        yield touchpoint, here
        for nested, under in touchpoint.nested():
            yield from _touchpoints(nested, (*here, *under))


def _named_in_event(
    event: str, where: Mapping[str, Sequence[Condition]], loc: Loc
) -> Iterator[tuple[str, Loc]]:
    """Segment ids in a filter on the engine's own segment events, written out in full."""
    if event not in (SEGMENT_ENTERED, SEGMENT_EXITED):
        return
    for condition in where.get(SEGMENT_PROPERTY, ()):
        value = condition.value
        values = value if isinstance(value, list) else [value]
        if condition.op in ("eq", "one_of"):
            for item in values:
                if isinstance(item, str):
                    yield item, (*loc, "where", SEGMENT_PROPERTY)


def _segments(spec: JourneySpec, known: Collection[str] | None) -> Iterator[Problem]:
    for segment_id, loc in segment_references(spec):
        if known is None:
            message = (
                f"segment '{segment_id}' is not checked: no segments/ folder is known beside"
                " this journey; a segment with this id must be deployed for it to match"
            )
            yield Problem(loc, message, "warning")
        elif segment_id not in known:
            names = ", ".join(sorted(known)) or "none are defined"
            yield Problem(loc, f"unknown segment '{segment_id}' (segments: {names})")


def _unreachable(steps: Sequence[Step], locations: Mapping[str, Loc]) -> Iterator[Problem]:
    for index, step in enumerate(steps):
        for nested in children(step):
            yield from _unreachable(nested, locations)
        if isinstance(step, GotoStep | ExitStep) and index + 1 < len(steps):
            after = steps[index + 1]
            kind = "goto" if isinstance(step, GotoStep) else "exit"
            message = f"step '{after.id}' can never run: it comes after {kind} '{step.id}'"
            yield Problem(locations.get(after.id, ()), message)


def _is_wait(step: Step | None) -> bool:
    """Whether time always passes at this step, whatever the customer's data."""
    if isinstance(step, WaitForStep):
        return step.lookback_seconds == 0
    return isinstance(step, WaitStep) and (
        step.seconds > 0
        or step.until_time is not None
        or (step.until_date is not None and step.until_date.yearly)
    )


def _ends_at_once(step: Step | None) -> str | None:
    """Why a wait that is not ``_is_wait`` can end without time passing."""
    if isinstance(step, WaitForStep) and not _is_wait(step):
        return "a wait_for with lookback finds the same past event again"
    if isinstance(step, WaitStep) and step.until_date is not None and not _is_wait(step):
        return "a wait until a date that is not yearly ends at once when the date has passed"
    if isinstance(step, WaitStep) and not _is_wait(step):
        return "it waits 0 seconds"
    return None


def _loops(plan: Plan, locations: Mapping[str, Loc]) -> Iterator[Problem]:
    """A cycle in the flow that passes through no wait would spin without time passing."""
    programs = [compile_stage(plan, stage) for stage in plan.stages]
    edges: dict[tuple[int, int], list[tuple[int, int]]] = {}
    for s, program in enumerate(programs):
        for pc, instruction in enumerate(program.instructions):
            node = (s, pc)
            if _is_wait(instruction.step):
                edges[node] = []  # time passes here: no cycle goes on through it
            elif instruction.op == "wait_for":
                # With lookback, an event already there ends it at once; a timeout takes time.
                edges[node] = [(s, instruction.targets[0])]
            elif instruction.op in ("jump", "choose"):
                edges[node] = [(s, target) for target in instruction.targets]
            elif instruction.op == "goto":
                assert instruction.stage is not None
                edges[node] = [(instruction.stage, instruction.targets[0])]
            elif instruction.op == "exit":
                edges[node] = []
            else:
                edges[node] = [(s, pc + 1)]
        # The end of a stage: with a goal the customer waits for it; without, moves on.
        end = (s, program.end)
        has_next = plan.stages[s].goal is None and s + 1 < len(programs)
        edges[end] = [(s + 1, 0)] if has_next else []
    state: dict[tuple[int, int], int] = {}  # 1: on the current path, 2: done
    for start in edges:
        cycle = _find_cycle(start, edges, state)
        if cycle is not None:
            on_cycle = [
                programs[s].instructions[pc].step if pc < programs[s].end else None
                for s, pc in cycle
            ]
            s, step = cycle[-1][0], on_cycle[-1]
            where = locations.get(step.id, ()) if step is not None else ("stages", s)
            message = "this loop has no wait in it: it would repeat without time passing"
            for waiting in on_cycle:
                reason = _ends_at_once(waiting)
                if waiting is not None and reason is not None:
                    message = (
                        f"this loop can repeat without time passing: '{waiting.id}' can end"
                        f" at once ({reason})"
                    )
                    break
            yield Problem(where, message)
            return


def _find_cycle(
    start: tuple[int, int],
    edges: Mapping[tuple[int, int], list[tuple[int, int]]],
    state: dict[tuple[int, int], int],
) -> list[tuple[int, int]] | None:
    """Iterative depth-first search; returns a cycle's nodes, the last one closing it."""
    if state.get(start):
        return None
    stack: list[tuple[tuple[int, int], Iterator[tuple[int, int]]]] = [
        (start, iter(edges.get(start, [])))
    ]
    state[start] = 1
    while stack:
        node, pending = stack[-1]
        following = next(pending, None)
        if following is None:
            state[node] = 2
            stack.pop()
            continue
        if state.get(following) == 1:
            path = [on_path for on_path, _ in stack]
            return path[path.index(following) :]
        if not state.get(following):
            state[following] = 1
            stack.append((following, iter(edges.get(following, []))))
    return None


def _matches(
    spec: JourneySpec, plan: Plan, locations: Mapping[str, Loc]
) -> Iterator[tuple[EventMatch, Loc, str]]:
    if plan.entry.match is not None:
        yield plan.entry.match, ("entry",), "entry"
    if plan.goal is not None:
        yield plan.goal.match, ("goal",), "goal"
    for n, match in enumerate(plan.exits):
        yield match, ("exit", n), "exit"
    for s, stage in enumerate(plan.stages):
        if stage.goal is not None:
            yield stage.goal, ("stages", s, "goal"), "goal"
        for step in walk(stage.steps):
            if isinstance(step, WaitForStep):
                yield step.match, (*locations.get(step.id, ()), "wait_for"), "wait_for"
            if isinstance(step, ExperimentStep):
                loc = (*locations.get(step.id, ()), "experiment", "metric")
                yield step.metric, loc, "metric"


def _impossible(spec: JourneySpec, plan: Plan, locations: Mapping[str, Loc]) -> Iterator[Problem]:
    filters = [(m.where, loc, what) for m, loc, what in _matches(spec, plan, locations)]
    filters.extend((kpi.where, loc, "kpi") for kpi, loc in _plan_kpis(plan, locations))
    for where, loc, what in filters:
        reason = unsatisfiable(where)
        if reason is not None:
            yield Problem((*loc, "where"), f"no event can satisfy this {what}: {reason}")


def _plan_kpis(plan: Plan, locations: Mapping[str, Loc]) -> Iterator[tuple[Kpi, Loc]]:
    for s, stage in enumerate(plan.stages):
        for n, seen in enumerate(stage.observed):
            yield seen.kpi, ("stages", s, "observe", n, "kpi")
        for step in walk(stage.steps):
            if isinstance(step, SendStep) and step.kpi is not None:
                yield step.kpi, (*locations.get(step.id, ()), "send", "kpi")


def unsatisfiable(tests: Sequence[PropertyTest]) -> str | None:
    """Why the tests on one property contradict each other, if they do."""
    by_path: dict[str, list[PropertyTest]] = {}
    for test in tests:
        by_path.setdefault(test.path, []).append(test)
    for path, group in by_path.items():
        low, high = float("-inf"), float("inf")
        low_open = high_open = False
        allowed: set[object] | None = None
        excluded: set[object] = set()
        must_exist: bool | None = None
        for test in group:
            value = test.value
            if test.op == "exists":
                must_exist = (
                    bool(value) if must_exist is None or must_exist == bool(value) else None
                )
                if must_exist is None:
                    return f"'{path}' must both exist and not exist"
            elif test.op == "eq":
                allowed = {_key(value)} if allowed is None else allowed & {_key(value)}
            elif test.op == "one_of" and isinstance(value, list):
                keys = {_key(v) for v in value}
                allowed = keys if allowed is None else allowed & keys
            elif test.op == "ne":
                excluded.add(_key(value))
            elif isinstance(value, int | float):
                number = float(value)
                if test.op in ("gt", "gte") and (
                    number > low or (number == low and test.op == "gt")
                ):
                    low, low_open = number, test.op == "gt"
                if test.op in ("lt", "lte") and (
                    number < high or (number == high and test.op == "lt")
                ):
                    high, high_open = number, test.op == "lt"
        numeric = low != float("-inf") or high != float("inf")
        if must_exist is False and (allowed is not None or numeric):
            return f"'{path}' must not exist, yet it is compared with a value"
        if low > high or (low == high and (low_open or high_open)):
            return f"'{path}' has no number between the bounds given"
        if allowed is not None:
            left = allowed - excluded
            if numeric:
                left = {v for v in left if _within(v, low, low_open, high, high_open)}
            if not left:
                return f"'{path}' has no value left that every test accepts"
    return None


def _key(value: object) -> object:
    # 1 and True are equal in Python but not in JSON events: keep them apart.
    return (type(value).__name__ if isinstance(value, bool) else "scalar", value)


def _within(key: object, low: float, low_open: bool, high: float, high_open: bool) -> bool:
    assert isinstance(key, tuple)
    kind, value = key
    if kind == "bool" or not isinstance(value, int | float):
        return False
    above = value > low if low_open else value >= low
    below = value < high if high_open else value <= high
    return above and below


def _conditions(
    spec: JourneySpec, plan: Plan, locations: Mapping[str, Loc], steps: Sequence[Step]
) -> Iterator[Problem]:
    known = set(WELL_KNOWN_TRAITS) | set(spec.traits)
    for step in steps:
        if isinstance(step, UpdateStep):
            known.update(step.set)
            known.update(step.increment)
    sources: list[tuple[Loc, str]] = []
    if plan.entry.schedule is not None and plan.entry.schedule.audience is not None:
        sources.append((("entry", "schedule", "audience"), plan.entry.schedule.audience))
    for step in steps:
        if isinstance(step, BranchStep):
            for n, case in enumerate(step.cases):
                where = (*locations.get(step.id, ()), "branch", "cases", n, "when")
                sources.append((where, case.when))
    for loc, source in sources:
        try:
            tree = expressions.parse(source)
        except expressions.ExpressionError as exc:
            yield Problem(loc, f"condition: {exc}")
            continue
        for trait in sorted(expressions.needs(tree).traits):
            if not any(trait == k or trait.startswith(k + ".") for k in known):
                message = (
                    f"condition reads trait '{trait}', which no identify trait, update step"
                    " or `traits:` entry declares"
                )
                yield Problem(loc, message, "warning")
