"""Goals and KPIs of touchpoints: on sends, on observed touchpoints, in files, in Python and in
the JSON Schema, without changing the version of a journey that does not use them."""

from __future__ import annotations

import base64
import hashlib
import json
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from pydantic import ValidationError

from journeyman.orchestrator.language import (
    Diagnostic,
    JourneyError,
    compile_file,
    compile_source,
)
from journeyman.orchestrator.language.builder import (
    compile_python,
    dump_yaml,
    journey,
    kpi,
    observed,
    push,
    send,
    sms,
    stage,
    wait,
    webhook,
)
from journeyman.orchestrator.language.folders import journey_files
from journeyman.orchestrator.language.schema import journey_schema
from journeyman.orchestrator.language.spec import JourneySpec
from journeyman.workflows.plan import Kpi, ObservedTouchpoint, Plan, PropertyTest, SendStep, walk

REPO = Path(__file__).resolve().parents[3]
EXAMPLE = REPO / "docs" / "examples" / "product_launch.yaml"
HISTORIES = REPO / "tests" / "workflows" / "histories"
SOURCE = "journeys/x.yaml"

HEAD = """\
id: x
name: X
entry: {event: Signed Up}
stages:
"""


def compile_text(text: str, warnings: list[Diagnostic] | None = None) -> Plan:
    return compile_source(textwrap.dedent(text).lstrip("\n"), source=SOURCE, warnings=warnings)


def errors(text: str) -> list[str]:
    """Compile and return the rendered diagnostics, failing if the text compiles."""
    with pytest.raises(JourneyError) as caught:
        compile_text(text)
    return [str(d) for d in caught.value.diagnostics]


def one_send(send_text: str) -> str:
    """A journey whose one stage sends ``send_text`` (a flow mapping)."""
    return HEAD + f"  - name: s\n    touchpoints:\n      - send: {send_text}\n"


def observing(items: str) -> str:
    """A journey whose one stage observes ``items`` (list items indented by six)."""
    return HEAD + "  - name: s\n    goal: {event: Paid}\n    observe:\n" + items


def sends_of(plan: Plan) -> dict[str, SendStep]:
    return {
        step.id: step for s in plan.stages for step in walk(s.steps) if isinstance(step, SendStep)
    }


# --- sends ----------------------------------------------------------------------------------


def test_every_channel_carries_the_goal_and_kpi_of_its_send() -> None:
    plan = compile_text(
        HEAD
        + """\
  - name: s
    touchpoints:
      - send:
          id: dem
          subject: Ten percent off
          body: This week only.
          goal: conversion
          kpi:
            name: orders
            event: Order Completed
            where: {total: {gt: 0}, coupon: {exists: true}}
      - send: {id: text, channel: sms, body: Last day, goal: conversion,
               kpi: {name: orders, event: Order Completed}}
      - send: {id: note, channel: push, title: New, body: Look, goal: traffic,
               kpi: {name: visits, page: Night Cream}}
      - send: {id: inbox, channel: in_app, title: New, body: Look, goal: engagement,
               kpi: {name: opens, screen: true}}
      - send: {id: crm, channel: webhook, url: "https://crm.example.com/lead", body: "{}",
               goal: retention, kpi: {name: renewals, event: Renewed}}
      - send: {id: plain, subject: Hi, body: There}
"""
    )
    found = {step_id: (step.goal, step.kpi) for step_id, step in sends_of(plan).items()}

    assert found == {
        "dem": (
            "conversion",
            Kpi(
                name="orders",
                event="Order Completed",
                # Sorted by path, as every filter is: key order never changes the version.
                where=[
                    PropertyTest(path="coupon", op="exists", value=True),
                    PropertyTest(path="total", op="gt", value=0),
                ],
            ),
        ),
        "text": ("conversion", Kpi(name="orders", event="Order Completed")),
        "note": ("traffic", Kpi(name="visits", type="page", event="Night Cream")),
        "inbox": ("engagement", Kpi(name="opens", type="screen")),
        "crm": ("retention", Kpi(name="renewals", event="Renewed")),
        "plain": (None, None),
    }


def test_goal_and_kpi_names_are_trimmed_labels() -> None:
    plan = compile_text(
        one_send('{subject: a, body: b, goal: "  conversion ", kpi: {name: " orders", event: E}}')
    )
    step = sends_of(plan)["s.1"]
    assert (step.goal, step.kpi) == ("conversion", Kpi(name="orders", event="E"))


