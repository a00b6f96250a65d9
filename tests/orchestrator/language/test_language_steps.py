"""Every step kind and journey setting compiles into its plan fields; bad values are located."""

from __future__ import annotations

import textwrap

import pytest

from journeyman.orchestrator.language import JourneyError, compile_source
from journeyman.workflows.plan import (
    WEEKDAYS,
    BranchStep,
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
    LocalTime,
    Plan,
    PropertyTest,
    QuietHours,
    Reentry,
    Route,
    SendStep,
    SplitStep,
    TraitDate,
    UpdateStep,
    WaitForStep,
    WaitStep,
    walk,
)

SOURCE = "journeys/x.yaml"

HEAD = """\
id: x
name: X
entry: {event: Signed Up}
"""


def compile_text(text: str) -> Plan:
    return compile_source(textwrap.dedent(text).lstrip("\n"), source=SOURCE)


def errors(text: str) -> list[str]:
    """Compile and return the rendered diagnostics, failing if the text compiles."""
    with pytest.raises(JourneyError) as caught:
        compile_source(textwrap.dedent(text).lstrip("\n"), source=SOURCE)
    return [str(d) for d in caught.value.diagnostics]


def touchpoints(items: str, head: str = HEAD) -> str:
    """A journey whose one stage, ``s``, has the touchpoints ``items`` (indented by six)."""
    return head + "stages:\n  - name: s\n    touchpoints:\n" + items


def step_ids(plan: Plan) -> list[str]:
    return [step.id for stage in plan.stages for step in walk(stage.steps)]


# --- entry ---------------------------------------------------------------------------------


def test_entry_by_event_and_api_with_reentry_cap_and_holdout() -> None:
    plan = compile_text(
        """
        id: x
        name: X
        entry:
          event: Checkout Started
          where: {cart.total: {gte: 20}}
          api: true
          reentry: {concurrent: cart_id}
          cap: {total: 1000, per_day: 50}
          holdout: 10%
        stages: [{name: s, touchpoints: [{wait: 1h}]}]
        """
    )

    assert plan.entry == Entry(
        match=EventMatch(
            event="Checkout Started",
            where=[PropertyTest(path="cart.total", op="gte", value=20)],
        ),
        api=True,
        reentry=Reentry(mode="concurrent", key="cart_id"),
        cap=EntryCap(total=1000, per_day=50),
        holdout_percent=10.0,
    )


def test_entry_by_api_alone_has_no_event_and_the_defaults() -> None:
    plan = compile_text(
        "id: x\nname: X\nentry: {api: true}\nstages: [{name: s, touchpoints: [{wait: 1h}]}]"
    )

    assert plan.entry == Entry(api=True)
    assert plan.entry.match is None
    assert plan.event_names() == frozenset()


@pytest.mark.parametrize(
    ("written", "reentry"),
    [
        ("once", Reentry()),
        ("{after: 30d}", Reentry(mode="after", cooldown_seconds=30 * 86400)),
        ("{after: 3600}", Reentry(mode="after", cooldown_seconds=3600)),
        ("{concurrent: cart.id}", Reentry(mode="concurrent", key="cart.id")),
    ],
)
def test_reentry_modes(written: str, reentry: Reentry) -> None:
    plan = compile_text(
        touchpoints("      - wait: 1h\n", HEAD.replace("}", f", reentry: {written}}}"))
    )

    assert plan.entry.reentry == reentry


@pytest.mark.parametrize(
    ("written", "percent"), [("10%", 10.0), ("2.5%", 2.5), ("2.5", 2.5), ("0", 0.0), ("99", 99.0)]
)
def test_holdout_is_a_percentage_with_or_without_the_sign(written: str, percent: float) -> None:
    plan = compile_text(
        touchpoints("      - wait: 1h\n", HEAD.replace("}", f", holdout: {written}}}"))
    )

    assert plan.entry.holdout_percent == percent


# --- journey-level settings ----------------------------------------------------------------


