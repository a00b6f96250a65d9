"""Compile journey files into immutable ``Plan``s identified by a content hash."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from journeyman.workflows.plan import (
    EventMatch,
    Plan,
    PropertyTest,
    SendStep,
    StagePlan,
    Step,
    WaitForStep,
    WaitStep,
)

from .locations import Diagnostic, Document, JourneyError, Loc, load
from .spec import DefaultsSpec, EventSpec, JourneySpec, StageSpec, TouchpointSpec

# A stage with a goal must not hold customers forever when no default is set.
DEFAULT_MAX_DWELL_SECONDS = 30 * 86400
JOURNEY_SUFFIXES = (".yaml", ".yml")


def plan_hash(plan: Plan | Mapping[str, Any]) -> str:
    """The version of a plan: sha256 of its canonical JSON without ``version``, 16 hex chars."""
    if isinstance(plan, Plan):
        data = plan.model_dump(mode="json", exclude={"version"})
    else:
        data = {key: value for key, value in plan.items() if key != "version"}
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def compile_source(text: str, *, source: str = "<string>") -> Plan:
    """Compile the text of a journey file, or raise ``JourneyError`` listing every problem."""
    document = load(text, source)
    if not isinstance(document.data, dict):
        message = "the top level must be a mapping with id, name, entry and stages"
        raise JourneyError([document.diagnostic((), message)])
    diagnostics = _duplicates(document)
    spec: JourneySpec | None = None
    try:
        spec = JourneySpec.model_validate(document.data)
    except ValidationError as exc:
        diagnostics.extend(_diagnostic(document, error) for error in exc.errors())
    if diagnostics or spec is None:
        raise JourneyError(diagnostics)
    return build_plan(spec)


def compile_file(path: Path) -> Plan:
    """Compile one journey file; unreadable files raise ``JourneyError`` too."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JourneyError([_file_problem(path, "no such file or directory")]) from None
    except UnicodeDecodeError:
        raise JourneyError([_file_problem(path, "the file is not valid UTF-8")]) from None
    except OSError as exc:
        raise JourneyError([_file_problem(path, exc.strerror or str(exc))]) from None
    return compile_source(text, source=str(path))


def validate_paths(paths: Sequence[Path]) -> list[tuple[Path, Plan | JourneyError]]:
    """Compile files, and directories' ``*.yaml``/``*.yml`` files, each at most once, in order.

    Two files declaring the same journey id cannot both be deployed: the later ones get an error.
    """
    results: list[tuple[Path, Plan | JourneyError]] = []
    seen: set[Path] = set()
    owners: dict[str, Path] = {}
    for path in paths:
        if not path.exists():
            results.append((path, JourneyError([_file_problem(path, "no such file or directory")])))
            continue
        for file in _journey_files(path):
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            try:
                outcome: Plan | JourneyError = compile_file(file)
            except JourneyError as exc:
                outcome = exc
            if isinstance(outcome, Plan):
                owner = owners.setdefault(outcome.journey_id, file)
                if owner != file:
                    message = f"journey id '{outcome.journey_id}' is already used by {owner}"
                    outcome = JourneyError([Diagnostic(str(file), None, None, "id", message)])
            results.append((file, outcome))
    return results


def _journey_files(path: Path) -> list[Path]:
    if not path.is_dir():
        return [path]
    # Hidden files are editor backups and lock files, never journeys.
    return sorted(
        child
        for child in path.iterdir()
        if child.suffix in JOURNEY_SUFFIXES and child.is_file() and not child.name.startswith(".")
    )


def _file_problem(path: Path, message: str) -> Diagnostic:
    return Diagnostic(str(path), None, None, "", message)


def build_plan(spec: JourneySpec) -> Plan:
    """Turn a validated journey into a plan, filling defaults and step ids, and version it."""
    defaults = spec.defaults or DefaultsSpec()
    plan = Plan(
        journey_id=spec.id,
        name=spec.name,
        version="",
        entry=_match(spec.entry),
        stages=[_stage(stage, defaults) for stage in spec.stages],
    )
    return plan.model_copy(update={"version": plan_hash(plan)})


def _match(spec: EventSpec) -> EventMatch:
    tests = [PropertyTest(path=path, op=c.op, value=c.value) for path, c in spec.where.items()]
    # Sorted so that reordering the keys of a `where` never changes the version.
    return EventMatch(event=spec.event, where=sorted(tests, key=lambda t: (t.path, t.op)))