def test_a_goal_without_a_kpi_is_a_warning_at_the_goal() -> None:
    warnings: list[Diagnostic] = []
    plan = compile_text(one_send("{subject: a, body: b, goal: engagement}"), warnings)

    assert sends_of(plan)["s.1"].goal == "engagement"
    assert [str(w) for w in warnings] == [
        "journeys/x.yaml:7:43: warning: stages[0].touchpoints[0].send.goal: goal 'engagement'"
        " has no kpi to measure it; add kpi: {name: ..., event: ...} beside it"
    ]


# --- observed touchpoints ---------------------------------------------------------------------


def test_observed_touchpoints_compile_into_their_stage_in_order() -> None:
    plan = compile_text(
        observing(
            """\
      - id: website
        goal: traffic
        kpi: {name: visits, page: true, where: {path: {one_of: [/, /launch]}}}
      - id: launch-event
        goal: awareness
        kpi: {name: attendees, event: Event Attended, where: {event_id: launch}}
      - id: store
        kpi: {name: store visits, event: Store Visited}
"""
        )
    )

    assert plan.stages[0].observed == [
        ObservedTouchpoint(
            id="website",
            goal="traffic",
            kpi=Kpi(
                name="visits",
                type="page",
                where=[PropertyTest(path="path", op="one_of", value=["/", "/launch"])],
            ),
        ),
        ObservedTouchpoint(
            id="launch-event",
            goal="awareness",
            kpi=Kpi(
                name="attendees",
                event="Event Attended",
                where=[PropertyTest(path="event_id", value="launch")],
            ),
        ),
        ObservedTouchpoint(id="store", kpi=Kpi(name="store visits", event="Store Visited")),
    ]
    # Measured, never waited on: the routing of events is unchanged.
    assert plan.event_names() == {"Signed Up", "Paid"}


def test_an_observed_id_is_unique_among_observed_touchpoints_and_steps() -> None:
    text = (
        HEAD
        + """\
  - name: a
    observe:
      - {id: website, kpi: {name: visits, page: true}}
      - {id: website, kpi: {name: visits, screen: true}}
    touchpoints:
      - send: {id: dem, subject: a, body: b}
  - name: b
    touchpoints:
      - send: {id: website, subject: a, body: b}
    observe:
      - {id: dem, kpi: {name: orders, event: Order Completed}}
"""
    )
    assert errors(text) == [
        "journeys/x.yaml:8:14: stages[0].observe[1].id: duplicate touchpoint id 'website'"
        " (first on line 7)",
        "journeys/x.yaml:13:20: stages[1].touchpoints[0].send.id: duplicate step id 'website'"
        " (first on line 7)",
        "journeys/x.yaml:15:14: stages[1].observe[0].id: duplicate touchpoint id 'dem'"
        " (first on line 10)",
    ]


# --- what a bad goal or KPI is told -------------------------------------------------------------


@pytest.mark.parametrize(
    ("send_text", "message"),
    [
        (
            "{subject: a, body: b, kpi: {name: orders}}",
            "7:42: stages[0].touchpoints[0].send.kpi: a kpi counts an event, page views"
            " (page: true) or screen views (screen: true)",
        ),
        (
            "{subject: a, body: b, kpi: {name: orders, event: E, page: true}}",
            "7:42: stages[0].touchpoints[0].send.kpi: give one of event, page, not several",
        ),
        (
            "{subject: a, body: b, kpi: {name: visits, page: false}}",
            "7:63: stages[0].touchpoints[0].send.kpi.page: give true (every view) or the name"
            " the page or screen call sends, like Pricing",
        ),
        (
            "{subject: a, body: b, kpi: {event: E}}",
            "7:42: stages[0].touchpoints[0].send.kpi: missing required key 'name'",
        ),
        (
            "{subject: a, body: b, kpi: {name: orders, event: E, within: 3d}}",
            "7:67: stages[0].touchpoints[0].send.kpi.within: unknown key 'within'",
        ),
        (
            "{subject: a, body: b, kpi: {name: orders, event: E, where: {total: {over: 1}}}}",
            "7:82: stages[0].touchpoints[0].send.kpi.where.total: unknown operator 'over';"
            " use one of eq, ne, gt, gte, lt, lte, one_of, exists",
        ),
        (
            "{subject: a, body: b, goal: ' '}",
            "7:43: stages[0].touchpoints[0].send.goal: must not be empty",
        ),
        (
            '{subject: a, body: b, goal: "sell\\nmore"}',
            "7:43: stages[0].touchpoints[0].send.goal: a goal or KPI name is a single line",
        ),
        (
            f"{{subject: a, body: b, goal: {'x' * 65}}}",
            "7:43: stages[0].touchpoints[0].send.goal: a goal or KPI name is at most 64"
            " characters; this one has 65",
        ),
        (
            "{subject: a, body: b, goal: 3}",
            "7:43: stages[0].touchpoints[0].send.goal: expected text, got 3",
        ),
        (
            "{subject: a, body: b, kpi: {name: orders, event: E, where: {t: {gt: 5, lt: 1}}}}",
            "7:74: stages[0].touchpoints[0].send.kpi.where: no event can satisfy this kpi: 't'"
            " has no number between the bounds given",
        ),
    ],
)
def test_a_bad_goal_or_kpi_on_a_send_is_reported_where_it_stands(
    send_text: str, message: str
) -> None:
    assert errors(one_send(send_text)) == [f"{SOURCE}:{message}"]


