"""Compile errors: every problem is reported, with the file, line and column it comes from."""

from __future__ import annotations

import pickle
import textwrap

import pytest

from journeyman.orchestrator.language import Diagnostic, JourneyError, compile_source

SOURCE = "journeys/x.yaml"


def errors(text: str) -> list[str]:
    """Compile and return the rendered diagnostics, failing if the text compiles."""
    with pytest.raises(JourneyError) as caught:
        compile_source(textwrap.dedent(text).lstrip("\n"), source=SOURCE)
    assert isinstance(caught.value, ValueError)
    assert str(caught.value) == "\n".join(str(d) for d in caught.value.diagnostics)
    return [str(d) for d in caught.value.diagnostics]


HEAD = """
id: x
name: X
entry: {event: Signed Up}
stages:
"""


def test_diagnostic_renders_file_line_column_path_and_message() -> None:
    full = Diagnostic("j.yaml", 12, 7, "stages[1].name", "bad")
    assert str(full) == "j.yaml:12:7: stages[1].name: bad"
    assert str(Diagnostic("j.yaml", 3, None, "", "bad")) == "j.yaml:3: bad"
    assert str(Diagnostic("j.yaml", None, None, "", "missing")) == "j.yaml: missing"


def test_yaml_syntax_error_gives_its_line() -> None:
    assert errors("id: x\nname: [unclosed\nentry: {event: A}\n") == [
        "journeys/x.yaml:3:6: YAML syntax error: expected ',' or ']', but got ':'"
        " (while parsing a flow sequence)"
    ]


def test_tab_indentation_is_a_syntax_error() -> None:
    [message] = errors("id: x\nentry:\n\tevent: A\n")
    assert message.startswith("journeys/x.yaml:3:1: YAML syntax error: found character '\\t'")


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n"])
def test_empty_file(text: str) -> None:
    assert errors(text) == ["journeys/x.yaml: the file is empty"]


@pytest.mark.parametrize("text", ["- id: x\n", "just a sentence\n", "42\n"])
def test_top_level_must_be_a_mapping(text: str) -> None:
    assert errors(text) == [
        "journeys/x.yaml:1:1: the top level must be a mapping with id, name, entry and stages"
    ]


def test_duplicate_yaml_keys_are_not_silently_dropped() -> None:
    assert errors(
        HEAD + "  - name: a\n    touchpoints:\n      - wait: 1d\n    touchpoints: []\n"
    ) == ["journeys/x.yaml:8:5: duplicate key 'touchpoints' (first on line 6)"]


def test_missing_keys_unknown_keys_and_wrong_types_are_all_reported() -> None:
    found = errors(
        """
        id: Lifecycle Journey
        entry:
          event: Signed Up
          source: web
        stages:
          - name: awareness
            goal: Product Viewed
            touchpoints:
              - send:
                  sujbect: Hello
                  body: [not, text]
                  channel: fax
            on_max_dwell: stop
        """
    )
    assert found == [
        "journeys/x.yaml:1:1: missing required key 'name'",
        "journeys/x.yaml:1:5: id: a journey id starts with a lowercase letter or digit, then "
        "lowercase letters, digits, '_' or '-', at most 64 characters; got 'Lifecycle Journey'",
        "journeys/x.yaml:4:3: entry.source: unknown key 'source'",
        "journeys/x.yaml:7:11: stages[0].goal: expected a mapping, got 'Product Viewed'",
        "journeys/x.yaml:10:11: stages[0].touchpoints[0].send.sujbect: unknown key 'sujbect'",
        "journeys/x.yaml:11:17: stages[0].touchpoints[0].send.body: expected text, got a list",
        "journeys/x.yaml:12:20: stages[0].touchpoints[0].send.channel: unknown channel 'fax'; "
        "available: email, sms, push, webhook, in_app",
        "journeys/x.yaml:13:19: stages[0].on_max_dwell: expected 'exit' or 'continue', got 'stop'",
    ]


def test_empty_or_missing_stages() -> None:
    assert errors("id: x\nname: X\nentry: {event: A}\nstages: []\n") == [
        "journeys/x.yaml:4:9: stages: must not be empty"
    ]
    assert errors("id: x\nname: X\nentry: {event: A}\n") == [
        "journeys/x.yaml:1:1: missing required key 'stages'"
    ]


