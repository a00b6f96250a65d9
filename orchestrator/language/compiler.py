"""Compile journey files into immutable ``Plan``s identified by a content hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection, Mapping, Sequence
from dataclasses import replace
from datetime import datetime
from pathlib import Path as FilePath
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from journeyman.orchestrator.customers.events import (
    SEGMENT_ENTERED,
    SEGMENT_EXITED,
    SEGMENT_PROPERTY,
)
from journeyman.orchestrator.customers.settings import SETTINGS_FILES
from journeyman.workflows.plan import (
    WEEKDAYS,
    BranchStep,
    Case,
    Content,
    Decision,
    Delivery,
    Entry,
    EntryCap,
    EventMatch,
    ExitStep,
    ExperimentStep,
    FrequencyCap,
    Goal,
    GotoStep,
    Kpi,
    LocalTime,
    ObservedTouchpoint,
    Plan,
    PropertyTest,
    QuietHours,
    Route,
    Schedule,
    SendStep,
    SplitStep,
    StagePlan,
    Step,
    TraitDate,
    UpdateStep,
    WaitForStep,
    WaitStep,
)

from .checks import Problem, check
from .fields import UNION_TAGS, Condition
from .kpis import KpiSpec
from .locations import (
    Diagnostic,
    Document,
    JourneyError,
    Loc,
    describe_value,
    load,
    render_path,
)
from .sends import (
    EmailSendSpec,
    InAppSendSpec,
    PushSendSpec,
    SendSpec,
    SmsSendSpec,
    TemplateSpec,
    WebhookSendSpec,
    misplaced_key,
    missing_key,
)
from .spec import (
    DefaultsSpec,
    EventSpec,
    JourneySpec,
    MatchSpec,
    PathSpec,
    StageSpec,
    TouchpointSpec,
    WaitUntilSpec,
)

# A stage with a goal must not hold customers forever when no default is set.
DEFAULT_MAX_DWELL_SECONDS = 30 * 86400
JOURNEY_SUFFIXES = (".yaml", ".yml")
# Beside the journeys: the folder of segment and persona files, and configuration files
# (customer data settings) that are neither journeys nor segments.
SEGMENTS_FOLDER = "segments"
CONFIGURATION_FILES = frozenset(SETTINGS_FILES)


def plan_hash(plan: Plan | Mapping[str, Any]) -> str:
    """The version of a plan: sha256 of its canonical JSON without ``version``, 16 hex chars.

    Fields at their default value are left out, so adding a field (with a default) to the
    plan model never changes the version of a journey that does not use it.
    """
    if not isinstance(plan, Plan):
        plan = Plan.model_validate({**plan, "version": ""})
    data = canonical_form(plan)
    del data["version"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def canonical_form(value: Any) -> Any:
    """JSON-ready data of a plan with fields at their default left out, except ``kind``
    (which tells step types apart, so two different steps never look the same)."""
    if isinstance(value, BaseModel):
        data: dict[str, Any] = {}
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            default = info.get_default(call_default_factory=True)
            if name != "kind" and name != "version" and item == default:
                continue
            data[name] = canonical_form(item)
        return data
    if isinstance(value, list | tuple):
        return [canonical_form(item) for item in value]
    if isinstance(value, dict):
        return {key: canonical_form(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def compile_source(
    text: str,
    *,
    source: str = "<string>",
    warnings: list[Diagnostic] | None = None,
    segments: Collection[str] | None = None,
) -> Plan:
    """Compile the text of a journey file, or raise ``JourneyError`` listing every problem.

    Warnings (the journey compiles, but something looks wrong) are appended to ``warnings``.
    ``segments`` are the segment ids the journey may name; with None they are not known, and
    each segment it names gets a warning instead of an error when unknown.
    """
    document = load(text, source)
    if not isinstance(document.data, dict):
        message = "the top level must be a mapping with id, name, entry and stages"
        raise JourneyError([document.diagnostic((), message)])
    diagnostics = _duplicates(document)
    spec: JourneySpec | None = None
    try:
        spec = JourneySpec.model_validate(document.data)
    except ValidationError as exc:
        diagnostics.extend(validation_diagnostics(document, exc))
    if diagnostics or spec is None:
        raise JourneyError(diagnostics)
    plan, found = compile_spec(spec, document, segments=segments)
    if warnings is not None:
        warnings.extend(found)
    return plan


def read_source(path: FilePath) -> str:
    """The text of a journey or segment file; unreadable files raise ``JourneyError``."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JourneyError([_file_problem(path, "no such file or directory")]) from None
    except UnicodeDecodeError:
        raise JourneyError([_file_problem(path, "the file is not valid UTF-8")]) from None
    except OSError as exc:
        raise JourneyError([_file_problem(path, exc.strerror or str(exc))]) from None