def test_an_unknown_channel_is_the_only_problem_of_a_measured_send() -> None:
    [message] = errors(
        one_send("{channel: fax, body: b, goal: conversion, kpi: {name: o, event: E}}")
    )
    assert message.endswith(
        "send.channel: unknown channel 'fax'; available: email, sms, push, webhook, in_app"
    )


def test_a_bad_observed_touchpoint_is_reported_where_it_stands() -> None:
    assert errors(
        observing(
            """\
      - id: website
        goal: traffic
      - {id: Social, kpi: {name: interactions, event: Liked}}
      - {id: event, kpi: {name: attendees, event: Attended}, channel: offline}
"""
        )
    ) == [
        "journeys/x.yaml:8:9: stages[0].observe[0]: missing required key 'kpi'",
        "journeys/x.yaml:10:14: stages[0].observe[1].id: use lowercase letters, digits, '_' or"
        " '-' (at most 64 characters); got 'Social'",
        "journeys/x.yaml:11:62: stages[0].observe[2].channel: unknown key 'channel'",
    ]


def test_a_kpi_naming_an_unknown_segment_is_an_error_like_any_segment_hook() -> None:
    text = observing(
        "      - id: vips\n"
        "        kpi: {name: new vips, event: Segment Entered, where: {segment: vpi}}\n"
    )
    with pytest.raises(JourneyError) as caught:
        compile_source(text, source=SOURCE, segments={"vip"})
    assert [str(d) for d in caught.value.diagnostics] == [
        "journeys/x.yaml:9:72: stages[0].observe[0].kpi.where.segment: unknown segment 'vpi'"
        " (segments: vip)"
    ]
    compile_source(text.replace("vpi", "vip"), source=SOURCE, segments={"vip"})


# --- versions -----------------------------------------------------------------------------------


def _recorded_versions() -> dict[str, str]:
    """The version each shipped journey's recorded histories ran (their start input)."""
    found: dict[str, str] = {}
    for path in sorted(HISTORIES.glob("*.json")):
        start = json.loads(path.read_text(encoding="utf-8"))["events"][0]
        payload = start["workflowExecutionStartedEventAttributes"]["input"]["payloads"][0]
        found[path.stem.rsplit("-", 1)[0]] = json.loads(base64.b64decode(payload["data"]))[
            "version"
        ]
    return found


def test_shipped_journeys_compile_to_the_versions_their_recorded_runs_have() -> None:
    recorded = _recorded_versions()
    assert recorded  # histories exist for the shipped journeys
    compiled = {path.stem: compile_file(path).version for path in journey_files(REPO / "journeys")}
    assert {name: compiled.get(name) for name in recorded} == recorded


