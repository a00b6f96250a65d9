"""Segment and persona files: the YAML beside the journeys, checked and compiled into
``SegmentDefinition``s.

One file per segment, in ``journeys/segments/``::

    id: vip
    name: VIP customers
    kind: segment                     # or persona; segment by default
    description: Our best customers, by revenue and orders.
    when: metrics.frequency == "vip"

A persona may add ``goals``, ``pains`` and ``channels`` (lists of text) for the people who
read it; they change nothing in who matches. ``when`` is a condition of the condition
language without ``event.``: a segment is evaluated for a customer at any time, not in
answer to one event. Problems are ``Diagnostic``s with file, line and column, raised as
``JourneyError`` like a journey file's; a condition reading an undeclared trait is a warning.

The version of a segment is a content hash of its canonical definition, so the same file
always gives the same version and comments or key order never change it.

This module also tells the files of a journeys folder apart (``file_kind``, ``discover``):
journeys, segments (``segments/``), and configuration files that are neither.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from yaml.nodes import ScalarNode

from journeyman.orchestrator.language.checks import WELL_KNOWN_TRAITS
from journeyman.orchestrator.language.compiler import (
    CONFIGURATION_FILES,
    SEGMENTS_FOLDER,
    journey_files,
    read_source,
    validation_diagnostics,
    yaml_files,
)
from journeyman.orchestrator.language.fields import Text, TraitPath, fail
from journeyman.orchestrator.language.locations import (
    Diagnostic,
    Document,
    JourneyError,
    Loc,
    load,
    render_path,
)
from journeyman.orchestrator.language.spec import SegmentId
from journeyman.workflows import expressions
from journeyman.workflows.expressions.syntax import Reference

from .definitions import SegmentDefinition, SegmentKind

SCHEMA_COMMENT = "# yaml-language-server: $schema=../../schema/segment.schema.json"
PERSONA_FIELDS = ("goals", "pains", "channels")

FileKind = Literal["journey", "segment", "configuration"]


class SegmentSpec(BaseModel):
    """A segment or persona file: who matches (``when``), and what it is called."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        json_schema_extra={
            # Persona fields only with kind: persona (the default kind is segment).
            "if": {"not": {"required": ["kind"], "properties": {"kind": {"const": "persona"}}}},
            "then": {"properties": {name: {"maxItems": 0} for name in PERSONA_FIELDS}},
        },
    )

    id: SegmentId
    """Stable identifier, as journeys name it: a lowercase letter or digit, then a-z 0-9 _ -,
    at most 64."""
    name: Text
    """Human name shown in lists and reports."""
    kind: SegmentKind = "segment"
    """`segment` (the default) or `persona`: who a journey map is drawn for."""
    description: str = ""
    """What the segment is for, in a few words."""
    when: Text
    """The condition a customer matches: profile traits, behaviour (`count(...)`, ...) and
    `metrics.*`, but not `event.` (a segment has no triggering event)."""
    traits: list[TraitPath] = Field(default_factory=list)
    """Profile traits the condition may read, besides the well-known ones."""
    goals: list[Text] = Field(default_factory=list)
    """A persona's goals, for the people who read it."""
    pains: list[Text] = Field(default_factory=list)
    """A persona's pains and objections, for the people who read it."""
    channels: list[Text] = Field(default_factory=list)
    """The touchpoints a persona uses (live chat, email, ...), for the people who read it."""

    @field_validator(*PERSONA_FIELDS)
    @classmethod
    def _persona_only(cls, value: list[str], info: ValidationInfo) -> list[str]:
        # `kind` comes first, so it is known here (absent from data only when it was invalid).
        if value and info.data.get("kind", "persona") != "persona":
            fail(f"{info.field_name} describe a persona: add kind: persona, or remove them")
        return value

    def details(self) -> dict[str, list[str]]:
        """The persona's documentation fields that are set."""
        return {name: list(getattr(self, name)) for name in PERSONA_FIELDS if getattr(self, name)}


def canonical_definition(spec: SegmentSpec) -> dict[str, Any]:
    """What a segment's version hashes: the definition and persona details, without the
    fields left at their default (so a new optional field never changes a version)."""
    data: dict[str, Any] = {
        "segment_id": spec.id,
        "name": spec.name,
        "condition": spec.when.strip(),
    }
    if spec.kind != "segment":
        data["kind"] = spec.kind
    if spec.description.strip():
        data["description"] = spec.description.strip()
    data.update(spec.details())
    return data