def test_journey_goal_exits_and_delivery_settings() -> None:
    plan = compile_text(
        """
        id: x
        name: X
        entry: {event: Checkout Started}
        goal: {event: Order Completed, where: {total: {gt: 0}}, within: 7d}
        exit:
          - {event: Unsubscribed}
          - {event: Account Deleted, where: {hard: true}}
        timezone: Europe/Paris
        quiet_hours: {start: "21:00", end: "08:00", action: skip}
        frequency_caps:
          - {channel: email, limit: 3, per: 1w}
          - {channel: email, limit: 1, per: 1d}
        throttle: 600
        priority: 1
        traits: [loyalty.tier, points]
        stages: [{name: s, touchpoints: [{wait: 1h}]}]
        """
    )

    assert plan.goal == Goal(
        match=EventMatch(
            event="Order Completed", where=[PropertyTest(path="total", op="gt", value=0)]
        ),
        within_seconds=7 * 86400,
    )
    assert plan.exits == [
        EventMatch(event="Unsubscribed"),
        EventMatch(event="Account Deleted", where=[PropertyTest(path="hard", value=True)]),
    ]
    assert plan.delivery == Delivery(
        timezone="Europe/Paris",
        quiet_hours=QuietHours(start="21:00", end="08:00", action="skip"),
        frequency_caps=[
            FrequencyCap(channel="email", limit=3, window_seconds=7 * 86400),
            FrequencyCap(channel="email", limit=1, window_seconds=86400),
        ],
        throttle_per_minute=600,
        priority=1,
    )


def test_delivery_defaults_and_quiet_hours_defer() -> None:
    plan = compile_text(touchpoints("      - wait: 1h\n"))
    assert plan.delivery == Delivery()
    assert plan.delivery.priority == 3
    assert (plan.goal, plan.exits) == (None, [])

    deferred = compile_text(
        touchpoints("      - wait: 1h\n", HEAD + 'quiet_hours: {start: "22:30", end: "07:00"}\n')
    )
    assert deferred.delivery.quiet_hours == QuietHours(start="22:30", end="07:00", action="defer")


def test_event_names_include_entry_goals_exits_and_wait_for_events() -> None:
    plan = compile_text(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        goal: {event: Order Completed, within: 30d}
        exit: [{event: Unsubscribed}]
        stages:
          - name: s
            goal: {event: Product Viewed}
            touchpoints:
              - branch:
                  cases:
                    - when: profile.vip
                      then:
                        - wait_for:
                            event: Coupon Used
                            timeout: 1d
                            on_timeout: [{wait_for: {event: Cart Viewed, timeout: 1h}}]
        """
    )

    assert plan.event_names() == {
        "Signed Up",
        "Order Completed",
        "Unsubscribed",
        "Product Viewed",
        "Coupon Used",
        "Cart Viewed",
    }


# --- content -------------------------------------------------------------------------------


def test_a_template_send_copies_the_content_and_locales_and_keeps_the_name() -> None:
    plan = compile_text(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        templates:
          welcome:
            subject: "Welcome, {{ profile.first_name | default('there') }}"
            body: Hello
            html: <p>Hello</p>
            locales:
              fr: {subject: Bienvenue, body: Bonjour}
              pt-br: {subject: Bem-vindo, body: Olá, html: <p>Olá</p>}
        stages:
          - name: s
            touchpoints:
              - send: {template: welcome}
              - id: again
                send: {template: welcome}
        """
    )

    first, again = plan.stages[0].steps
    assert first == SendStep(
        id="s.1",
        subject="Welcome, {{ profile.first_name | default('there') }}",
        body="Hello",
        html="<p>Hello</p>",
        locales={
            "fr": Content(subject="Bienvenue", body="Bonjour"),
            "pt-br": Content(subject="Bem-vindo", body="Olá", html="<p>Olá</p>"),
        },
        template="welcome",
    )
    assert again == first.model_copy(update={"id": "again"})
    assert first.content_for("pt_BR").subject == "Bem-vindo"
    assert first.content_for("fr-CA").subject == "Bienvenue"
    assert first.content_for("de").subject.startswith("Welcome")


def test_an_inline_send_with_locales() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - send:
          id: hello
          channel: email
          subject: Hi
          body: Hello
          locales:
            ko: {subject: 안녕하세요, body: 반갑습니다}