def _stage(spec: StageSpec, defaults: DefaultsSpec) -> StagePlan:
    max_dwell = spec.max_dwell if spec.max_dwell is not None else defaults.max_dwell
    if max_dwell is None and spec.goal is not None:
        max_dwell = DEFAULT_MAX_DWELL_SECONDS
    return StagePlan(
        name=spec.name,
        goal=_match(spec.goal) if spec.goal is not None else None,
        steps=_steps(spec.touchpoints, spec.name),
        max_dwell_seconds=max_dwell,
        on_max_dwell=spec.on_max_dwell or defaults.on_max_dwell or "exit",
    )


def _steps(touchpoints: Sequence[TouchpointSpec], prefix: str) -> list[Step]:
    # Default ids come from 1-based positions: stable for a file, readable in logs and reports.
    steps: list[Step] = []
    for position, touchpoint in enumerate(touchpoints, start=1):
        default_id = f"{prefix}.{position}"
        if touchpoint.send is not None:
            send = touchpoint.send
            steps.append(
                SendStep(
                    id=send.id or default_id,
                    channel=send.channel,
                    subject=send.subject,
                    body=send.body,
                    html=send.html,
                )
            )
        elif touchpoint.wait is not None:
            steps.append(WaitStep(id=default_id, seconds=touchpoint.wait))
        elif touchpoint.wait_for is not None:
            wait_for = touchpoint.wait_for
            steps.append(
                WaitForStep(
                    id=default_id,
                    match=_match(wait_for),
                    timeout_seconds=wait_for.timeout,
                    on_timeout=_steps(wait_for.on_timeout, f"{default_id}.timeout"),
                )
            )
    return steps


def _diagnostic(document: Document, error: ErrorDetails) -> Diagnostic:
    raw = error["loc"]
    loc = [part for part in raw if part != "[key]"]
    kind = error["type"]
    ctx = error.get("ctx") or {}
    if kind == "template":
        return document.template_diagnostic(loc, error["msg"], int(ctx["template_line"]))
    if kind == "missing":
        return document.diagnostic(loc[:-1], f"missing required key '{loc[-1]}'")
    if kind == "extra_forbidden":
        return document.diagnostic(loc, f"unknown key '{loc[-1]}'", key=True)
    return document.diagnostic(loc, _message(error), key="[key]" in raw)


def _message(error: ErrorDetails) -> str:
    kind, value = error["type"], error["input"]
    if kind in ("string_type", "str_type"):
        return f"expected text, got {_describe(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {_describe(value)}"
    if kind == "list_type":
        return f"expected a list, got {_describe(value)}"
    if kind == "too_short":
        return "must not be empty"
    if kind == "literal_error":
        return f"expected {(error.get('ctx') or {}).get('expected')}, got {_describe(value)}"
    return error["msg"]


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


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
        loc = ("stages", index, "touchpoints")
        found.extend(_duplicate_ids(document, stage.get("touchpoints"), loc, ids))
    return found


def _duplicate_ids(
    document: Document, touchpoints: object, loc: tuple[str | int, ...], ids: dict[str, Loc]
) -> list[Diagnostic]:
    if not isinstance(touchpoints, list):
        return []
    found: list[Diagnostic] = []
    for index, touchpoint in enumerate(touchpoints):
        if not isinstance(touchpoint, dict):
            continue
        send, wait_for = touchpoint.get("send"), touchpoint.get("wait_for")
        if isinstance(send, dict) and isinstance(send.get("id"), str):
            id_loc = (*loc, index, "send", "id")
            found.extend(_claim(document, ids, send["id"], id_loc, "step id"))
        if isinstance(wait_for, dict):
            branch = (*loc, index, "wait_for", "on_timeout")
            found.extend(_duplicate_ids(document, wait_for.get("on_timeout"), branch, ids))
    return found


def _claim(
    document: Document, owners: dict[str, Loc], value: str, loc: Loc, what: str
) -> list[Diagnostic]:
    first = owners.setdefault(value, loc)
    if first is loc:
        return []
    line = document.node(first).start_mark.line + 1
    return [document.diagnostic(loc, f"duplicate {what} '{value}' (first on line {line})")]
