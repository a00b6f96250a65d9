"""Segment and persona files: the format, its errors in the file's own places, versions,
the published JSON Schema, and telling segment files from journeys in a folder."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from journeyman.orchestrator.cli import main
from journeyman.orchestrator.customers.definitions import SegmentDefinition
from journeyman.orchestrator.customers.segment_files import (
    SCHEMA_COMMENT,
    SegmentSpec,
    compile_segment_file,
    compile_segment_source,
    discover,
    file_kind,
    load_segment_source,
    to_definition,
    validate_segment_paths,
)
from journeyman.orchestrator.language import Diagnostic, JourneyError
from journeyman.orchestrator.language.schema import (
    REGENERATE_SEGMENT,
    segment_schema,
    segment_schema_text,
)

REPO = Path(__file__).resolve().parents[3]
SCHEMA_FILE = REPO / "schema" / "segment.schema.json"
SHIPPED = sorted((REPO / "journeys" / "segments").glob("*.yaml"))

VIP = """\
id: vip
name: VIP customers
description: Our best customers.
when: metrics.frequency == "vip"
"""
PERSONA = """\
id: mature_anti_aging
name: Women over 60 who buy anti-aging care
kind: persona
when: >-
  profile.gender == "female" and profile.age > 60
    and count("Order Completed", within: 6mo, where: category == "anti-aging") > 0
