"""The published JSON Schema: current, valid, and in agreement with the compiler on shapes."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]

from journeyman.orchestrator.language import JourneyError, compile_source
from journeyman.orchestrator.language.builder import dump_yaml
from journeyman.orchestrator.language.folders import journey_files
from journeyman.orchestrator.language.schema import REGENERATE, journey_schema, schema_text
from journeyman.orchestrator.language.spec import JourneySpec

REPO = Path(__file__).resolve().parents[3]
SCHEMA_FILE = REPO / "schema" / "journey.schema.json"
JOURNEYS = journey_files(REPO / "journeys")  # configuration files are not journeys

BASE = """\
id: demo
name: Demo
entry:
  event: Signed Up
stages:
  - name: welcome
    touchpoints:
      - send: {subject: Hello, body: Hi there}
"""


def variant(*, top: str = "", entry: str = "", stage: str = "", touchpoint: str = "") -> str:
    """The base journey with one part replaced, each part written as YAML text."""
    data = yaml.safe_load(BASE)
    if entry:
        data["entry"] = yaml.safe_load(entry)
    if stage:
        data["stages"] = [yaml.safe_load(stage)]
    if touchpoint:
        data["stages"][0]["touchpoints"] = [yaml.safe_load(touchpoint)]
    text = yaml.safe_dump(data, sort_keys=False)
    # Appended as text so that a key can also be misspelt or duplicated at the top level.
    return text + textwrap.dedent(top)


def schema_errors(text: str) -> list[str]:
    validator = Draft202012Validator(journey_schema())
    return [error.message for error in validator.iter_errors(yaml.safe_load(text))]


def test_the_committed_schema_is_current() -> None:
    committed = SCHEMA_FILE.read_text(encoding="utf-8")
    assert committed == schema_text(), f"schema/journey.schema.json is stale: run `{REGENERATE}`"


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    schema = journey_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


def test_every_field_has_a_description_for_editors() -> None:
    schema = journey_schema()
    models: dict[str, Any] = {"JourneySpec": schema, **schema["$defs"]}
    missing = [
        f"{model}.{field}"
        for model, definition in models.items()
        for field, property_schema in definition.get("properties", {}).items()
        if not property_schema.get("description")
    ]
    assert missing == []
    assert all(definition.get("description") for definition in models.values())


@pytest.mark.parametrize("path", JOURNEYS, ids=lambda path: path.name)
def test_shipped_journeys_validate_against_the_schema(path: Path) -> None:
    assert schema_errors(path.read_text(encoding="utf-8")) == []


@pytest.mark.parametrize("path", JOURNEYS, ids=lambda path: path.name)
def test_journeys_dumped_from_python_validate_against_the_schema(path: Path) -> None:
    spec = JourneySpec.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    assert schema_errors(dump_yaml(spec)) == []


@pytest.mark.parametrize("path", JOURNEYS, ids=lambda path: path.name)
def test_shipped_journeys_point_editors_at_the_schema(path: Path) -> None:
    first = path.read_text(encoding="utf-8").splitlines()[0]
    assert first == "# yaml-language-server: $schema=../schema/journey.schema.json"


# Structural mistakes: the compiler rejects each, and so must the schema (in an editor).
REJECTED = {
    "unknown top-level key": variant(top="stagse: []\n"),
    "unknown touchpoint key": variant(touchpoint="{sned: {subject: a, body: b}}"),
    "unknown send key": variant(touchpoint="send: {subject: a, body: b, bcc: x}"),
    "missing stages": "id: demo\nname: Demo\nentry: {event: Signed Up}\n",
    "empty stages": BASE.split("stages:")[0] + "stages: []\n",
    "missing name": BASE.replace("name: Demo\n", ""),
    "stages not a list": BASE.split("stages:")[0] + "stages: {name: welcome}\n",
    "priority as text": variant(top="priority: high\n"),
    "priority out of range": variant(top="priority: 6\n"),
    "bad journey id": BASE.replace("id: demo", "id: Demo"),
    "duration with a space": variant(touchpoint="wait: 3 days"),
    "duration in months": variant(touchpoint="wait: 1M"),
    "duration as a bare number text": variant(touchpoint="wait: '90'"),
    "negative duration": variant(touchpoint="wait: -1"),
    "zero timeout": variant(touchpoint="wait_for: {event: Paid, timeout: 0s}"),
    "zero max dwell": variant(stage="{name: s, goal: {event: Paid}, max_dwell: 0}"),
    "unquoted clock": variant(touchpoint="wait: {until: 9:00}"),
    "clock past midnight": variant(touchpoint="wait: {until: '24:00'}"),
    "unquoted quiet hours": variant(top="quiet_hours: {start: 21:00, end: '08:00'}\n"),
    "two step kinds": variant(touchpoint="{wait: 1d, goto: welcome}"),
    "no step kind": variant(touchpoint="{id: lonely}"),
    "a kind with no value": variant(touchpoint="send:"),
    "exit false": variant(touchpoint="exit: false"),
    "two ids for one send": variant(touchpoint="{id: a, send: {id: b, subject: s, body: b}}"),
    "send without body": variant(touchpoint="send: {subject: Hello}"),
    "send with template and subject": variant(touchpoint="send: {template: t, subject: s}"),
    "two-line subject": variant(touchpoint='send: {subject: "a\\nb", body: b}'),
    "unknown channel": variant(touchpoint="send: {subject: a, body: b, channel: fax}"),
    "locale with underscore": variant(
        touchpoint="send: {subject: a, body: b, locales: {pt_BR: {subject: a, body: b}}}"
    ),
    "until and until_date": variant(touchpoint="wait: {until: '09:00', until_date: birthday}"),
    "offset without until_date": variant(touchpoint="wait: {until: '09:00', offset: 1d}"),
    "weekdays without until": variant(touchpoint="wait: {until_date: birthday, weekdays: [mon]}"),
    "unknown weekday": variant(touchpoint="wait: {until: '09:00', weekdays: [monday]}"),
    "empty update": variant(touchpoint="update: {}"),
    "list as a trait value": variant(touchpoint="update: {set: {a: [1]}}"),
    "split with one path": variant(touchpoint="split: [{name: a, weight: 1}]"),
    "zero weight": variant(touchpoint="split: [{name: a, weight: 0}, {name: b, weight: 1}]"),
    "unknown operator": variant(entry="{event: Signed Up, where: {plan: {between: 1}}}"),
    "gte with text": variant(entry="{event: Signed Up, where: {total: {gte: '10'}}}"),
    "empty one_of": variant(entry="{event: Signed Up, where: {plan: {one_of: []}}}"),
    "list as a where value": variant(entry="{event: Signed Up, where: {plan: [a, b]}}"),
    "space in a property path": variant(entry="{event: Signed Up, where: {'cart total': 1}}"),
    "entry with no way in": variant(entry="{api: false}"),
    "where without event": variant(entry="{api: true, where: {plan: pro}}"),
    "unknown reentry": variant(entry="{event: Signed Up, reentry: twice}"),
    "holdout of 100%": variant(entry="{event: Signed Up, holdout: 100%}"),
    "cron with four fields": variant(entry="{schedule: {cron: '0 9 * *'}}"),
    "at without a zone": variant(entry="{schedule: {at: '2026-12-01T09:00:00'}}"),
    "stage with nothing": variant(stage="{name: idle}"),
    "bad on_max_dwell": variant(stage="{name: s, goal: {event: Paid}, on_max_dwell: stay}"),
    "goal without within": variant(top="goal: {event: Order Completed}\n"),
    "entry on an event and a segment": variant(entry="{event: Signed Up, segment: vip}"),
    "where on a segment entry": variant(entry="{segment: vip, where: {plan: pro}}"),
    "segment id in capitals": variant(entry="{segment: Vip}"),
    "exit on an event and a segment": variant(top="exit: [{event: A, leaves_segment: vip}]\n"),
    "exit on nothing": variant(top="exit: [{}]\n"),
    "where on a segment change": variant(
        touchpoint="wait_for: {enters_segment: vip, where: {a: 1}, timeout: 1d}"
    ),
    "wait_for on nothing": variant(touchpoint="wait_for: {timeout: 1d}"),
    "goal on two segments": variant(
        top="goal: {enters_segment: vip, leaves_segment: lost, within: 1d}\n"
    ),
}


@pytest.mark.parametrize("text", REJECTED.values(), ids=REJECTED.keys())
def test_structural_mistakes_are_rejected_by_the_compiler_and_the_schema(text: str) -> None:
    with pytest.raises(JourneyError):
        compile_source(text)
    assert schema_errors(text) != []


# The edges of what files may say: the schema must not mark valid files as errors.
ACCEPTED = {
    "wait zero": variant(touchpoint="wait: 0"),
    "wait in seconds": variant(touchpoint="wait: 90"),
    "wait with two units": variant(touchpoint="wait: 1d12h"),
    "weekday wait": variant(touchpoint="wait: {until: '09:00', weekdays: [mon, fri]}"),
    "date wait": variant(
        touchpoint="wait: {until_date: renews_on, offset: -7d, at: '10:00', yearly: true}"
    ),
    "zero offset beside until": variant(touchpoint="wait: {until: '09:00', offset: 0s}"),
    "id beside send": variant(touchpoint="{id: hello, send: {subject: a, body: b}}"),
    "exit with a reason": variant(touchpoint="exit: not interested"),
    "null trait value": variant(touchpoint="update: {set: {coupon: null}, increment: {n: -2.5}}"),
    "template send": variant(
        touchpoint="send: {template: hello}", top="templates: {hello: {subject: a, body: b}}\n"
    ),
    "operators": variant(
        entry="{event: Signed Up, where: {a: {gte: 1, lt: 5}, b: {one_of: [x, 1]}, c: null}}"
    ),
    "api entry with schedule": variant(
        entry="{api: true, schedule: {cron: '0 9 * * mon-fri', timezone: Europe/Paris}}"
    ),
    "one-off schedule": variant(entry="{schedule: {at: '2026-12-01T09:00:00+01:00'}}"),
    "reentry after": variant(entry="{event: Signed Up, reentry: {after: 30d}}"),
    "holdout as a number": variant(entry="{event: Signed Up, holdout: 2.5}"),
    "holdout as a percentage": variant(entry="{event: Signed Up, holdout: 99.5%}"),
    "stage with a goal only": variant(stage="{name: s, goal: {event: Paid}, max_dwell: 720h}"),
    "segment entry": variant(entry="{segment: vip, api: true}"),
    "segment hooks": variant(
        top="""\
        goal: {enters_segment: vip, within: 30d}
        exit: [{leaves_segment: vip}, {enters_segment: lost}, {event: Unsubscribed}]
        """,
        stage="{name: s, goal: {leaves_segment: at_risk}, touchpoints: [{wait_for:"
        " {enters_segment: at_risk, timeout: 7d, lookback: 1h}}]}",
    ),
    "delivery settings": variant(
        top="""\
        timezone: Asia/Seoul
        quiet_hours: {start: "21:00", end: "08:00", action: skip}
        frequency_caps: [{channel: email, limit: 3, per: 1w}]
        throttle: 600
        priority: 1
        defaults: {max_dwell: 7d, on_max_dwell: continue}
        """
    ),
}


@pytest.mark.parametrize("text", ACCEPTED.values(), ids=ACCEPTED.keys())
def test_valid_edge_cases_pass_the_compiler_and_the_schema(text: str) -> None:
    compile_source(text)
    assert schema_errors(text) == []
