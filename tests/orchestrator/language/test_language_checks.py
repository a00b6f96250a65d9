"""Semantic checks: what the grammar cannot see, reported with the place it comes from."""

from __future__ import annotations

import textwrap

import pytest

from journeyman.orchestrator.language import Diagnostic, JourneyError, build_plan, compile_source
from journeyman.orchestrator.language.spec import JourneySpec
from journeyman.workflows.plan import Plan

SOURCE = "journeys/x.yaml"

HEAD = """\
id: x
name: X
entry: {event: Signed Up}
"""


def compile_text(text: str, warnings: list[Diagnostic] | None = None) -> Plan:
    return compile_source(textwrap.dedent(text).lstrip("\n"), source=SOURCE, warnings=warnings)


def errors(text: str) -> list[str]:
    """Compile and return the rendered diagnostics, failing if the text compiles."""
    with pytest.raises(JourneyError) as caught:
        compile_text(text)
    return [str(d) for d in caught.value.diagnostics]


def touchpoints(items: str, head: str = HEAD) -> str:
    """A journey whose one stage, ``s``, has the touchpoints ``items`` (indented by six)."""
    return head + "stages:\n  - name: s\n    touchpoints:\n" + items


# --- templates and goto targets ------------------------------------------------------------


def test_unknown_template_lists_the_ones_defined() -> None:
    assert errors(touchpoints("      - send: {template: welcome}\n")) == [
        "journeys/x.yaml:7:26: stages[0].touchpoints[0].send.template: unknown template "
        "'welcome' (templates: none are defined)"
    ]
    head = HEAD + "templates:\n  hello: {subject: a, body: b}\n  bye: {subject: a, body: b}\n"
    items = (
        "      - wait: 1d\n      - branch:\n          cases:\n            - when: profile.age > 1\n"
    )
    items += "              then: [{send: {id: greet, template: welcome}}]\n"
    assert errors(touchpoints(items, head)) == [
        "journeys/x.yaml:14:51: stages[0].touchpoints[1].branch.cases[0].then[0].send.template: "
        "unknown template 'welcome' (templates: bye, hello)"
    ]


def test_unknown_goto_target() -> None:
    assert errors(touchpoints("      - wait: 1d\n      - goto: nowhere\n")) == [
        "journeys/x.yaml:8:15: stages[0].touchpoints[1].goto: goto target 'nowhere' is neither "
        "a stage nor a step id"
    ]


def test_a_goto_target_may_not_name_both_a_stage_and_a_step() -> None:
    found = errors(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        stages:
          - name: welcome
            touchpoints: [{wait: 1d}, {goto: later}]
          - name: later
            touchpoints:
              - wait: 1h
              - id: later
                wait: 1d
        """
    )
    assert found == [
        "journeys/x.yaml:6:38: stages[0].touchpoints[1].goto: goto target 'later' is both a "
        "stage and a step id; rename one"
    ]


def test_a_goto_target_naming_a_stage_and_its_first_step_is_not_ambiguous() -> None:
    plan = compile_text(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        stages:
          - name: welcome
            touchpoints: [{wait: 1d}, {goto: later}]
          - name: later
            touchpoints:
              - id: later
                wait: 1d
              - send: {subject: a, body: b}
        """
    )
    assert plan.step("welcome.2").model_dump()["stage"] is True