def test_a_stage_must_do_something_and_be_a_mapping() -> None:
    assert errors(HEAD + "  - name: idle\n  - awareness\n") == [
        "journeys/x.yaml:5:5: stages[0]: stage 'idle' needs a goal or at least one touchpoint",
        "journeys/x.yaml:6:5: stages[1]: expected a mapping, got 'awareness'",
    ]


def test_duplicate_stage_names_and_step_ids_point_at_both_places() -> None:
    found = errors(
        HEAD
        + """\
  - name: awareness
    touchpoints:
      - send: {id: hello, subject: a, body: b}
      - wait_for:
          event: Product Viewed
          timeout: 1d
          on_timeout:
            - send: {id: hello, subject: a, body: b}
  - name: awareness
    touchpoints:
      - send: {id: Hello!, subject: a, body: b}
"""
    )
    assert found == [
        "journeys/x.yaml:12:26: stages[0].touchpoints[1].wait_for.on_timeout[0].send.id: "
        "duplicate step id 'hello' (first on line 7)",
        "journeys/x.yaml:13:11: stages[1].name: duplicate stage name 'awareness' (first on line 5)",
        "journeys/x.yaml:15:20: stages[1].touchpoints[0].send.id: use lowercase letters, digits, "
        "'_' or '-' (at most 64 characters); got 'Hello!'",
    ]


def test_bad_durations() -> None:
    found = errors(
        HEAD
        + """\
  - name: awareness
    goal: {event: A}
    max_dwell: 0
    touchpoints:
      - wait: 3 days
      - wait: -1
      - wait_for: {event: B, timeout: 0s}
      - wait: yes
"""
    )
    assert found == [
        "journeys/x.yaml:7:16: stages[0].max_dwell: must be longer than zero",
        "journeys/x.yaml:9:15: stages[0].touchpoints[0].wait: a duration is whole seconds or text "
        "like 90s, 15m, 2h, 3d, 1w or 1d12h, got '3 days'",
        "journeys/x.yaml:10:15: stages[0].touchpoints[1].wait: a duration must not be negative, "
        "got -1",
        "journeys/x.yaml:11:39: stages[0].touchpoints[2].wait_for.timeout: "
        "must be longer than zero",
        "journeys/x.yaml:12:15: stages[0].touchpoints[3].wait: a duration is whole seconds or text "
        "like 90s, 15m, 2h, 3d, 1w or 1d12h, got True",
    ]


def test_bad_conditions() -> None:
    found = errors(
        """
        id: x
        name: X
        entry:
          event: Signed Up
          where:
            price: {between: [1, 9]}
            plan: [free, pro]
            age: {gte: ten}
            tier: {one_of: []}
            coupon: {exists: maybe}
            cart..total: 3
            since: 2024-01-01
            score: {}
        stages: [{name: a, goal: {event: B}}]
        """
    )
    assert found == [
        "journeys/x.yaml:6:12: entry.where.price: unknown operator 'between'; "
        "use one of eq, ne, gt, gte, lt, lte, one_of, exists",
        "journeys/x.yaml:7:11: entry.where.plan: a property value must be a single value; "
        "to match any of several, use {one_of: [...]}",
        "journeys/x.yaml:8:10: entry.where.age: 'gte' compares with a number; got 'ten'",
        "journeys/x.yaml:9:11: entry.where.tier: 'one_of' takes a non-empty list of values",
        "journeys/x.yaml:10:13: entry.where.coupon: 'exists' takes true or false; got 'maybe'",
        'journeys/x.yaml:11:5: entry.where["cart..total"]: a property path is names joined by '
        "dots, without spaces; got 'cart..total'",
        "journeys/x.yaml:12:12: entry.where.since: a property value must be a string, number, "
        "boolean or null; quote 2024-01-01 to use it as text",
        "journeys/x.yaml:13:12: entry.where.score: a condition is a value or {operator: value} "
        "pairs, e.g. {gte: 10, lt: 20}",
    ]