goals: [Firmer skin]
pains: [Creams that promise much]
channels: [Live chat, Email]
"""


def errors(text: str) -> list[str]:
    with pytest.raises(JourneyError) as caught:
        compile_segment_source(textwrap.dedent(text), source="s.yaml")
    return [str(d) for d in caught.value.diagnostics]


# --- the format ------------------------------------------------------------------------


def test_a_segment_file_compiles_to_its_definition() -> None:
    definition = compile_segment_source(VIP)

    assert definition == SegmentDefinition(
        segment_id="vip",
        version=definition.version,
        name="VIP customers",
        kind="segment",
        description="Our best customers.",
        condition='metrics.frequency == "vip"',
    )
    assert len(definition.version) == 16 and int(definition.version, 16) >= 0


def test_a_persona_keeps_its_documentation_apart_from_the_condition() -> None:
    spec = load_segment_source(PERSONA)
    definition = compile_segment_source(PERSONA)

    assert definition.kind == "persona"
    assert definition.condition.startswith('profile.gender == "female"')
    assert spec.details() == {
        "goals": ["Firmer skin"],
        "pains": ["Creams that promise much"],
        "channels": ["Live chat", "Email"],
    }


def test_the_version_is_the_content_not_the_layout() -> None:
    version = compile_segment_source(VIP).version
    same = [
        "# a comment\n" + VIP,
        "\n".join(reversed(VIP.strip().splitlines())) + "\n",
        VIP.replace('when: metrics.frequency == "vip"', 'when: |\n  metrics.frequency == "vip"\n'),
        VIP + "kind: segment\ntraits: [tier]\n",  # the default kind; traits only silence warnings
    ]
    changed = [
        VIP.replace("VIP customers", "Top customers"),
        VIP.replace('"vip"', '"loyal"'),
        VIP.replace("Our best", "The best"),
        VIP + "kind: persona\n",
        PERSONA,
        PERSONA.replace("[Firmer skin]", "[Firmer skin, Fewer lines]"),
    ]
    assert {compile_segment_source(text).version for text in same} == {version}
    versions = {compile_segment_source(text).version for text in changed}
    assert len(versions) == len(changed) and version not in versions


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "id: VIP\nname: V\nwhen: 'true'\n",
            "s.yaml:1:5: id: a segment id starts with a lowercase letter or digit, then"
            " lowercase letters, digits, '_' or '-', at most 64 characters; got 'VIP'",
        ),
        ("id: v\nname: V\n", "s.yaml:1:1: missing required key 'when'"),
        ("id: v\nname: V\nwhen: 'true'\nwhere: x\n", "s.yaml:4:1: where: unknown key 'where'"),
        (
            "id: v\nname: V\nkind: group\nwhen: 'true'\n",
            "s.yaml:3:7: kind: expected 'segment' or 'persona', got 'group'",
        ),
        ("id: v\nname: V\nwhen: 60\n", "s.yaml:3:7: when: expected text, got 60"),
        (
            "id: v\nname: V\nwhen: 'true'\ngoals: [Save time]\n",
            "s.yaml:4:8: goals: goals describe a persona: add kind: persona, or remove them",
        ),
        ("- id: v\n", "s.yaml:1:1: the top level must be a mapping with id, name and when"),
        ("id: v\nid: w\n", "s.yaml:2:1: duplicate key 'id' (first on line 1)"),
    ],
)
def test_shape_errors_name_file_line_column_and_place(text: str, expected: str) -> None:
    assert errors(text) == [expected]


@pytest.mark.parametrize(
    ("when", "expected"),
    [
        # Plain, quoted and literal text: the column of the problem inside the file.
        ("when: profile.age >", "s.yaml:3:20: when: condition: expected a value, got the end"),
        ('when: "profile.age > > 3"', "s.yaml:3:22: when: condition: expected a value, got '>'"),
        (
            'when: |\n  profile.age > 60\n    and count("Order Completed", within: 3x) > 0',
            "s.yaml:5:42: when: condition: within: expects a duration",
        ),
        (
            "when: profile.age > 60 and event.total > 10",
            "s.yaml:3:28: when: a segment has no triggering event, so the condition cannot read"
            " event.total; use profile traits, behaviour",
        ),
        (
            """when: 'count("Checkout Started", where: cart_id == event.cart.id) > 0'""",
            "s.yaml:3:52: when: a segment has no triggering event, so the condition cannot read"
            " event.cart.id",
        ),
    ],
)
def test_condition_errors_point_into_the_condition(when: str, expected: str) -> None:
    [found] = errors(f"id: v\nname: V\n{when}\n")
    assert found.startswith(expected), found


def test_where_the_layout_hides_the_column_the_message_names_it() -> None:
    # Folded text joins its lines: the error is placed at the value, with the column.
    [found] = errors("id: v\nname: V\nwhen: >\n  profile.age >\n  and true\n")
    assert found.startswith("s.yaml:3:7: when: condition: expected a value, got 'and'")
    assert found.endswith("(at column 15 of the condition)")


def test_an_undeclared_trait_is_a_warning_at_its_place() -> None:
    warnings: list[Diagnostic] = []
    text = "id: v\nname: V\nwhen: profile.age > 60 and profile.shoe_size > 40\n"
    compile_segment_source(text, source="s.yaml", warnings=warnings)

    assert [str(w) for w in warnings] == [
        "s.yaml:3:28: warning: when: condition reads trait 'shoe_size', which is not a"
        " well-known trait nor listed under `traits:`"
    ]
    declared: list[Diagnostic] = []
    compile_segment_source(text + "traits: [shoe_size]\n", warnings=declared)
    compile_segment_source(VIP, warnings=declared)  # metrics are not traits
    assert declared == []


# --- files and folders -----------------------------------------------------------------


def test_two_files_with_one_id_cannot_both_be_deployed(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(VIP, encoding="utf-8")
    (tmp_path / "b.yaml").write_text(VIP.replace("VIP customers", "Copy"), encoding="utf-8")
    (tmp_path / "c.yaml").write_text("id: c\nname: C\nwhen: (\n", encoding="utf-8")

    (a, first), (b, second), (c, third) = validate_segment_paths([tmp_path])
    assert isinstance(first, SegmentSpec) and to_definition(first) == compile_segment_file(a)
    assert isinstance(second, JourneyError)
    assert str(second) == f"{b}: id: segment id 'vip' is already used by {a}"
    assert isinstance(third, JourneyError) and f"{c}:3:" in str(third)


def test_an_unreadable_file_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_bytes(b"id: \xff\n")
    with pytest.raises(JourneyError, match="not valid UTF-8"):
        compile_segment_file(path)


def _folder(tmp_path: Path) -> Path:
    journeys = tmp_path / "journeys"
    (journeys / "segments").mkdir(parents=True)
    (journeys / "segments" / "vip.yaml").write_text(VIP, encoding="utf-8")
    (journeys / "welcome.yaml").write_text(
        "id: welcome\nname: W\nentry: {segment: vip}\n"
        "stages: [{name: a, touchpoints: [{send: {subject: a, body: b}}]}]\n",
        encoding="utf-8",
    )
    (journeys / "customers.yaml").write_text("recency: {active: 30d}\n", encoding="utf-8")
    # A segment file outside segments/, told apart by its keys.
    (journeys / "stray.yaml").write_text(PERSONA, encoding="utf-8")
    return journeys


def test_files_are_told_apart_by_folder_name_and_keys(tmp_path: Path) -> None:
    journeys = _folder(tmp_path)
    (journeys / "pointed.yaml").write_text(f"{SCHEMA_COMMENT}\nid: p\n", encoding="utf-8")

    kinds = {path.name: file_kind(path) for path in journeys.rglob("*.yaml")}
    assert kinds == {
        "vip.yaml": "segment",
        "welcome.yaml": "journey",
        "customers.yaml": "configuration",
        "stray.yaml": "segment",
        "pointed.yaml": "segment",
    }


def test_a_folder_stands_for_its_journeys_and_its_segments(tmp_path: Path) -> None:
    journeys = _folder(tmp_path)
    missing = tmp_path / "missing.yaml"

    found = discover([journeys, journeys / "segments", journeys / "customers.yaml", missing])
    assert found.segments == [journeys / "stray.yaml", journeys / "segments" / "vip.yaml"]
    assert found.journeys == [journeys / "welcome.yaml", missing]
    assert found.skipped == [journeys / "customers.yaml"]
    assert discover([journeys / "segments"]).segments == [journeys / "segments" / "vip.yaml"]


def test_validate_checks_segments_then_journeys(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    journeys = _folder(tmp_path)

    assert main(["validate", str(journeys)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(": ok")[0] for line in lines] == [
        str(journeys / "stray.yaml"),
        str(journeys / "segments" / "vip.yaml"),
        str(journeys / "welcome.yaml"),
    ]
    assert "ok (persona mature_anti_aging version " in lines[0]
    assert "ok (segment vip version " in lines[1]

    (journeys / "segments" / "vip.yaml").write_text(VIP + "pains: [x]\n", encoding="utf-8")
    assert main(["validate", str(journeys), str(journeys / "customers.yaml")]) == 1
    captured = capsys.readouterr()
    assert f"{journeys / 'segments' / 'vip.yaml'}:5:8: pains: pains describe a persona" in (
        captured.err
    )
    assert "welcome.yaml: ok" in captured.out  # the id is still declared: no second error
    assert f"{journeys / 'customers.yaml'}: skipped (a configuration file" in captured.out


def test_the_shipped_folder_validates(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["validate", str(REPO / "journeys")]) == 0
    out = capsys.readouterr().out
    assert "segments/vip.yaml: ok (segment vip version " in out
    assert "segments/mature_anti_aging.yaml: ok (persona mature_anti_aging version " in out
    assert "vip_welcome.yaml: ok (vip_welcome version " in out
    assert "customers.yaml" not in out


# --- the JSON Schema --------------------------------------------------------------------


def schema_errors(text: str) -> list[str]:
    validator = Draft202012Validator(segment_schema())
    return [error.message for error in validator.iter_errors(yaml.safe_load(text))]


def test_the_committed_segment_schema_is_current_and_valid() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == segment_schema_text(), (
        f"segment.schema.json is stale: `{REGENERATE_SEGMENT}`"
    )
    Draft202012Validator.check_schema(segment_schema())
    properties = segment_schema()["properties"]
    assert all(field.get("description") for field in properties.values())


@pytest.mark.parametrize("path", SHIPPED, ids=lambda path: path.name)
def test_shipped_segments_validate_against_the_schema(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == SCHEMA_COMMENT
    assert schema_errors(text) == []


@pytest.mark.parametrize(
    "text",
    [
        VIP + "goals: [x]\n",
        VIP + "kind: group\n",
        VIP.replace("id: vip", "id: Vip"),
        VIP.replace('when: metrics.frequency == "vip"\n', ""),
        VIP + "stages: []\n",
        VIP.replace("name: VIP customers", "name: ' '"),
    ],
)
def test_what_the_compiler_rejects_the_schema_rejects(text: str) -> None:
    with pytest.raises(JourneyError):
        compile_segment_source(text)
    assert schema_errors(text) != []


def test_the_schema_accepts_a_persona() -> None:
    assert schema_errors(PERSONA) == []