"""
        )
    )

    assert plan.stages[0].steps == [
        SendStep(
            id="hello",
            subject="Hi",
            body="Hello",
            locales={"ko": Content(subject="안녕하세요", body="반갑습니다")},
        )
    ]


# --- waits ---------------------------------------------------------------------------------


def test_wait_for_a_duration_a_time_of_day_or_a_date_in_a_trait() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - wait: 90m
      - wait: {until: "09:00"}
      - wait: {until: "18:30", weekdays: [mon, fri]}
      - wait: {until: 07:15}
      - wait: {until_date: birthday}
      - wait: {until_date: subscription.renews_on, offset: -7d, at: "10:00", yearly: true}
      - wait: {until_date: renewal, offset: "-1d12h"}
      - wait: {until_date: renewal, offset: 3600}
      - wait: {until_date: renewal, offset: -3600}
"""
        )
    )

    assert plan.stages[0].steps == [
        WaitStep(id="s.1", seconds=5400),
        WaitStep(id="s.2", until_time=LocalTime(at="09:00", weekdays=list(WEEKDAYS))),
        WaitStep(id="s.3", until_time=LocalTime(at="18:30", weekdays=["mon", "fri"])),
        # A leading zero keeps YAML from reading 07:15 as a number: it stays text.
        WaitStep(id="s.4", until_time=LocalTime(at="07:15")),
        WaitStep(id="s.5", until_date=TraitDate(trait="birthday")),
        WaitStep(
            id="s.6",
            until_date=TraitDate(
                trait="subscription.renews_on", offset_seconds=-7 * 86400, at="10:00", yearly=True
            ),
        ),
        WaitStep(id="s.7", until_date=TraitDate(trait="renewal", offset_seconds=-129600)),
        WaitStep(id="s.8", until_date=TraitDate(trait="renewal", offset_seconds=3600)),
        WaitStep(id="s.9", until_date=TraitDate(trait="renewal", offset_seconds=-3600)),
    ]


def test_wait_for_an_event_with_lookback_and_both_outcomes() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - wait: 1h
      - wait_for:
          event: Payment Info Entered
          where: {method: card, amount: {gte: 10, lt: 500}}
          timeout: 1d
          lookback: 2h
          on_event:
            - update: {tags: [paid]}
          on_timeout:
            - send: {subject: "Still there?", body: We kept your cart.}
            - wait_for: {event: Cart Viewed, timeout: 1h, on_event: [{exit: came back}]}
"""
        )
    )

    step = plan.step("s.2")
    assert isinstance(step, WaitForStep)
    assert step.match == EventMatch(
        event="Payment Info Entered",
        where=[
            PropertyTest(path="amount", op="gte", value=10),
            PropertyTest(path="amount", op="lt", value=500),
            PropertyTest(path="method", value="card"),
        ],
    )
    assert (step.timeout_seconds, step.lookback_seconds) == (86400, 7200)
    assert step_ids(plan) == [
        "s.1",
        "s.2",
        "s.2.event.1",
        "s.2.timeout.1",
        "s.2.timeout.2",
        "s.2.timeout.2.event.1",
    ]
    assert plan.step("s.2.timeout.2.event.1") == ExitStep(
        id="s.2.timeout.2.event.1", reason="came back"
    )


# --- choices -------------------------------------------------------------------------------


def test_branch_cases_and_otherwise_get_their_own_ids() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - id: vip
        branch:
          cases:
            - when: profile.tier == "gold"
              then: [{send: {subject: Gold, body: Thanks}}, {wait: 1d}]
            - when: 'count("Order Completed", within: 30d) > 2'
              then: [{update: {tags: [regular]}}]
            - when: profile.age > 60
          otherwise: [{exit: true}]
      - branch: {cases: [{when: profile.age > 60, then: [{wait: 1m}]}]}
"""
        )
    )

    vip = plan.step("vip")
    assert isinstance(vip, BranchStep)
    assert [case.when for case in vip.cases] == [
        'profile.tier == "gold"',
        'count("Order Completed", within: 30d) > 2',
        "profile.age > 60",
    ]
    assert vip.cases[2].steps == []
    assert vip.otherwise == [ExitStep(id="vip.otherwise.1")]
    assert step_ids(plan) == [
        "vip",
        "vip.case1.1",
        "vip.case1.2",
        "vip.case2.1",
        "vip.otherwise.1",
        "s.2",
        "s.2.case1.1",
    ]


def test_split_paths_keep_their_weights_and_name_their_steps() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - wait: 1m
      - split:
          - {name: email-first, weight: 3, then: [{send: {subject: A, body: a}}]}
          - {name: wait-first, weight: 1, then: [{wait: 1d}, {send: {subject: B, body: b}}]}
          - {name: nothing, weight: 1}