def test_touchpoints_have_exactly_one_kind() -> None:
    found = errors(
        HEAD
        + """\
  - name: awareness
    touchpoints:
      - send: {subject: a, body: b}
        wait: 1d
      - sned: {subject: a, body: b}
      - send:
        subject: a
        body: b
      - {}
      - wait
"""
    )
    assert found == [
        "journeys/x.yaml:7:9: stages[0].touchpoints[0]: put send and wait in separate "
        "touchpoints (one '- ' item each)",
        "journeys/x.yaml:9:9: stages[0].touchpoints[1]: a touchpoint is one of send, wait, "
        "wait_for, branch, split, experiment, update, goto, exit; got 'sned'",
        "journeys/x.yaml:10:9: stages[0].touchpoints[2]: 'send' has no value; indent the keys "
        "that belong under it",
        "journeys/x.yaml:13:9: stages[0].touchpoints[3]: a touchpoint is one of send, wait, "
        "wait_for, branch, split, experiment, update, goto, exit; got nothing",
        "journeys/x.yaml:14:9: stages[0].touchpoints[4]: expected a mapping, got 'wait'",
    ]


def test_template_and_text_errors() -> None:
    found = errors(
        HEAD
        + """\
  - name: awareness
    touchpoints:
      - send:
          subject: "Hi {{ profile.first_name }"
          body: |
            Hello,

            {% if profile.vip %}You are a VIP.
      - send:
          subject: |-
            Two
            lines
          body: " "
          html: "<p>{{ }}</p>"
"""
    )
    assert found == [
        "journeys/x.yaml:8:20: stages[0].touchpoints[0].send.subject: "
        "template syntax error: unexpected '}'",
        # Jinja reports the end of the template on the line of the unclosed block.
        "journeys/x.yaml:12:13: stages[0].touchpoints[0].send.body: template syntax error: "
        "Unexpected end of template. Jinja was looking for the following tags: 'elif' or 'else' "
        "or 'endif'. The innermost block that needs to be closed is 'if'.",
        "journeys/x.yaml:14:20: stages[0].touchpoints[1].send.subject: a subject must be a "
        "single line",
        "journeys/x.yaml:17:17: stages[0].touchpoints[1].send.body: must not be empty",
        "journeys/x.yaml:18:17: stages[0].touchpoints[1].send.html: template syntax error: "
        "Expected an expression, got 'end of print statement'",
    ]


def test_template_error_line_inside_a_literal_block() -> None:
    found = errors(
        HEAD
        + """\
  - name: awareness
    touchpoints:
      - send:
          subject: Hello
          body: |
            Hi {{ profile.first_name | default('there') }},

            Your points: {{ profile.points | }}
"""
    )
    assert found == [
        "journeys/x.yaml:12:13: stages[0].touchpoints[0].send.body: template syntax error: "
        "expected token 'name', got 'end of print statement'"
    ]


def test_unknown_tags_are_rejected_by_the_safe_loader() -> None:
    [message] = errors("id: !!python/object/apply:os.system [echo]\n")
    assert message.startswith("journeys/x.yaml:1:5: YAML syntax error: could not determine")


def test_template_error_in_a_quoted_string_names_the_template_line() -> None:
    found = errors(
        HEAD + '  - name: a\n    touchpoints:\n      - send: {subject: s, body: "Hi\\n{{ x }"}\n'
    )
    assert found == [
        "journeys/x.yaml:7:34: stages[0].touchpoints[0].send.body: template syntax error: "
        "unexpected '}' (line 2 of the template)"
    ]


def test_alias_bombs_are_refused_before_validation() -> None:
    lines = ["a0: &a0 [1, 2, 3, 4, 5, 6, 7, 8, 9]"]
    lines += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 9)}]" for i in range(1, 10)]

    assert errors("\n".join(lines)) == [
        "journeys/x.yaml: the file expands to more than 100000 values through aliases"
    ]


def test_journey_error_survives_pickling_with_its_diagnostics() -> None:
    error = JourneyError([Diagnostic("j.yaml", 2, 1, "name", "must not be empty")])

    copy = pickle.loads(pickle.dumps(error))

    assert copy.diagnostics == error.diagnostics
    assert str(copy) == "j.yaml:2:1: name: must not be empty"