def test_a_send_without_goal_or_kpi_hashes_as_it_always_did() -> None:
    # The canonical form of a plan leaves out fields at their default: goal, kpi and observed
    # must stay out of every plan that does not use them, or every version would change.
    plan = compile_text(
        HEAD + "  - name: s\n    goal: {event: Paid}\n    touchpoints:\n"
        "      - send: {id: hi, subject: Hello, body: Hi}\n"
    )
    canonical = (
        '{"entry":{"match":{"event":"Signed Up"}},"journey_id":"x","name":"X","stages":'
        '[{"goal":{"event":"Paid"},"max_dwell_seconds":2592000,"name":"s","steps":'
        '[{"body":"Hi","id":"hi","kind":"send","subject":"Hello"}]}]}'
    )
    assert plan.version == hashlib.sha256(canonical.encode()).hexdigest()[:16]


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("body: Hi}", "body: Hi, goal: conversion}"),
        ("body: Hi}", "body: Hi, kpi: {name: orders, event: Order Completed}}"),
        (
            "goal: {event: Paid}\n",
            "goal: {event: Paid}\n    observe: [{id: w, kpi: {name: v, page: true}}]\n",
        ),
    ],
)
def test_declaring_a_goal_or_kpi_gives_a_new_version(before: str, after: str) -> None:
    base = (
        HEAD + "  - name: s\n    goal: {event: Paid}\n    touchpoints:\n"
        "      - send: {id: hi, subject: Hello, body: Hi}\n"
    )
    assert before in base
    assert compile_text(base.replace(before, after, 1)).version != compile_text(base).version


def test_the_order_of_kpi_keys_does_not_change_the_version() -> None:
    one = one_send("{subject: a, body: b, kpi: {name: o, event: E, where: {a: 1, b: 2}}}")
    other = one_send("{subject: a, body: b, kpi: {where: {b: 2, a: 1}, event: E, name: o}}")
    assert compile_text(one).version == compile_text(other).version


# --- Python ---------------------------------------------------------------------------------


def launch() -> JourneySpec:
    """A journey with goals and KPIs, written in Python."""
    return journey(
        "launch",
        "Launch",
        entry="Signed Up",
        stages=[
            stage(
                "awareness",
                send(
                    "Meet the cream",
                    "Come to the launch.",
                    id="invite",
                    goal="awareness",
                    kpi=kpi("RSVPs", "Event RSVP", where={"event_id": "launch"}),
                ),
                wait("3d"),
                push("New", "Look", id="story", goal="traffic", kpi=kpi("visits", page="Night")),
                goal="Product Viewed",
                observe=[
                    observed("website", goal="traffic", kpi=kpi("visits", page=True)),
                    observed("app", kpi=kpi("screens", screen=True, where={"name": "Home"})),
                ],
            ),
            stage(
                "purchase",
                sms("Last day", id="text", goal="conversion", kpi=kpi("orders", "Order Completed")),
                webhook("https://crm.example.com/lead", "{}", id="crm", goal="retention"),
            ),
        ],
    )


LAUNCH_YAML = """\
id: launch
name: Launch
entry: {event: Signed Up}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    observe:
      - {id: website, goal: traffic, kpi: {name: visits, page: true}}
      - {id: app, kpi: {name: screens, screen: true, where: {name: Home}}}
    touchpoints:
      - send:
          id: invite
          goal: awareness
          kpi: {name: RSVPs, event: Event RSVP, where: {event_id: launch}}
          subject: Meet the cream
          body: Come to the launch.
      - wait: 3d
      - send: {id: story, channel: push, title: New, body: Look, goal: traffic,
               kpi: {name: visits, page: Night}}
  - name: purchase
    touchpoints:
      - send: {id: text, channel: sms, body: Last day, goal: conversion,
               kpi: {name: orders, event: Order Completed}}
      - send: {id: crm, channel: webhook, url: "https://crm.example.com/lead", body: "{}",
               goal: retention}
"""


def test_the_python_helpers_build_what_the_file_says() -> None:
    plan = compile_python(launch())
    assert plan.version == compile_source(LAUNCH_YAML).version
    assert compile_source(dump_yaml(launch())).version == plan.version


def test_python_reports_duplicate_observed_ids_and_bad_kpis_as_files_do() -> None:
    twice = journey(
        "j",
        "J",
        entry="A",
        stages=[
            stage(
                "s",
                send("a", "b", id="website"),
                observe=[observed("website", kpi=kpi("visits", page=True))],
            )
        ],
    )
    with pytest.raises(JourneyError) as caught:
        compile_python(twice)
    assert [str(d) for d in caught.value.diagnostics] == [
        "<python>: stages[0].touchpoints[0].send.id: duplicate step id 'website'"
        " (first at stages[0].observe[0].id)"
    ]
    with pytest.raises(ValidationError, match="give true"):
        kpi("visits", page=False)
    with pytest.raises(ValidationError, match="give one of event, screen, not several"):
        kpi("visits", "Page Viewed", screen=True)