"""
        )
    )

    assert plan.step("s.2") == SplitStep(
        id="s.2",
        paths=[
            Route(
                name="email-first",
                weight=3,
                steps=[SendStep(id="s.2.email-first.1", subject="A", body="a")],
            ),
            Route(
                name="wait-first",
                weight=1,
                steps=[
                    WaitStep(id="s.2.wait-first.1", seconds=86400),
                    SendStep(id="s.2.wait-first.2", subject="B", body="b"),
                ],
            ),
            Route(name="nothing", weight=1),
        ],
    )


def test_experiment_variants_control_metric_and_decision() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - id: subject-test
        experiment:
          variants:
            - {name: control, weight: 1, then: [{send: {subject: Hello, body: b}}]}
            - {name: urgent, weight: 2, then: [{send: {subject: Last chance, body: b}}]}
          control: control
          metric: {event: Order Completed, where: {total: {gt: 0}}, within: 3d}
          decide: {after: 14d, min_per_variant: 200, confidence: 0.99}
      - experiment:
          variants: [{name: a, weight: 1}, {name: b, weight: 1}]
          control: b
          metric: {event: Order Completed, within: 1d}
          decide: {after: 7d}
      - experiment:
          variants: [{name: a, weight: 1}, {name: b, weight: 1}]
          control: a
          metric: {event: Order Completed, within: 1d}
"""
        )
    )

    test = plan.step("subject-test")
    assert isinstance(test, ExperimentStep)
    assert [(v.name, v.weight, [s.id for s in v.steps]) for v in test.variants] == [
        ("control", 1, ["subject-test.control.1"]),
        ("urgent", 2, ["subject-test.urgent.1"]),
    ]
    assert test.control == "control"
    assert test.metric == EventMatch(
        event="Order Completed", where=[PropertyTest(path="total", op="gt", value=0)]
    )
    assert test.window_seconds == 3 * 86400
    assert test.decide == Decision(after_seconds=14 * 86400, min_per_variant=200, confidence=0.99)
    defaults = plan.step("s.2")
    assert isinstance(defaults, ExperimentStep)
    assert (defaults.control, defaults.decide) == ("b", Decision(after_seconds=7 * 86400))
    undecided = plan.step("s.3")
    assert isinstance(undecided, ExperimentStep)
    assert undecided.decide is None


# --- update, goto, exit --------------------------------------------------------------------


def test_update_sets_increments_and_tags() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - update:
          set: {loyalty.tier: gold, vip: true, score: 9.5, nickname: null}
          increment: {points: 10, balance: -2.5}
          tags: [vip, welcomed]
      - update: {tags: [seen]}
"""
        )
    )

    assert plan.stages[0].steps == [
        UpdateStep(
            id="s.1",
            set={"loyalty.tier": "gold", "vip": True, "score": 9.5, "nickname": None},
            increment={"points": 10, "balance": -2.5},
            tags=["vip", "welcomed"],
        ),
        UpdateStep(id="s.2", tags=["seen"]),
    ]


def test_goto_a_stage_or_a_step_and_exit_with_or_without_a_reason() -> None:
    plan = compile_text(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        stages:
          - name: awareness
            touchpoints:
              - id: nudge
                wait: 1d
              - branch:
                  cases:
                    - when: profile.vip
                      then: [{goto: loyalty}]
                  otherwise: [{goto: nudge}]
          - name: loyalty
            touchpoints:
              - id: leave
                exit: true
          - name: lost
            touchpoints: [{exit: went quiet}]
        """
    )

    assert plan.step("awareness.2.case1.1") == GotoStep(
        id="awareness.2.case1.1", target="loyalty", stage=True
    )
    assert plan.step("awareness.2.otherwise.1") == GotoStep(
        id="awareness.2.otherwise.1", target="nudge", stage=False
    )
    assert plan.step("leave") == ExitStep(id="leave", reason=None)
    assert plan.step("lost.1") == ExitStep(id="lost.1", reason="went quiet")


def test_every_kind_takes_an_item_level_id() -> None:
    plan = compile_text(
        touchpoints(
            """\
      - {id: a, send: {subject: s, body: b}}
      - {id: b, wait: 1d}
      - {id: c, wait_for: {event: E, timeout: 1h}}
      - {id: d, branch: {cases: [{when: profile.age > 60, then: [{id: i, exit: true}]}]}}
      - {id: e, split: [{name: x, weight: 1}, {name: y, weight: 1}]}
      - id: f
        experiment:
          variants: [{name: x, weight: 1}, {name: y, weight: 1}]
          control: x
          metric: {event: E, within: 1d}
      - {id: g, update: {tags: [t]}}
      - {id: h, goto: b}
"""
        )
    )

    kinds = [(step.id, step.kind) for step in plan.stages[0].steps]
    assert kinds == [
        ("a", "send"),
        ("b", "wait"),
        ("c", "wait_for"),
        ("d", "branch"),
        ("e", "split"),
        ("f", "experiment"),
        ("g", "update"),
        ("h", "goto"),
    ]
    assert plan.step("i") == ExitStep(id="i")