def compile_file(path: FilePath, *, warnings: list[Diagnostic] | None = None) -> Plan:
    """Compile one journey file; unreadable files raise ``JourneyError`` too.

    Segment ids it names are checked against the ``segments/`` folder beside it, if any.
    """
    return _compile_file(path, warnings, segment_ids(path.parent))


def _compile_file(
    path: FilePath, warnings: list[Diagnostic] | None, segments: Collection[str] | None
) -> Plan:
    text = read_source(path)
    return compile_source(text, source=str(path), warnings=warnings, segments=segments)


def validate_paths(
    paths: Sequence[FilePath], *, warnings: list[Diagnostic] | None = None
) -> list[tuple[FilePath, Plan | JourneyError]]:
    """Compile files, and directories' ``*.yaml``/``*.yml`` files, each at most once, in order.

    Two files declaring the same journey id cannot both be deployed: the later ones get an error.
    """
    results: list[tuple[FilePath, Plan | JourneyError]] = []
    seen: set[FilePath] = set()
    owners: dict[str, FilePath] = {}
    folders: dict[FilePath, frozenset[str] | None] = {}  # segment ids, read once per folder
    for path in paths:
        if not path.exists():
            results.append((path, JourneyError([_file_problem(path, "no such file or directory")])))
            continue
        for file in journey_files(path):
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            folder = file.parent.resolve()
            if folder not in folders:
                folders[folder] = segment_ids(folder)
            try:
                outcome: Plan | JourneyError = _compile_file(file, warnings, folders[folder])
            except JourneyError as exc:
                outcome = exc
            if isinstance(outcome, Plan):
                owner = owners.setdefault(outcome.journey_id, file)
                if owner != file:
                    message = f"journey id '{outcome.journey_id}' is already used by {owner}"
                    outcome = JourneyError([Diagnostic(str(file), None, None, "id", message)])
            results.append((file, outcome))
    return results


def yaml_files(folder: FilePath) -> list[FilePath]:
    """A folder's ``*.yaml``/``*.yml`` files, sorted, not descending into sub-folders."""
    # Hidden files are editor backups and lock files, never journeys or segments.
    return sorted(
        child
        for child in folder.iterdir()
        if child.suffix in JOURNEY_SUFFIXES and child.is_file() and not child.name.startswith(".")
    )


def journey_files(path: FilePath) -> list[FilePath]:
    """A file as given; a directory stands for its journey files (configuration files such as
    ``customers.yaml`` and the ``segments/`` folder are not journeys)."""
    if not path.is_dir():
        return [path]
    return [file for file in yaml_files(path) if file.name not in CONFIGURATION_FILES]


def segment_ids(folder: FilePath) -> frozenset[str] | None:
    """The segment ids declared in ``folder``'s ``segments/`` files; None without that folder.

    Only each file's ``id`` is read: a segment file with other errors still declares its id,
    so a journey naming it gets no second, misleading error.
    """
    segments = folder / SEGMENTS_FOLDER
    if not segments.is_dir():
        return None
    found: set[str] = set()
    for file in yaml_files(segments):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            found.add(data["id"])
    return frozenset(found)


def _file_problem(path: FilePath, message: str) -> Diagnostic:
    return Diagnostic(str(path), None, None, "", message)


def build_plan(spec: JourneySpec) -> Plan:
    """Turn a validated journey into a plan, filling defaults and step ids, and version it.

    Raises ``JourneyError`` for semantic problems (unknown goto target or template, ...);
    use ``compile_spec`` to also get warnings.
    """
    plan, _ = compile_spec(spec)
    return plan