def test_goto_forward_within_a_stage_and_into_another_compiles() -> None:
    plan = compile_text(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        stages:
          - name: awareness
            touchpoints:
              - branch:
                  cases:
                    - when: profile.age > 60
                      then: [{goto: reminder}]
                    - when: profile.age < 18
                      then: [{goto: thanks}]
              - send: {subject: Welcome, body: Hello}
              - id: reminder
                wait: 1d
          - name: loyalty
            touchpoints:
              - send: {id: thanks, subject: Thanks, body: Thank you}
        """
    )

    assert [stage.name for stage in plan.stages] == ["awareness", "loyalty"]


# --- unreachable steps ---------------------------------------------------------------------


def test_steps_after_a_goto_or_an_exit_can_never_run() -> None:
    found = errors(
        touchpoints(
            """\
      - id: top
        wait: 1d
      - goto: top
      - send: {subject: a, body: b}
      - branch:
          cases:
            - when: profile.age > 60
              then:
                - exit: too old
                - wait: 1d
                - wait: 2d
"""
        )
    )
    assert found == [
        "journeys/x.yaml:10:9: stages[0].touchpoints[2]: step 's.3' can never run: it comes "
        "after goto 's.2'",
        "journeys/x.yaml:16:19: stages[0].touchpoints[3].branch.cases[0].then[1]: step "
        "'s.4.case1.2' can never run: it comes after exit 's.4.case1.1'",
    ]


# --- loops ---------------------------------------------------------------------------------


def test_a_loop_without_a_wait_is_an_error() -> None:
    assert errors(
        touchpoints(
            """\
      - id: top
        update: {increment: {visits: 1}}
      - send: {subject: a, body: b}
      - goto: top
"""
        )
    ) == [
        "journeys/x.yaml:10:9: stages[0].touchpoints[2]: this loop has no wait in it: it would "
        "repeat without time passing"
    ]


def test_a_loop_through_a_path_without_a_wait_is_an_error() -> None:
    # One path waits, the other does not: the customers who take it would spin.
    assert errors(
        touchpoints(
            """\
      - id: top
        branch:
          cases:
            - when: profile.age > 60
              then: [{wait: 1d}]
          otherwise: [{update: {tags: [young]}}]
      - goto: top
"""
        )
    ) == [
        "journeys/x.yaml:13:9: stages[0].touchpoints[1]: this loop has no wait in it: it would "
        "repeat without time passing"
    ]


def test_a_loop_across_stages_without_a_wait_is_an_error() -> None:
    found = errors(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        stages:
          - name: first
            touchpoints: [{send: {subject: a, body: b}}]
          - name: second
            touchpoints: [{update: {tags: [again]}}, {goto: first}]
        """
    )
    assert found == [
        "journeys/x.yaml:8:46: stages[1].touchpoints[1]: this loop has no wait in it: it would "
        "repeat without time passing"
    ]