# --- versions ------------------------------------------------------------------------------

ORDERED = """\
id: x
name: X
entry: {event: Checkout Started, api: true, reentry: {after: 1d}, cap: {total: 9}, holdout: 5%}
goal: {event: Order Completed, within: 7d, where: {total: {gt: 0, lte: 900}}}
exit: [{event: Unsubscribed}]
timezone: Asia/Seoul
quiet_hours: {start: "21:00", end: "08:00"}
frequency_caps: [{channel: email, limit: 2, per: 1d}]
templates:
  t: {subject: S, body: B, locales: {fr: {subject: F, body: G}, ko: {subject: K, body: L}}}
stages:
  - name: s
    touchpoints:
      - send: {template: t}
      - experiment:
          variants: [{name: a, weight: 1}, {name: b, weight: 2}]
          control: a
          metric: {event: Order Completed, within: 1d}
          decide: {after: 2d, confidence: 0.9}
      - update: {set: {a: 1, b: 2}, increment: {c: 1}}
"""

REORDERED = """\
templates:
  t:
    locales:
      ko: {body: L, subject: K}
      fr: {body: G, subject: F}
    body: B
    subject: S
frequency_caps: [{per: 86400, limit: 2, channel: email}]
stages:
  - touchpoints:
      - send: {template: t}
      - experiment:
          decide: {confidence: 0.9, after: 48h}
          metric: {within: 24h, event: Order Completed}
          control: a
          variants: [{weight: 1, name: a}, {then: [], weight: 2, name: b}]
      - update: {increment: {c: 1}, set: {b: 2, a: 1}}
    name: s
quiet_hours: {end: "08:00", action: defer, start: "21:00"}
timezone: Asia/Seoul
exit: [{where: {}, event: Unsubscribed}]
goal: {where: {total: {lte: 900, gt: 0}}, within: 1w, event: Order Completed}
entry: {holdout: 5, cap: {total: 9}, reentry: {after: 24h}, api: true, event: Checkout Started}
priority: 3
name: X
id: x
"""


def test_reordering_keys_and_spelling_defaults_keep_the_version() -> None:
    assert compile_source(REORDERED).version == compile_source(ORDERED).version


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("holdout: 5%", "holdout: 6%"),
        ("reentry: {after: 1d}", "reentry: once"),
        ("api: true", "api: false"),
        ("timezone: Asia/Seoul", "timezone: Asia/Tokyo"),
        ("limit: 2", "limit: 3"),
        ("ko: {subject: K", "ko: {subject: KK"),
        ("weight: 2", "weight: 3"),
        ("confidence: 0.9", "confidence: 0.95"),
        ("lte: 900", "lt: 900"),
        ("{a: 1, b: 2}", "{a: 1, b: 3}"),
    ],
)
def test_changing_a_setting_changes_the_version(before: str, after: str) -> None:
    assert before in ORDERED
    changed = ORDERED.replace(before, after, 1)

    assert compile_source(changed).version != compile_source(ORDERED).version


def test_a_yaml_set_is_refused_because_its_order_would_change_the_version() -> None:
    # PyYAML builds a Python set, whose order changes with each process's hash seed.
    assert errors(touchpoints("      - update: {tags: !!set {b, a}}\n")) == [
        "journeys/x.yaml:7:24: YAML syntax error: a set (!!set) has no order; use a list"
    ]


# --- bad values ----------------------------------------------------------------------------


