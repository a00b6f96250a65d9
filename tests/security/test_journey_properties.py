"""Property tests of the journey compiler beyond ``test_language_fuzz.py``.

That module throws random documents and mutations at ``compile_source`` and checks that it
answers a plan or a ``JourneyError`` that says something. Here:

- YAML's own features (tags, anchors and aliases, timestamps, binary, YAML 1.1 booleans and
  sexagesimal numbers, NaN, sets) dropped anywhere in every shipped journey: still a plan or
  an error, and every error names the file and, unless it is about the whole file, its line;
- a compiled plan survives the way it is stored (JSON in Postgres) unchanged, version
  included;
- the version depends on what a journey says, not on how it is written: mapping keys in any
  order, block or flow style, comments, give the same plan and version.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyman.orchestrator.language import JourneyError, compile_source, plan_hash
from journeyman.workflows.plan import Plan

from ..orchestrator.language.test_language_fuzz import VALID, places

PROPERTIES = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,  # the same examples on every run, so CI is reproducible
    database=None,
    suppress_health_check=[HealthCheck.too_slow],
)

JOURNEYS = Path(__file__).resolve().parents[2] / "journeys"
SOURCES = {
    path.name: path.read_text()
    for path in sorted(JOURNEYS.glob("*.yaml"))
    if path.name != "customers.yaml"
}
SOURCES["fuzz.yaml"] = VALID
DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

# YAML that a safe loader turns into something other than text, number, list or mapping, or
# refuses: each must come back as a plan or a located error, never as a crash.
SNIPPETS = [
    "!!python/object/apply:os.system ['true']",
    "!!python/name:builtins.eval",
    "!custom value",
    "!!set {a, b}",
    "!!omap [{a: 1}, {b: 2}]",
    "!!pairs [{a: 1}, {a: 2}]",
    "!!binary aGVsbG8=",
    "!!binary /w==",
    "2025-01-01",
    "2025-01-01T10:00:00Z",
    "!!timestamp 2001-12-14t21:59:43.10-05:00",
    ".nan",
    ".inf",
    "-.inf",
    "!!float '1e400'",
    "0x1F",
    "0o17",
    "1_000",
    "10:00",
    "1:30:00",
    "on",
    "NO",
    "~",
    "!!null ''",
    "!!str 12",
    "*undefined_alias",
    "&anchor {event: A, where: *anchor}",
    '"\\0\\x01\\u2028\\U0001F600"',
    "{? [a, b] : c}",
    "{1: a, null: b, true: c, 2.5: d}",
    "[]",
    "{}",
    "''",
]

# Problems about the file as a whole, which no single line can be blamed for.
WHOLE_FILE = ("the file is empty", "the file nests deeper than", "the file expands to more than")


def check_located(text: str, source: str) -> Plan | None:
    """Compile; a crash, or an error that does not say where, fails the test."""
    try:
        return compile_source(text, source=source, warnings=[])
    except JourneyError as exc:
        assert exc.diagnostics, "a JourneyError must say what is wrong"
        lines = text.count("\n") + 1
        for diagnostic in exc.diagnostics:
            assert diagnostic.file == source, diagnostic
            assert str(diagnostic).startswith(source), diagnostic
            if diagnostic.line is None:
                assert diagnostic.message.startswith(WHOLE_FILE), diagnostic
            else:
                assert 1 <= diagnostic.line <= lines, (diagnostic, lines)
                assert str(diagnostic).startswith(f"{source}:{diagnostic.line}"), diagnostic
        return None


def parent_of(document: Any, at: tuple[Any, ...]) -> Any:
    node = document
    for part in at[:-1]:
        node = node[part]
    return node


@PROPERTIES
@given(
    name=st.sampled_from(sorted(SOURCES)),
    data=st.data(),
    count=st.integers(min_value=1, max_value=3),
)
def test_yaml_features_anywhere_give_a_plan_or_located_errors(
    name: str, data: st.DataObject, count: int
) -> None:
    document = yaml.safe_load(SOURCES[name])
    # Placeholders that the dumper writes as plain scalars, then swapped for raw YAML.
    swaps: dict[str, str] = {}
    for n in range(count):
        at = data.draw(st.sampled_from(places(document)[1:]), label="at")
        placeholder = f"zzsnippet{n}zz"
        parent_of(document, at)[at[-1]] = placeholder
        swaps[placeholder] = data.draw(st.sampled_from(SNIPPETS), label="snippet")
        if not places(document)[1:]:
            break
    flow = data.draw(st.booleans(), label="flow style")
    text = yaml.dump(document, Dumper=DUMPER, sort_keys=False, default_flow_style=flow, width=1000)
    for placeholder, snippet in swaps.items():
        text = text.replace(placeholder, snippet)
    check_located(text, name)


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_plans_survive_storage_unchanged(name: str) -> None:
    plan = compile_source(SOURCES[name], source=name)
    # As storage keeps a plan (journeys.plan, jsonb) and reads it back.
    stored = json.loads(json.dumps(plan.model_dump(mode="json"), allow_nan=False))
    loaded = Plan.model_validate(stored)
    assert loaded == plan
    assert plan_hash(loaded) == plan.version == loaded.version
    assert loaded.model_dump(mode="json") == stored


def reorder(node: Any, data: st.DataObject) -> Any:
    """The same document with every mapping's keys in an order drawn by Hypothesis."""
    if isinstance(node, dict):
        keys = data.draw(st.permutations(list(node)), label="keys")
        return {key: reorder(node[key], data) for key in keys}
    if isinstance(node, list):
        return [reorder(item, data) for item in node]
    return node


@settings(PROPERTIES, max_examples=60)
@given(name=st.sampled_from(sorted(SOURCES)), data=st.data(), flow=st.booleans())
def test_versions_do_not_depend_on_key_order_or_layout(
    name: str, data: st.DataObject, flow: bool
) -> None:
    original = compile_source(SOURCES[name], source=name)
    document = reorder(yaml.safe_load(SOURCES[name]), data)
    text = yaml.dump(document, Dumper=DUMPER, sort_keys=False, default_flow_style=flow)
    # Comments and blank lines outside the content (inside a flow scalar a blank line is a
    # line break of the value: that would be a change of meaning).
    text = "# rewritten\n\n" + text + "\n# end\n"
    rewritten = compile_source(text, source=name)
    assert rewritten.version == original.version
    assert rewritten == original


@pytest.mark.parametrize("name", sorted(SOURCES))
def test_a_change_of_meaning_changes_the_version(name: str) -> None:
    # The other side of the property above: the version is not blind to content.
    document = yaml.safe_load(SOURCES[name])
    original = compile_source(SOURCES[name], source=name)
    document["name"] = str(document["name"]) + " (copy)"
    renamed = compile_source(yaml.dump(document, Dumper=DUMPER), source=name)
    assert renamed.version != original.version
    if len(document["stages"]) > 1:
        document["stages"].reverse()
        try:
            reordered = compile_source(yaml.dump(document, Dumper=DUMPER), source=name)
        except JourneyError:
            return  # a goto or goal that only makes sense in the original order
        assert reordered.version not in (original.version, renamed.version)


@pytest.mark.parametrize("char", ["\x00", "\x07", "\x1b", "\ufffe"])
def test_a_control_character_in_the_file_is_a_located_error(char: str) -> None:
    text = VALID.replace("name: Fuzz", f"name: Fu{char}zz")
    assert check_located(text, "fuzz.yaml") is None