def compile_spec(
    spec: JourneySpec,
    document: Document | None = None,
    *,
    segments: Collection[str] | None = None,
) -> tuple[Plan, list[Diagnostic]]:
    """Build and check a plan; returns it with its warnings, or raises with the errors.

    ``segments``: the segment ids the journey may name (None: not known, see ``check``).
    """
    defaults = spec.defaults or DefaultsSpec()
    steps = StepBuilder(spec)
    entry = spec.entry
    plan = Plan(
        journey_id=spec.id,
        name=spec.name,
        version="",
        entry=Entry(
            match=_entry_match(entry.event, entry.where, entry.segment),
            api=entry.api,
            schedule=(
                Schedule(**entry.schedule.model_dump()) if entry.schedule is not None else None
            ),
            reentry=entry.reentry,
            cap=EntryCap(**entry.cap.model_dump()) if entry.cap else EntryCap(),
            holdout_percent=entry.holdout,
        ),
        goal=(
            Goal(match=match_of(spec.goal), within_seconds=spec.goal.within)
            if spec.goal is not None
            else None
        ),
        exits=[match_of(e) for e in spec.exit],
        delivery=Delivery(
            timezone=spec.timezone,
            quiet_hours=(QuietHours(**spec.quiet_hours.model_dump()) if spec.quiet_hours else None),
            frequency_caps=[
                FrequencyCap(channel=c.channel, limit=c.limit, window_seconds=c.per)
                for c in spec.frequency_caps
            ],
            throttle_per_minute=spec.throttle,
            priority=spec.priority,
        ),
        stages=[_stage(stage, index, defaults, steps) for index, stage in enumerate(spec.stages)],
    )
    plan = plan.model_copy(update={"version": plan_hash(plan)})
    problems = check(spec, plan, steps.locations, segments=segments)
    diagnostics = [_place(problem, document) for problem in problems]
    errors = [d for d in diagnostics if d.severity == "error"]
    if errors:
        raise JourneyError(diagnostics)
    return plan, diagnostics


def _place(problem: Problem, document: Document | None) -> Diagnostic:
    if document is None:
        return Diagnostic(
            "<python>", None, None, render_path(problem.loc), problem.message, problem.severity
        )
    found = document.diagnostic(problem.loc, problem.message)
    return replace(found, severity=problem.severity)


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


def _entry_match(
    event: str | None, where: Mapping[str, Sequence[Condition]], segment: str | None
) -> EventMatch | None:
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


def _stage(spec: StageSpec, index: int, defaults: DefaultsSpec, steps: StepBuilder) -> StagePlan:
    max_dwell = spec.max_dwell if spec.max_dwell is not None else defaults.max_dwell
    if max_dwell is None and spec.goal is not None:
        max_dwell = DEFAULT_MAX_DWELL_SECONDS
    return StagePlan(
        name=spec.name,
        goal=match_of(spec.goal) if spec.goal is not None else None,
        steps=steps.build(spec.touchpoints, spec.name, ("stages", index, "touchpoints")),
        max_dwell_seconds=max_dwell,
        on_max_dwell=spec.on_max_dwell or defaults.on_max_dwell or "exit",
        observed=[
            ObservedTouchpoint(id=seen.id, goal=seen.goal, kpi=kpi_of(seen.kpi))
            for seen in spec.observe
        ],
    )


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


def validation_diagnostics(document: Document, exc: ValidationError) -> list[Diagnostic]:
    """Pydantic's errors for a file's data, placed in the file and worded for its author."""
    return [_diagnostic(document, error) for error in exc.errors()]


def _diagnostic(document: Document, error: ErrorDetails) -> Diagnostic:
    raw = error["loc"]
    loc = [part for part in raw if part != "[key]" and part not in UNION_TAGS]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "template":
        return document.template_diagnostic(loc, error["msg"], int(ctx["template_line"]))
    # The model of a send's channel, when the key is one of the send's own.
    tag = str(raw[-2]) if len(raw) > 1 and str(raw[-2]).startswith("@send:") else ""
    if kind == "missing":
        return document.diagnostic(loc[:-1], missing_key(tag, str(loc[-1])))
    if kind == "extra_forbidden":
        message = misplaced_key(tag, str(loc[-1])) or f"unknown key '{loc[-1]}'"
        return document.diagnostic(loc, message, key=True)
    return document.diagnostic(loc, _message(error), key="[key]" in raw)


# Pydantic's wording for numbers, in the words of the rest of the messages.
_BOUNDS = {
    "greater_than": ("gt", "must be more than"),
    "greater_than_equal": ("ge", "must be at least"),
    "less_than": ("lt", "must be less than"),
    "less_than_equal": ("le", "must be at most"),
}


def _message(error: ErrorDetails) -> str:
    kind, value = error["type"], error["input"]
    ctx = error.get("ctx") or {}
    if kind in ("string_type", "str_type"):
        return f"expected text, got {describe_value(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {describe_value(value)}"
    if kind == "list_type":
        return f"expected a list, got {describe_value(value)}"
    if kind == "too_short":
        if ctx.get("actual_length"):
            return f"needs at least {ctx.get('min_length')} items, got {ctx['actual_length']}"
        return "must not be empty"
    if kind == "literal_error":
        return f"expected {ctx.get('expected')}, got {describe_value(value)}"
    if kind in ("int_type", "int_parsing", "int_from_float"):
        return f"expected a whole number, got {describe_value(value)}"
    if kind in ("float_type", "float_parsing"):
        return f"expected a number, got {describe_value(value)}"
    if kind in ("bool_type", "bool_parsing"):
        return f"expected true or false, got {describe_value(value)}"
    if kind in _BOUNDS:
        bound, words = _BOUNDS[kind]
        return f"{words} {ctx.get(bound)}, got {describe_value(value)}"
    if kind == "invalid_key":
        return f"a key must be text, got {describe_value(value)}"
    return error["msg"]