def test_bad_times_of_day_and_weekdays() -> None:
    found = errors(
        touchpoints(
            """\
      - wait: {until: 9am}
      - wait: {until: 9:00}
      - wait: {until: "24:00"}
      - wait: {until: "09:00", weekdays: [mon, someday]}
      - wait: {until_date: birthday, at: 10:30}
""",
            HEAD + "quiet_hours: {start: 21:00, end: 8}\n",
        )
    )
    assert found == [
        'journeys/x.yaml:4:22: quiet_hours.start: a time of day is "HH:MM" on a 24-hour clock, '
        'like "09:00"; got 1260, which is how YAML reads an unquoted 21:00; quote it: "21:00"',
        'journeys/x.yaml:4:34: quiet_hours.end: a time of day is "HH:MM" on a 24-hour clock, '
        'like "09:00"; got 8',
        'journeys/x.yaml:8:23: stages[0].touchpoints[0].wait.until: a time of day is "HH:MM" on '
        "a 24-hour clock, like \"09:00\"; got '9am'",
        'journeys/x.yaml:9:23: stages[0].touchpoints[1].wait.until: a time of day is "HH:MM" on '
        'a 24-hour clock, like "09:00"; got 540, which is how YAML reads an unquoted 9:00; quote '
        'it: "09:00"',
        'journeys/x.yaml:10:23: stages[0].touchpoints[2].wait.until: a time of day is "HH:MM" on '
        "a 24-hour clock, like \"09:00\"; got '24:00'",
        "journeys/x.yaml:11:48: stages[0].touchpoints[3].wait.weekdays[1]: expected 'mon', "
        "'tue', 'wed', 'thu', 'fri', 'sat' or 'sun', got 'someday'",
        'journeys/x.yaml:12:42: stages[0].touchpoints[4].wait.at: a time of day is "HH:MM" on '
        'a 24-hour clock, like "09:00"; got 630, which is how YAML reads an unquoted 10:30; '
        'quote it: "10:30"',
    ]


def test_timed_waits_take_one_target_and_its_own_settings() -> None:
    found = errors(
        touchpoints(
            """\
      - wait: {until: "09:00", until_date: birthday}
      - wait: {weekdays: [mon]}
      - wait: {until: "09:00", yearly: true}
      - wait: {until_date: birthday, weekdays: [mon]}
      - wait: {until_date: birthday, offset: "--7d"}
      - wait: {until_date: birthday, offset: 7 days}
      - wait: {until_date: birthday, yearly: yes please}
      - wait: {until_date: "birthday date"}
"""
        )
    )
    assert found == [
        "journeys/x.yaml:7:15: stages[0].touchpoints[0].wait: a timed wait has either until: "
        '"HH:MM" or until_date: TRAIT',
        "journeys/x.yaml:8:15: stages[0].touchpoints[1].wait: a timed wait has either until: "
        '"HH:MM" or until_date: TRAIT',
        "journeys/x.yaml:9:15: stages[0].touchpoints[2].wait: offset, at and yearly go with "
        "until_date",
        "journeys/x.yaml:10:15: stages[0].touchpoints[3].wait: weekdays go with until",
        "journeys/x.yaml:11:46: stages[0].touchpoints[4].wait.offset: a duration is whole "
        "seconds or text like 90s, 15m, 2h, 3d, 1w or 1d12h, got '--7d' (an offset may start "
        "with '-')",
        "journeys/x.yaml:12:46: stages[0].touchpoints[5].wait.offset: a duration is whole "
        "seconds or text like 90s, 15m, 2h, 3d, 1w or 1d12h, got '7 days' (an offset may start "
        "with '-')",
        "journeys/x.yaml:13:46: stages[0].touchpoints[6].wait.yearly: expected true or false, "
        "got 'yes please'",
        "journeys/x.yaml:14:28: stages[0].touchpoints[7].wait.until_date: a trait is a name or "
        "dotted path like address.city; got 'birthday date'",
    ]


def test_bad_sends() -> None:
    found = errors(
        touchpoints(
            """\
      - send: {template: welcome, subject: Hi}
      - send: {template: welcome, locales: {fr: {subject: a, body: b}}}
      - send: {subject: Hi}
      - send: {subject: a, body: b, locales: {pt_br: {subject: a, body: b}}}
      - send: {subject: a, body: b, locales: {FR: {subject: a, body: b}}}
      - send: {subject: a, body: b, locales: {fr: {subject: a}}}
""",
            HEAD + "templates: {welcome: {subject: a, body: b}}\n",
        )
    )
    assert found == [
        "journeys/x.yaml:8:15: stages[0].touchpoints[0].send: use either template or "
        "subject/body/html/locales, not both",
        "journeys/x.yaml:9:15: stages[0].touchpoints[1].send: use either template or "
        "subject/body/html/locales, not both",
        "journeys/x.yaml:10:15: stages[0].touchpoints[2].send: a send needs a subject and a "
        "body, or a template",
        "journeys/x.yaml:11:47: stages[0].touchpoints[3].send.locales.pt_br: a locale is a "
        "lowercase language tag like fr, fr-ca or pt-br; got 'pt_br'",
        "journeys/x.yaml:12:47: stages[0].touchpoints[4].send.locales.FR: a locale is a "
        "lowercase language tag like fr, fr-ca or pt-br; got 'FR'",
        "journeys/x.yaml:13:51: stages[0].touchpoints[5].send.locales.fr: missing required key "
        "'body'",
    ]