# --- the example and the schema -------------------------------------------------------------------


def test_the_documented_example_sets_a_goal_and_kpi_for_each_kind_of_touchpoint() -> None:
    warnings: list[Diagnostic] = []
    plan = compile_file(EXAMPLE, warnings=warnings)
    assert [str(w) for w in warnings] == []
    measured: dict[str, tuple[str | None, str, str, str | None]] = {}
    for s in plan.stages:
        for seen in s.observed:
            measured[seen.id] = (seen.goal, seen.kpi.name, seen.kpi.type, seen.kpi.event)
        for step in walk(s.steps):
            if isinstance(step, SendStep):
                assert step.kpi is not None, f"{step.id} has no kpi"
                measured[step.id] = (step.goal, step.kpi.name, step.kpi.type, step.kpi.event)
    # The four touchpoints of the marketing-automation playbook, and what measures each.
    assert measured["website"] == ("traffic", "visits", "page", None)
    assert measured["social"] == ("engagement", "interactions", "track", "Social Interaction")
    assert measured["launch-event"] == ("awareness", "attendees", "track", "Event Attended")
    assert measured["launch-offer"] == ("conversion", "orders", "track", "Order Completed")
    assert len(measured) == 9


def schema_errors(data: Any) -> list[str]:
    validator = Draft202012Validator(journey_schema())
    return [error.message for error in validator.iter_errors(data)]


def test_the_example_and_its_python_round_trip_validate_against_the_schema() -> None:
    text = EXAMPLE.read_text(encoding="utf-8")
    assert (
        text.splitlines()[0] == "# yaml-language-server: $schema=../../schema/journey.schema.json"
    )
    assert schema_errors(yaml.safe_load(text)) == []
    spec = JourneySpec.model_validate(yaml.safe_load(text))
    dumped = dump_yaml(spec)
    assert schema_errors(yaml.safe_load(dumped)) == []
    assert compile_source(dumped).version == compile_file(EXAMPLE).version


SCHEMA_REJECTED = {
    "kpi with nothing to count": one_send("{subject: a, body: b, kpi: {name: o}}"),
    "kpi on two sources": one_send("{subject: a, body: b, kpi: {name: o, event: E, page: true}}"),
    "kpi without a name": one_send("{subject: a, body: b, kpi: {event: E}}"),
    "page false": one_send("{subject: a, body: b, kpi: {name: o, page: false}}"),
    "two-line goal": one_send('{subject: a, body: b, goal: "a\\nb"}'),
    "goal too long": one_send(f"{{subject: a, body: b, goal: {'x' * 65}}}"),
    "observed without kpi": observing("      - {id: website, goal: traffic}\n"),
    "observed without id": observing("      - {kpi: {name: v, page: true}}\n"),
    "observed with a bad id": observing("      - {id: Web, kpi: {name: v, page: true}}\n"),
}


@pytest.mark.parametrize("text", SCHEMA_REJECTED.values(), ids=SCHEMA_REJECTED.keys())
def test_bad_goals_and_kpis_are_rejected_by_the_compiler_and_the_schema(text: str) -> None:
    with pytest.raises(JourneyError):
        compile_source(text)
    assert schema_errors(yaml.safe_load(text)) != []


SCHEMA_ACCEPTED = {
    "every channel": LAUNCH_YAML,
    "named screen": one_send("{subject: a, body: b, kpi: {name: o, screen: Home}}"),
    "goal with spaces": one_send("{subject: a, body: b, goal: win back, kpi: {name: o, event: E}}"),
    "goal of 64 characters": one_send(
        f"{{subject: a, body: b, goal: {'x' * 64}, kpi: {{name: o, event: E}}}}"
    ),
}


@pytest.mark.parametrize("text", SCHEMA_ACCEPTED.values(), ids=SCHEMA_ACCEPTED.keys())
def test_good_goals_and_kpis_pass_the_compiler_and_the_schema(text: str) -> None:
    compile_source(text)
    assert schema_errors(yaml.safe_load(text)) == []
