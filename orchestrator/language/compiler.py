"""Compile journey files into immutable ``Plan``s identified by a content hash.

A file is parsed and validated (``document_checks.py`` words and places pydantic's errors and
finds duplicate names), built into a versioned plan (``plans.py``, ``step_builder.py``) and
checked (``checks.py``). Which files of a folder are journeys is ``folders.py``'s to say.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import replace
from pathlib import Path as FilePath

from pydantic import ValidationError

from journeyman.workflows.plan import Plan

from .checks import Problem, check
from .document_checks import duplicates, validation_diagnostics
from .folders import (
    CONFIGURATION_FILES,
    SEGMENTS_FOLDER,
    file_problem,
    journey_files,
    read_source,
    segment_ids,
    yaml_files,
)
from .locations import Diagnostic, Document, JourneyError, load, render_path
from .plans import assemble_plan
from .spec import JourneySpec

# Besides its own: the folder and file helpers that segment files (``customers``) read
# journey folders with.
__all__ = [
    "CONFIGURATION_FILES",
    "SEGMENTS_FOLDER",
    "build_plan",
    "compile_file",
    "compile_source",
    "compile_spec",
    "journey_files",
    "read_source",
    "validate_paths",
    "validation_diagnostics",
    "yaml_files",
]


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
    diagnostics = duplicates(document)
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
            results.append((path, JourneyError([file_problem(path, "no such file or directory")])))
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
    plan, locations = assemble_plan(spec)
    problems = check(spec, plan, locations, segments=segments)
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