def test_bad_splits_and_experiments() -> None:
    found = errors(
        touchpoints(
            """\
      - split: [{name: only, weight: 1}]
      - split: [{name: a, weight: 0}, {name: b, weight: 1.5}]
      - split: [{name: a, weight: 1}, {name: a, weight: 2}]
      - experiment:
          variants: [{name: a, weight: 1}, {name: b, weight: 1}]
          control: c
          metric: {event: Order Completed, within: 1d}
      - experiment:
          variants: [{name: a, weight: 1}, {name: b, weight: 1}]
          control: a
          metric: {event: Order Completed}
          decide: {after: 1d, min_per_variant: 0, confidence: 0.5}
      - experiment:
          variants: [{name: a, weight: 1}]
          control: a
          metric: {event: Order Completed, within: 1d}
"""
        )
    )
    assert found == [
        "journeys/x.yaml:7:16: stages[0].touchpoints[0].split: needs at least 2 items, got 1",
        "journeys/x.yaml:8:35: stages[0].touchpoints[1].split[0].weight: must be more than 0, "
        "got 0",
        "journeys/x.yaml:8:57: stages[0].touchpoints[1].split[1].weight: expected a whole "
        "number, got 1.5",
        "journeys/x.yaml:9:16: stages[0].touchpoints[2].split: path name 'a' is used twice; "
        "each path needs its own name",
        "journeys/x.yaml:11:11: stages[0].touchpoints[3].experiment: control 'c' is not one of "
        "the variants (a, b)",
        "journeys/x.yaml:17:19: stages[0].touchpoints[4].experiment.metric: missing required "
        "key 'within'",
        "journeys/x.yaml:18:48: stages[0].touchpoints[4].experiment.decide.min_per_variant: "
        "must be more than 0, got 0",
        "journeys/x.yaml:18:63: stages[0].touchpoints[4].experiment.decide.confidence: must be "
        "more than 0.5, got 0.5",
        "journeys/x.yaml:20:21: stages[0].touchpoints[5].experiment.variants: needs at least 2 "
        "items, got 1",
    ]


def test_bad_updates_gotos_and_exits() -> None:
    found = errors(
        touchpoints(
            """\
      - update: {}
      - update: {set: {tiers: [gold, silver]}, increment: {points: ten}}
      - update: {set: {since: 2024-01-01}, tags: [Bad Tag]}
      - goto: Somewhere Else
      - exit: false
      - exit: ""
"""
        )
    )
    assert found == [
        "journeys/x.yaml:7:17: stages[0].touchpoints[0].update: an update sets, increments or "
        "tags something",
        "journeys/x.yaml:8:31: stages[0].touchpoints[1].update.set.tiers: a trait value is a "
        "string, number, boolean or null; got a list or mapping",
        "journeys/x.yaml:8:68: stages[0].touchpoints[1].update.increment.points: an increment is "
        "a number, like 1 or -2.5; got 'ten'",
        "journeys/x.yaml:9:31: stages[0].touchpoints[2].update.set.since: a trait value must be "
        "a string, number, boolean or null; quote 2024-01-01 to use it as text",
        "journeys/x.yaml:9:51: stages[0].touchpoints[2].update.tags[0]: use lowercase letters, "
        "digits, '_' or '-' (at most 64 characters); got 'Bad Tag'",
        "journeys/x.yaml:10:15: stages[0].touchpoints[3].goto: use lowercase letters, digits, "
        "'_' or '-' (at most 64 characters); got 'Somewhere Else'",
        "journeys/x.yaml:11:9: stages[0].touchpoints[4]: exit: true ends the run here; remove "
        "the step to keep going",
        "journeys/x.yaml:12:15: stages[0].touchpoints[5].exit: exit is true, or the reason as text",
    ]