def _duplicates(document: Document) -> list[Diagnostic]:
    """Duplicate stage names and step ids, found in the raw data so other errors still show."""
    stages = document.data.get("stages")
    if not isinstance(stages, list):
        return []
    found: list[Diagnostic] = []
    names: dict[str, Loc] = {}
    ids: dict[str, Loc] = {}
    for index, stage in enumerate(stages):
        if not isinstance(stage, dict):
            continue
        name = stage.get("name")
        if isinstance(name, str):
            found.extend(_claim(document, names, name, ("stages", index, "name"), "stage name"))
        # In the file's order, so that "first on line N" names the earlier of the two.
        for key in stage:
            if key == "touchpoints":
                loc = ("stages", index, "touchpoints")
                found.extend(_duplicate_ids(document, stage["touchpoints"], loc, ids))
            elif key == "observe":
                loc = ("stages", index, "observe")
                found.extend(_duplicate_observed(document, stage["observe"], loc, ids))
    return found


def _duplicate_observed(
    document: Document, observed: object, loc: Loc, ids: dict[str, Loc]
) -> list[Diagnostic]:
    # Observed touchpoints share the report with steps, by id: one id names one row.
    if not isinstance(observed, list):
        return []
    found: list[Diagnostic] = []
    for index, item in enumerate(observed):
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            here = (*loc, index, "id")
            found.extend(_claim(document, ids, item["id"], here, "touchpoint id"))
    return found


def _duplicate_ids(
    document: Document, touchpoints: object, loc: Loc, ids: dict[str, Loc]
) -> list[Diagnostic]:
    if not isinstance(touchpoints, list):
        return []
    found: list[Diagnostic] = []
    for index, touchpoint in enumerate(touchpoints):
        if not isinstance(touchpoint, dict):
            continue
        here = (*loc, index)
        send = touchpoint.get("send")
        if isinstance(touchpoint.get("id"), str):
            found.extend(_claim(document, ids, touchpoint["id"], (*here, "id"), "step id"))
        if isinstance(send, dict) and isinstance(send.get("id"), str):
            found.extend(_claim(document, ids, send["id"], (*here, "send", "id"), "step id"))
        for nested, nested_loc in _nested_lists(touchpoint, here):
            found.extend(_duplicate_ids(document, nested, nested_loc, ids))
    return found


def _nested_lists(touchpoint: dict[str, Any], loc: Loc) -> list[tuple[object, Loc]]:
    """The touchpoint lists nested in a raw touchpoint, with where they are."""
    found: list[tuple[object, Loc]] = []
    wait_for, branch = touchpoint.get("wait_for"), touchpoint.get("branch")
    if isinstance(wait_for, dict):
        for key in ("on_event", "on_timeout"):
            found.append((wait_for.get(key), (*loc, "wait_for", key)))
    if isinstance(branch, dict):
        cases = branch.get("cases")
        for n, case in enumerate(cases if isinstance(cases, list) else []):
            if isinstance(case, dict):
                found.append((case.get("then"), (*loc, "branch", "cases", n, "then")))
        found.append((branch.get("otherwise"), (*loc, "branch", "otherwise")))
    paths: list[tuple[object, Loc]] = [(touchpoint.get("split"), (*loc, "split"))]
    experiment = touchpoint.get("experiment")
    if isinstance(experiment, dict):
        paths.append((experiment.get("variants"), (*loc, "experiment", "variants")))
    for items, items_loc in paths:
        for n, path in enumerate(items if isinstance(items, list) else []):
            if isinstance(path, dict):
                found.append((path.get("then"), (*items_loc, n, "then")))
    return found


def _claim(
    document: Document, owners: dict[str, Loc], value: str, loc: Loc, what: str
) -> list[Diagnostic]:
    first = owners.setdefault(value, loc)
    if first is loc:
        return []
    line = document.node(first).start_mark.line + 1
    return [document.diagnostic(loc, f"duplicate {what} '{value}' (first on line {line})")]