def segment_version(spec: SegmentSpec) -> str:
    """sha256 of the canonical definition as compact JSON with sorted keys, 16 hex chars."""
    canonical = json.dumps(
        canonical_definition(spec), sort_keys=True, separators=(",", ":"), allow_nan=False
    )
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def to_definition(spec: SegmentSpec) -> SegmentDefinition:
    """The deployable definition of a checked segment file."""
    return SegmentDefinition(
        segment_id=spec.id,
        version=segment_version(spec),
        name=spec.name,
        kind=spec.kind,
        description=spec.description.strip(),
        condition=spec.when.strip(),
    )


def load_segment_source(
    text: str, *, source: str = "<string>", warnings: list[Diagnostic] | None = None
) -> SegmentSpec:
    """Check the text of a segment file, or raise ``JourneyError`` listing every problem.

    Warnings (it compiles, but something looks wrong) are appended to ``warnings``.
    """
    document = load(text, source)
    if not isinstance(document.data, dict):
        message = "the top level must be a mapping with id, name and when"
        raise JourneyError([document.diagnostic((), message)])
    try:
        spec = SegmentSpec.model_validate(document.data)
    except ValidationError as exc:
        raise JourneyError(validation_diagnostics(document, exc)) from None
    problems = list(_condition_problems(spec, document))
    errors = [d for d in problems if d.severity == "error"]
    if errors:
        raise JourneyError(problems)
    if warnings is not None:
        warnings.extend(problems)
    return spec


def compile_segment_source(
    text: str, *, source: str = "<string>", warnings: list[Diagnostic] | None = None
) -> SegmentDefinition:
    """Compile the text of a segment file into its definition (see ``load_segment_source``)."""
    return to_definition(load_segment_source(text, source=source, warnings=warnings))


def load_segment_file(path: Path, *, warnings: list[Diagnostic] | None = None) -> SegmentSpec:
    """Check one segment file; unreadable files raise ``JourneyError`` too."""
    return load_segment_source(read_source(path), source=str(path), warnings=warnings)


def compile_segment_file(
    path: Path, *, warnings: list[Diagnostic] | None = None
) -> SegmentDefinition:
    """Compile one segment file into its definition (see ``load_segment_file``)."""
    return to_definition(load_segment_file(path, warnings=warnings))


def validate_segment_paths(
    paths: Sequence[Path], *, warnings: list[Diagnostic] | None = None
) -> list[tuple[Path, SegmentSpec | JourneyError]]:
    """Check segment files (a directory stands for its ``*.yaml``), each at most once; a
    checked file gives its deployable definition with ``to_definition``.

    Two files declaring the same segment id cannot both be deployed: the later ones get an error.
    """
    results: list[tuple[Path, SegmentSpec | JourneyError]] = []
    seen: set[Path] = set()
    owners: dict[str, Path] = {}
    for path in paths:
        files = yaml_files(path) if path.is_dir() else [path]
        for file in files:
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            try:
                outcome: SegmentSpec | JourneyError = load_segment_file(file, warnings=warnings)
            except JourneyError as exc:
                outcome = exc
            if isinstance(outcome, SegmentSpec):
                owner = owners.setdefault(outcome.id, file)
                if owner != file:
                    message = f"segment id '{outcome.id}' is already used by {owner}"
                    outcome = JourneyError([Diagnostic(str(file), None, None, "id", message)])
            results.append((file, outcome))
    return results


# --- the condition ---------------------------------------------------------------------

_EVENT_REFERENCE = re.compile(r"(?<![\w.])event\s*\.")


def _condition_problems(spec: SegmentSpec, document: Document) -> Iterator[Diagnostic]:
    loc = ("when",)
    try:
        tree = expressions.parse(spec.when)
    except expressions.ExpressionError as exc:
        yield _in_condition(document, loc, spec.when, exc.position, f"condition: {exc.message}")
        return
    read = sorted(_event_reads(tree))
    if read:
        names = ", ".join(f"event.{'.'.join(path)}" for path in read)
        found = _EVENT_REFERENCE.search(spec.when)
        message = (
            f"a segment has no triggering event, so the condition cannot read {names}; use"
            " profile traits, behaviour (count, sum, last, days_since) and metrics"
        )
        yield _in_condition(document, loc, spec.when, found.start() if found else None, message)
    known = WELL_KNOWN_TRAITS | set(spec.traits)
    for trait in sorted(expressions.needs(tree).traits):
        if not any(trait == k or trait.startswith(k + ".") for k in known):
            message = (
                f"condition reads trait '{trait}', which is not a well-known trait nor listed"
                " under `traits:`"
            )
            at = re.search(rf"profile\s*\.\s*{re.escape(trait)}\b", spec.when)
            start = at.start() if at else None
            yield _in_condition(document, loc, spec.when, start, message, "warning")