def test_bad_entry_settings() -> None:
    found = errors(
        """
        id: x
        name: X
        entry:
          event: Signed Up
          reentry: sometimes
          cap: {total: 0, per_day: yes}
          holdout: 150%
        stages: [{name: s, touchpoints: [{wait: 1h}]}]
        """
    )
    assert found == [
        "journeys/x.yaml:5:12: entry.reentry: reentry is 'once', {after: DURATION} (again after "
        "a cool-down) or {concurrent: PROPERTY} (one run per value of an entry event property)",
        "journeys/x.yaml:6:16: entry.cap.total: must be more than 0, got 0",
        "journeys/x.yaml:6:28: entry.cap.per_day: expected a whole number, got true",
        "journeys/x.yaml:7:12: entry.holdout: a share is a percentage from 0 to below 100, like "
        "10% or 2.5; got '150%'",
    ]


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ("{where: {plan: pro}}", "3:8: entry: entry needs an event, a segment, api: true "
         "(customers entered by API call), or a schedule"),
        ("{api: true, where: {plan: pro}}", "3:8: entry: where filters the entry event; add event"),
        ("{event: A, api: 1}", "3:24: entry.api: expected true or false, got 1"),
        ("{event: A, holdout: 100}", "3:28: entry.holdout: a share is a percentage from 0 to "
         "below 100, like 10% or 2.5; got 100"),
        ("{event: A, holdout: -1%}", "3:28: entry.holdout: a share is a percentage from 0 to "
         "below 100, like 10% or 2.5; got '-1%'"),
        ("{event: A, reentry: {after: 0}}", "3:28: entry.reentry: must be longer than zero"),
        ("{event: A, reentry: {concurrent: a..b}}", "3:28: entry.reentry: a property path is "
         "names joined by dots, without spaces; got 'a..b'"),
        ("{event: A, reentry: {after: 1d, concurrent: cart_id}}", "3:28: entry.reentry: reentry "
         "is 'once', {after: DURATION} (again after a cool-down) or {concurrent: PROPERTY} (one "
         "run per value of an entry event property)"),
    ],
)  # fmt: skip
def test_one_bad_entry_value(entry: str, message: str) -> None:
    assert errors(f"id: x\nname: X\nentry: {entry}\nstages: [{{name: s, goal: {{event: B}}}}]") == [
        f"journeys/x.yaml:{message}"
    ]


def test_bad_journey_settings() -> None:
    found = errors(
        """
        id: x
        name: X
        entry: {event: A}
        goal: {event: B}
        exit: {event: C}
        timezone: Europe/Pariss
        quiet_hours: {start: "21:00", end: "08:00", action: drop}
        frequency_caps: [{channel: fax, limit: 1, per: 1d}, {channel: email, limit: 0, per: 0}]
        throttle: fast
        priority: 6
        traits: [loyalty tier]
        templates: {Welcome: {subject: a, body: b}}
        stages: [{name: s, touchpoints: [{wait: 1h}]}]
        """
    )
    assert found == [
        "journeys/x.yaml:4:7: goal: missing required key 'within'",
        "journeys/x.yaml:5:7: exit: expected a list, got a mapping",
        "journeys/x.yaml:6:11: timezone: unknown time zone 'Europe/Pariss'; use an IANA name "
        "such as Europe/Paris",
        "journeys/x.yaml:7:53: quiet_hours.action: expected 'defer' or 'skip', got 'drop'",
        "journeys/x.yaml:8:28: frequency_caps[0].channel: unknown channel 'fax'; available: "
        "email, sms, push, webhook, in_app",
        "journeys/x.yaml:8:77: frequency_caps[1].limit: must be more than 0, got 0",
        "journeys/x.yaml:8:85: frequency_caps[1].per: must be longer than zero",
        "journeys/x.yaml:9:11: throttle: expected a whole number, got 'fast'",
        "journeys/x.yaml:10:11: priority: must be at most 5, got 6",
        "journeys/x.yaml:11:10: traits[0]: a trait is a name or dotted path like address.city; "
        "got 'loyalty tier'",
        "journeys/x.yaml:12:13: templates.Welcome: use lowercase letters, digits, '_' or '-' "
        "(at most 64 characters); got 'Welcome'",
    ]


def test_time_zones_are_exact_iana_names() -> None:
    plan = compile_text(touchpoints("      - wait: 1h\n", HEAD + "timezone: America/Sao_Paulo\n"))
    assert plan.delivery.timezone == "America/Sao_Paulo"

    for zone in ("europe/paris", "../../etc/passwd", "Mars/Olympus_Mons"):
        assert errors(touchpoints("      - wait: 1h\n", HEAD + f"timezone: {zone}\n")) == [
            f"journeys/x.yaml:4:11: timezone: unknown time zone '{zone}'; use an IANA name "
            "such as Europe/Paris"
        ]


def test_a_where_without_any_operator_is_an_error() -> None:
    assert errors(
        touchpoints("      - wait_for: {event: E, timeout: 1h, where: {total: {}}}\n")
    ) == [
        "journeys/x.yaml:7:58: stages[0].touchpoints[0].wait_for.where.total: a condition is a "
        "value or {operator: value} pairs, e.g. {gte: 10, lt: 20}"
    ]