def test_a_stage_with_a_goal_waits_for_it_at_its_end() -> None:
    # Without the goal, first would run into second, and second back into first.
    plan = compile_text(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        stages:
          - name: first
            goal: {event: Product Viewed}
            touchpoints: [{send: {subject: a, body: b}}]
          - name: second
            touchpoints: [{update: {tags: [again]}}, {goto: first}]
        """
    )
    assert [stage.name for stage in plan.stages] == ["first", "second"]


@pytest.mark.parametrize(
    "wait",
    [
        "wait: 1h",
        'wait: {until: "09:00", weekdays: [mon]}',
        "wait: {until_date: birthday, yearly: true}",
        "wait_for: {event: Product Viewed, timeout: 1d}",
    ],
)
def test_a_loop_with_a_wait_compiles(wait: str) -> None:
    plan = compile_text(
        touchpoints(
            f"""\
      - id: top
        send: {{subject: Reminder, body: Still there}}
      - {wait}
      - goto: top
"""
        )
    )
    assert [step.id for step in plan.stages[0].steps] == ["top", "s.2", "s.3"]


@pytest.mark.parametrize(
    ("wait", "reason"),
    [
        ("wait: 0", "it waits 0 seconds"),
        (
            "wait: {until_date: renews_on, offset: -7d}",
            "a wait until a date that is not yearly ends at once when the date has passed",
        ),
        (
            "wait_for: {event: Product Viewed, timeout: 1d, lookback: 1h}",
            "a wait_for with lookback finds the same past event again",
        ),
    ],
)
def test_a_loop_whose_wait_can_end_at_once_is_an_error(wait: str, reason: str) -> None:
    found = errors(
        touchpoints(
            f"""\
      - id: top
        send: {{subject: Reminder, body: Still there}}
      - {wait}
      - goto: top
"""
        )
    )
    assert found == [
        "journeys/x.yaml:10:9: stages[0].touchpoints[2]: this loop can repeat without time "
        f"passing: 's.2' can end at once ({reason})"
    ]


def test_loops_are_checked_even_when_other_problems_are_found() -> None:
    found = errors(
        touchpoints(
            """\
      - id: top
        send: {template: missing}
      - goto: top
"""
        )
    )
    assert found == [
        "journeys/x.yaml:8:26: stages[0].touchpoints[0].send.template: unknown template "
        "'missing' (templates: none are defined)",
        "journeys/x.yaml:9:9: stages[0].touchpoints[1]: this loop has no wait in it: it would "
        "repeat without time passing",
    ]


# --- filters no event can satisfy ----------------------------------------------------------


def test_a_goal_no_event_can_satisfy_is_an_error_but_a_single_value_range_is_not() -> None:
    impossible = HEAD + "goal: {event: Order Completed, where: {total: {gte: 10, lt: 5}}, "
    impossible += "within: 7d}\n"
    assert errors(touchpoints("      - wait: 1d\n", impossible)) == [
        "journeys/x.yaml:4:39: goal.where: no event can satisfy this goal: 'total' has no "
        "number between the bounds given"
    ]

    exact = HEAD + "goal: {event: Order Completed, where: {total: {gte: 10, lte: 10}}, "
    exact += "within: 7d}\n"
    plan = compile_text(touchpoints("      - wait: 1d\n", exact))
    assert plan.goal is not None
    assert [(t.op, t.value) for t in plan.goal.match.where] == [("gte", 10), ("lte", 10)]


def test_every_event_filter_is_checked() -> None:
    found = errors(
        """
        id: x
        name: X
        entry:
          event: Signed Up
          where: {plan: {eq: pro, ne: pro}}
        exit:
          - {event: Unsubscribed}
          - {event: Account Closed, where: {reason: {one_of: [fraud, abuse], eq: moved}}}
        stages:
          - name: s
            goal: {event: Product Viewed, where: {price: {gt: 10, lte: 10}}}
            touchpoints:
              - wait_for:
                  event: Coupon Used
                  where: {code: {exists: false, eq: WELCOME}}
                  timeout: 1d
              - experiment:
                  variants: [{name: a, weight: 1}, {name: b, weight: 1}]
                  control: a
                  metric: {event: Order Completed, where: {total: {eq: 5, gt: 9}}, within: 1d}
        """
    )
    assert found == [
        "journeys/x.yaml:5:10: entry.where: no event can satisfy this entry: 'plan' has no value "
        "left that every test accepts",
        "journeys/x.yaml:8:36: exit[1].where: no event can satisfy this exit: 'reason' has no "
        "value left that every test accepts",
        "journeys/x.yaml:11:42: stages[0].goal.where: no event can satisfy this goal: 'price' "
        "has no number between the bounds given",
        "journeys/x.yaml:15:18: stages[0].touchpoints[0].wait_for.where: no event can satisfy "
        "this wait_for: 'code' must not exist, yet it is compared with a value",
        "journeys/x.yaml:20:51: stages[0].touchpoints[1].experiment.metric.where: no event can "
        "satisfy this metric: 'total' has no value left that every test accepts",
    ]


@pytest.mark.parametrize(
    "where",
    [
        "{total: {gt: 0, lt: 100}}",
        "{total: {eq: 5, gte: 5}}",
        "{plan: {one_of: [free, pro], ne: free}}",
        "{coupon: {exists: true, ne: EXPIRED}}",
        "{coupon: {exists: false}, total: {gte: 1}}",
        "{flag: {eq: true, one_of: [true, 1]}}",
    ],
)
def test_filters_some_event_can_satisfy_compile(where: str) -> None:
    compile_text(touchpoints(f"      - wait_for: {{event: E, timeout: 1h, where: {where}}}\n"))


# --- conditions ----------------------------------------------------------------------------


def test_a_condition_that_does_not_parse_points_at_its_when() -> None:
    found = errors(
        touchpoints(
            """\
      - branch:
          cases:
            - when: profile.age >
            - when: profile.age > 60 and
              then:
                - branch:
                    cases:
                      - when: profile.age > > 3
"""
        )
    )
    assert found == [
        "journeys/x.yaml:9:21: stages[0].touchpoints[0].branch.cases[0].when: condition: "
        "expected a value, got the end of the condition at column 14",
        "journeys/x.yaml:10:21: stages[0].touchpoints[0].branch.cases[1].when: condition: "
        "expected a value, got the end of the condition at column 21",
        "journeys/x.yaml:14:31: stages[0].touchpoints[0].branch.cases[1].then[0].branch."
        "cases[0].when: condition: expected a value, got '>' at column 15",
    ]


def test_undeclared_traits_warn_and_the_journey_still_compiles() -> None:
    warnings: list[Diagnostic] = []
    plan = compile_text(
        touchpoints(
            """\
      - update: {set: {tier: gold}, increment: {points: 5}}
      - branch:
          cases:
            - when: profile.shoe_size > 40
            - when: profile.tier == "gold" and profile.points > 100
            - when: profile.loyalty.level == 2 and profile.address.city == "Seoul"
            - when: profile.first_name == "Mina" or profile.nickname == "mina"
""",
            HEAD + "traits: [loyalty]\n",
        ),
        warnings,
    )

    assert [step.kind for step in plan.stages[0].steps] == ["update", "branch"]
    assert [d.severity for d in warnings] == ["warning", "warning"]
    assert [str(d) for d in warnings] == [
        "journeys/x.yaml:11:21: warning: stages[0].touchpoints[1].branch.cases[0].when: "
        "condition reads trait 'shoe_size', which no identify trait, update step or `traits:` "
        "entry declares",
        "journeys/x.yaml:14:21: warning: stages[0].touchpoints[1].branch.cases[3].when: "
        "condition reads trait 'nickname', which no identify trait, update step or `traits:` "
        "entry declares",
    ]


def test_warnings_are_listed_with_the_errors_when_the_journey_does_not_compile() -> None:
    found = errors(
        touchpoints(
            """\
      - branch: {cases: [{when: profile.shoe_size > 40}]}
      - goto: nowhere
"""
        )
    )
    assert found == [
        "journeys/x.yaml:7:33: warning: stages[0].touchpoints[0].branch.cases[0].when: condition "
        "reads trait 'shoe_size', which no identify trait, update step or `traits:` entry "
        "declares",
        "journeys/x.yaml:8:15: stages[0].touchpoints[1].goto: goto target 'nowhere' is neither "
        "a stage nor a step id",
    ]


def test_warnings_are_dropped_when_no_list_is_given() -> None:
    plan = compile_text(touchpoints("      - branch: {cases: [{when: profile.shoe_size > 40}]}\n"))
    assert plan.stages[0].steps[0].kind == "branch"


# --- duplicate ids -------------------------------------------------------------------------


def test_duplicate_step_ids_are_found_in_every_nested_list() -> None:
    found = errors(
        touchpoints(
            """\
      - {id: a, wait: 1d}
      - wait_for:
          event: E
          timeout: 1h
          on_event: [{id: a, wait: 1m}]
          on_timeout: [{send: {id: a, subject: s, body: b}}]
      - branch:
          cases: [{when: profile.age > 1, then: [{id: a, exit: true}]}]
          otherwise: [{id: a, exit: true}]
      - split:
          - {name: x, weight: 1, then: [{id: a, wait: 1m}]}
          - {name: y, weight: 1}
      - experiment:
          variants: [{name: x, weight: 1}, {name: y, weight: 1, then: [{id: a, wait: 1m}]}]
          control: x
          metric: {event: E, within: 1d}
"""
        )
    )
    first = "duplicate step id 'a' (first on line 7)"
    assert found == [
        f"journeys/x.yaml:11:27: stages[0].touchpoints[1].wait_for.on_event[0].id: {first}",
        f"journeys/x.yaml:12:36: stages[0].touchpoints[1].wait_for.on_timeout[0].send.id: {first}",
        f"journeys/x.yaml:14:55: stages[0].touchpoints[2].branch.cases[0].then[0].id: {first}",
        f"journeys/x.yaml:15:28: stages[0].touchpoints[2].branch.otherwise[0].id: {first}",
        f"journeys/x.yaml:17:46: stages[0].touchpoints[3].split[0].then[0].id: {first}",
        f"journeys/x.yaml:20:77: stages[0].touchpoints[4].experiment.variants[1].then[0].id: "
        f"{first}",
    ]


def test_a_step_id_may_repeat_a_stage_name_when_no_goto_uses_it() -> None:
    plan = compile_text(touchpoints("      - {id: s, wait: 1d}\n"))
    assert plan.step("s").kind == "wait"


# --- without a file ------------------------------------------------------------------------


def test_build_plan_reports_problems_by_place_without_a_file() -> None:
    spec = JourneySpec.model_validate(
        {
            "id": "x",
            "name": "X",
            "entry": {"event": "Signed Up"},
            "stages": [{"name": "s", "touchpoints": [{"wait": "1d"}, {"goto": "nowhere"}]}],
        }
    )
    with pytest.raises(JourneyError) as caught:
        build_plan(spec)
    assert [str(d) for d in caught.value.diagnostics] == [
        "<python>: stages[0].touchpoints[1].goto: goto target 'nowhere' is neither a stage nor "
        "a step id"
    ]