def _event_reads(tree: expressions.Expression) -> set[tuple[str, ...]]:
    """The paths of every ``event.`` reference, however deeply nested."""
    found: set[tuple[str, ...]] = set()
    pending: list[object] = [tree]
    while pending:
        node = pending.pop()
        if isinstance(node, Reference) and node.scope == "event":
            found.add(node.path)
        elif isinstance(node, tuple):
            pending.extend(node)
        elif dataclasses.is_dataclass(node) and not isinstance(node, type):
            pending.extend(getattr(node, f.name) for f in dataclasses.fields(node))
    return found


def _in_condition(
    document: Document,
    loc: Loc,
    condition: str,
    position: int | None,
    message: str,
    severity: Literal["error", "warning"] = "error",
) -> Diagnostic:
    """A diagnostic at ``position`` of the condition when the YAML layout shows where it is
    (plain, quoted or literal text), else at the start of the value, naming the column."""
    node = document.node(loc)
    placed = dataclasses.replace(document.diagnostic(loc, message), severity=severity)
    if position is None or not isinstance(node, ScalarNode):
        return placed
    before = condition[:position]
    line_index = before.count("\n")
    text = condition.split("\n")[line_index]
    column = position - (before.rfind("\n") + 1)
    # Each line of the value is on a line of its own in the file, or folded into fewer.
    first = node.start_mark.line + line_index
    last = min(node.end_mark.line, len(document.lines) - 1)
    for index in range(first, last + 1) if text.strip() else ():
        start = node.start_mark.column if index == node.start_mark.line else 0
        found = document.lines[index].find(text, start)
        if found >= 0:
            return Diagnostic(
                document.source, index + 1, found + column + 1, render_path(loc), message, severity
            )
    where = f"line {line_index + 1}, column {column + 1}" if line_index else f"column {column + 1}"
    return dataclasses.replace(placed, message=f"{message} (at {where} of the condition)")


# --- which file is which ---------------------------------------------------------------


def file_kind(path: Path) -> FileKind:
    """A journey, a segment or a configuration file, from its name, folder and first keys.

    Files in a ``segments/`` folder are segments, ``customers.yaml`` is configuration; any
    other file is a segment when it points at the segment schema or has a top-level ``when``
    and no ``stages``, else a journey (whose compiler then reports what is wrong).
    """
    if path.name in CONFIGURATION_FILES:
        return "configuration"
    if path.parent.name == SEGMENTS_FOLDER:
        return "segment"
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return "journey"
    if "segment.schema.json" in text.partition("\n")[0]:
        return "segment"
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return "journey"
    if isinstance(data, dict) and "when" in data and "stages" not in data:
        return "segment"
    return "journey"


@dataclass(frozen=True)
class Discovered:
    """The files named on a command line, by kind; ``journeys`` keeps missing paths, so the
    journey compiler reports them, and ``skipped`` holds configuration files named alone."""

    segments: list[Path]
    journeys: list[Path]
    skipped: list[Path]


def discover(paths: Sequence[Path]) -> Discovered:
    """Segment and journey files among ``paths``; a directory stands for its journey files and
    the segment files of its ``segments/`` folder (or, named itself, for its segment files)."""
    segments: list[Path] = []
    journeys: list[Path] = []
    skipped: list[Path] = []
    seen: set[Path] = set()

    def add(found: list[Path], path: Path) -> None:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            found.append(path)

    for path in paths:
        if not path.exists():
            journeys.append(path)
        elif path.is_dir() and path.name == SEGMENTS_FOLDER:
            for file in yaml_files(path):
                add(segments, file)
        elif path.is_dir():
            for file in journey_files(path):
                add(segments if file_kind(file) == "segment" else journeys, file)
            if (path / SEGMENTS_FOLDER).is_dir():
                for file in yaml_files(path / SEGMENTS_FOLDER):
                    add(segments, file)
        else:
            kind = file_kind(path)
            add({"segment": segments, "journey": journeys, "configuration": skipped}[kind], path)
    return Discovered(segments, journeys, skipped)
