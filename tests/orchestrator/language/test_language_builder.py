"""Journeys built in Python: the same plans as files, dumped back to files, checked the same."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from journeyman.orchestrator.language import (
    Diagnostic,
    JourneyError,
    build_plan,
    compile_file,
    compile_source,
)
from journeyman.orchestrator.language.builder import (
    branch,
    compile_python,
    content,
    decide,
    dump_yaml,
    entry,
    event,
    exit_,
    experiment,
    goal,
    goto,
    journey,
    metric,
    path,
    send,
    split,
    stage,
    template,
    update,
    wait,
    wait_for,
)
from journeyman.orchestrator.language.folders import journey_files
from journeyman.orchestrator.language.spec import (
    CapSpec,
    DefaultsSpec,
    JourneySpec,
    QuietHoursSpec,
)
from journeyman.workflows.plan import Scalar

REPO = Path(__file__).resolve().parents[3]
JOURNEYS = journey_files(REPO / "journeys")  # configuration files are not journeys
HI = "Hi {{ profile.first_name | default('there') }},\n\n"
CLEAR_COUPON = update(set={"cart_coupon": None, "cart_coupon_percent": None})


def abandoned_cart() -> JourneySpec:
    """journeys/abandoned_cart.yaml, written in Python."""
    return journey(
        "abandoned_cart",
        "Abandoned cart recovery",
        entry=entry(
            "Checkout Started",
            where={"cart.total": {"gte": 20}},
            reentry={"concurrent": "cart.id"},
        ),
        goal=goal("Order Completed", within="3d"),
        exit=["Unsubscribed"],
        traits=["cart_coupon", "cart_coupon_percent"],
        defaults=DefaultsSpec(max_dwell="7d", on_max_dwell="exit"),
        stages=[
            stage(
                "consideration",
                wait("30m"),
                send(
                    "Your cart is saved, {{ profile.first_name | default('there') }}",
                    HI + "Everything you picked is still in your cart, whenever you are ready."
                    " Questions about\nshades, skin types or shipping? Reply and a beauty"
                    " adviser will answer.\n",
                    id="cart-reminder",
                ),
                wait("23h30m"),
                branch(
                    [
                        (
                            "event.cart.total >= 100",
                            [update(set={"cart_coupon": "CART15", "cart_coupon_percent": 15})],
                        )
                    ],
                    otherwise=[update(set={"cart_coupon": "CART10", "cart_coupon_percent": 10})],
                    id="discount",
                ),
                send(
                    "{{ profile.cart_coupon_percent | default(10) }}% off your cart, for 48 hours",
                    HI + "Your cart is waiting, and for the next 48 hours it is\n"
                    "{{ profile.cart_coupon_percent | default(10) }}% cheaper: use the code\n"
                    "{{ profile.cart_coupon | default('in your account') }} at checkout.\n",
                    html="<p>Hi {{ profile.first_name | default('there') }},</p>\n"
                    "<p>Your cart is waiting, and for the next 48 hours it is\n"
                    "{{ profile.cart_coupon_percent | default(10) }}% cheaper.</p>\n"
                    "<p>Your code:\n"
                    "<strong>{{ profile.cart_coupon | default('in your account') }}</strong></p>\n",
                    id="discount-offer",
                ),
                wait("46h"),
                send(
                    "Two hours left on your discount",
                    HI + "Your code {{ profile.cart_coupon | default('') }} expires in two hours."
                    " After that your\ncart stays saved, at the usual price.\n",
                    id="last-chance",
                ),
                wait("2h"),
                CLEAR_COUPON,
                exit_("discount expired without an order"),
                goal="Payment Info Entered",
            ),
            stage(
                "purchase",
                wait("2h"),
                send(
                    "One click left",
                    HI + "Your order is ready to place. Complete it before the items sell out.\n",
                    id="one-click-left",
                ),
                wait("1d"),
                branch(
                    [
                        (
                            "profile.cart_coupon is not null",
                            [
                                send(
                                    "Trouble paying? Your discount still applies",
                                    HI + "If the payment did not go through, reply to this email"
                                    " and we will help.\nYour code"
                                    " {{ profile.cart_coupon | default('') }} still works.\n",
                                    id="payment-help",
                                )
                            ],
                        )
                    ],
                    id="coupon-still-valid",
                ),
                wait("20h"),
                CLEAR_COUPON,
                goal="Order Completed",
                max_dwell="2d",
            ),
            stage(
                "loyalty",
                CLEAR_COUPON,
                send(
                    "Thank you for your order",
                    "Thanks, {{ profile.first_name | default('there') }}. Members earn points on"
                    " every\norder: here is what yours are worth.\n",
                    html="<p>Thanks, {{ profile.first_name | default('there') }}.</p>\n"
                    "<p>Members earn points on every order: here is what yours are worth.</p>\n",
                    id="thank-you",
                ),
            ),
        ],
    )


def test_the_abandoned_cart_in_python_is_the_file() -> None:
    expected = compile_file(REPO / "journeys" / "abandoned_cart.yaml").version
    spec = abandoned_cart()
    assert build_plan(spec).version == expected
    assert compile_python(spec).version == expected
    assert compile_source(dump_yaml(spec)).version == expected


# Every helper once, against the same journey written as a file.
EVERYTHING_YAML = """\
id: everything
name: Every helper
entry:
  event: Checkout Started
  where: {cart.total: {gte: 20, lt: 500}, coupon: {exists: false}, plan: pro}
  api: true
  reentry: {after: 30d}
  cap: {per_day: 500}
  holdout: 10%
goal: {event: Order Completed, within: 1w}
exit: [{event: Unsubscribed}, {event: Account Deleted, where: {reason: {one_of: [gdpr, fraud]}}}]
timezone: Europe/Paris
quiet_hours: {start: "21:00", end: "08:00"}
traits: [loyalty.tier]
templates:
  reminder:
    subject: Your cart is waiting
    body: Everything you picked is still there.
    locales:
      fr: {subject: Votre panier vous attend, body: Tout est encore là.}
stages:
  - name: browse
    goal: {event: Product Viewed}
    max_dwell: 14d
    on_max_dwell: continue
    touchpoints:
      - send: {template: reminder}
      - wait: {until: "09:00", weekdays: [mon, tue, wed, thu, fri]}
      - id: paid
        wait_for:
          event: Payment Info Entered
          where: {method: card}
          timeout: 1d
          lookback: 2h
          on_event: [{update: {tags: [paid]}}]
          on_timeout: [{send: {subject: "Questions?", body: "Reply to this email."}}]
  - name: buy
    touchpoints:
      - wait: {until_date: birthday, offset: -7d, at: "10:00", yearly: true}
      - id: by-tier
        branch:
          cases:
            - when: profile.loyalty.tier == "gold"
              then: [{send: {id: gift, subject: A gift for you, body: "..."}}]
          otherwise: [{update: {set: {loyalty.tier: silver}, increment: {points: 10}}}]
      - split:
          - {name: email-first, weight: 3, then: [{wait: 1d}]}
          - {name: wait-first, weight: 1}
      - id: subject-test
        experiment:
          variants:
            - {name: control, weight: 1, then: [{send: {subject: Hello, body: "..."}}]}
            - {name: urgent, weight: 1, then: [{send: {subject: Last chance, body: "..."}}]}
          control: control
          metric: {event: Order Completed, within: 3d}
          decide: {after: 14d, min_per_variant: 50, confidence: 0.9}
      - wait: 0
      - goto: browse
  - name: done
    touchpoints:
      - exit: true
"""


def everything() -> JourneySpec:
    return journey(
        "everything",
        "Every helper",
        entry=entry(
            "Checkout Started",
            where={
                "cart.total": {"gte": 20, "lt": 500},
                "coupon": {"exists": False},
                "plan": "pro",
            },
            api=True,
            reentry={"after": "30d"},
            cap=CapSpec(per_day=500),
            holdout="10%",
        ),
        goal=goal("Order Completed", within="1w"),
        exit=["Unsubscribed", event("Account Deleted", {"reason": {"one_of": ["gdpr", "fraud"]}})],
        timezone="Europe/Paris",
        quiet_hours=QuietHoursSpec(start="21:00", end="08:00"),
        traits=["loyalty.tier"],
        templates={
            "reminder": template(
                "Your cart is waiting",
                "Everything you picked is still there.",
                locales={"fr": content("Votre panier vous attend", "Tout est encore là.")},
            )
        },
        stages=[
            stage(
                "browse",
                send(template="reminder"),
                wait(until="09:00", weekdays=["mon", "tue", "wed", "thu", "fri"]),
                wait_for(
                    "Payment Info Entered",
                    where={"method": "card"},
                    timeout="1d",
                    lookback="2h",
                    on_event=[update(tags=["paid"])],
                    on_timeout=[send("Questions?", "Reply to this email.")],
                    id="paid",
                ),
                goal="Product Viewed",
                max_dwell="14d",
                on_max_dwell="continue",
            ),
            stage(
                "buy",
                wait(until_date="birthday", offset="-7d", at="10:00", yearly=True),
                branch(
                    [
                        (
                            'profile.loyalty.tier == "gold"',
                            [send("A gift for you", "...", id="gift")],
                        )
                    ],
                    otherwise=[update(set={"loyalty.tier": "silver"}, increment={"points": 10})],
                    id="by-tier",
                ),
                split(path("email-first", wait("1d"), weight=3), path("wait-first")),
                experiment(
                    path("control", send("Hello", "...")),
                    path("urgent", send("Last chance", "...")),
                    control="control",
                    metric=metric("Order Completed", within="3d"),
                    decide=decide("14d", min_per_variant=50, confidence=0.9),
                    id="subject-test",
                ),
                wait(0),
                goto("browse"),
            ),
            stage("done", exit_()),
        ],
    )


def test_every_helper_builds_what_the_file_says() -> None:
    assert compile_python(everything()).version == compile_source(EVERYTHING_YAML).version


def test_a_python_journey_dumps_to_a_file_with_the_same_version() -> None:
    spec = everything()
    assert compile_source(dump_yaml(spec)).version == build_plan(spec).version


@pytest.mark.parametrize("file", JOURNEYS, ids=lambda file: file.name)
def test_shipped_journeys_survive_a_round_trip_through_python(file: Path) -> None:
    spec = JourneySpec.model_validate(yaml.safe_load(file.read_text(encoding="utf-8")))
    assert compile_source(dump_yaml(spec)).version == compile_file(file).version


# Text YAML could misread: numbers, booleans, nulls, times, dates, indicators, blank lines.
TRICKY = st.sampled_from(
    [
        *("yes", "no", "on", "null", "~", "09:00", "1:30", "2024-01-01", "1e3", "0x1f", ".inf"),
        *("", "- item", "# hash", "a: b", "{x}", "[y]", "'q'", '"d"', "& * ! | > % @ `"),
        *(" lead", "trail ", "two\n\nlines", "tab\there", "ends\n", "\nstarts", "ünï €"),
        "x\r\ny",
    ]
)
TEXT = st.one_of(TRICKY, st.text(max_size=40))
SCALAR = st.one_of(
    TEXT, st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False, allow_infinity=False)
)


def _mentionable(text: str) -> bool:
    return bool(text.strip()) and "{" not in text and "}" not in text and "%" not in text


@settings(max_examples=200, deadline=None, derandomize=True)
@given(
    subject=TEXT.filter(lambda t: _mentionable(t) and "\n" not in t.strip()),
    body=TEXT.filter(_mentionable),
    reason=TEXT.filter(lambda t: bool(t.strip())),
    value=SCALAR,
)
def test_dump_writes_any_text_and_value_back_exactly(
    subject: str, body: str, reason: str, value: Scalar
) -> None:
    spec = journey(
        "texts",
        "Texts",
        entry=entry("Signed Up", where={"plan": value, "seats": {"ne": value}}),
        stages=[
            stage(
                "only",
                send(subject, body),
                update(set={"note": value}),
                wait_for("Paid", timeout="1d", where={"note": {"one_of": [value, reason]}}),
                exit_(reason),
            )
        ],
    )
    text = dump_yaml(spec)
    assert JourneySpec.model_validate(yaml.safe_load(text)) == spec
    assert compile_source(text).version == build_plan(spec).version


def test_dump_writes_the_file_format() -> None:
    spec = journey(
        "dumped",
        "Dumped",
        entry=entry("Signed Up", where={"plan": "pro", "seats": {"gte": 5}}),
        quiet_hours=QuietHoursSpec(start="21:00", end="08:00"),
        stages=[
            stage(
                "welcome",
                send("Welcome, {{ profile.first_name }}", "Hi,\nwelcome.\n", id="hello"),
                wait(90000),
                wait(until="09:00", weekdays=["mon"]),
                wait_for("Paid", timeout="2d", on_timeout=[exit_("never paid")]),
                update(set={"vip": "yes"}),
                goal=event("Activated"),
                max_dwell=7 * 86400,
            )
        ],
    )
    expected = """\
        # yaml-language-server: $schema=../schema/journey.schema.json
        id: dumped
        name: Dumped
        entry:
          event: Signed Up
          where:
            plan: pro
            seats: {gte: 5}
        quiet_hours:
          start: "21:00"
          end: "08:00"
        stages:
          - name: welcome
            goal:
              event: Activated
            max_dwell: 1w
            touchpoints:
              - send:
                  id: hello
                  subject: "Welcome, {{ profile.first_name }}"
                  body: |
                    Hi,
                    welcome.
              - wait: 1d1h
              - wait:
                  until: "09:00"
                  weekdays: [mon]
              - wait_for:
                  event: Paid
                  timeout: 2d
                  on_timeout:
                    - exit: never paid
              - update:
                  set:
                    vip: "yes"
        """
    text = dump_yaml(spec, schema="../schema/journey.schema.json")
    assert text == textwrap.dedent(expected)
    assert compile_source(text).version == build_plan(spec).version


def test_an_unknown_goto_target_is_a_journey_error_with_a_path() -> None:
    spec = journey("lost", "Lost", entry="Signed Up", stages=[stage("only", goto("nowhere"))])
    with pytest.raises(JourneyError) as raised:
        compile_python(spec)
    assert raised.value.diagnostics == [
        Diagnostic(
            "<python>",
            None,
            None,
            "stages[0].touchpoints[0].goto",
            "goto target 'nowhere' is neither a stage nor a step id",
        )
    ]


def test_duplicate_step_ids_and_stage_names_are_errors_as_in_files() -> None:
    twice = send("Hi", "Hello", id="hello")
    spec = journey(
        "twice",
        "Twice",
        entry="Signed Up",
        stages=[
            stage("a", twice, wait_for("Paid", timeout="1d", on_event=[twice])),
            stage("a", wait("1d")),
        ],
    )
    with pytest.raises(JourneyError) as raised:
        compile_python(spec)
    assert [(d.path, d.message) for d in raised.value.diagnostics] == [
        (
            "stages[0].touchpoints[1].wait_for.on_event[0].send.id",
            "duplicate step id 'hello' (first at stages[0].touchpoints[0].send.id)",
        ),
        ("stages[1].name", "duplicate stage name 'a' (first at stages[0].name)"),
    ]
    with pytest.raises(JourneyError, match="duplicate step id 'hello'"):
        compile_source(dump_yaml(spec))


def test_warnings_are_collected_as_for_files() -> None:
    spec = journey(
        "shoes",
        "Shoes",
        entry="Signed Up",
        stages=[stage("only", branch([("profile.shoe_size > 40", [wait("1d")])]))],
    )
    found: list[Diagnostic] = []
    compile_python(spec, warnings=found)
    assert [(d.severity, d.path) for d in found] == [
        ("warning", "stages[0].touchpoints[0].branch.cases[0].when")
    ]


def test_a_bad_duration_says_what_a_duration_is() -> None:
    with pytest.raises(ValidationError, match=r"a duration is whole seconds or text like 90s"):
        wait("3 days")
    with pytest.raises(ValidationError, match="must be longer than zero"):
        wait_for("Paid", timeout=0)
    with pytest.raises(ValidationError, match=r"an offset may start with '-'"):
        wait(until_date="birthday", offset="a week before")


def test_bad_input_raises_the_messages_a_file_gets() -> None:
    with pytest.raises(ValidationError, match=r'a time of day is "HH:MM"'):
        wait(until="9am")
    with pytest.raises(ValidationError, match="a send needs a subject and a body, or a template"):
        send("Subject only")
    with pytest.raises(ValidationError, match="needs a goal or at least one touchpoint"):
        stage("idle")
    with pytest.raises(ValidationError, match="control 'b' is not one of the variants"):
        experiment(path("a"), path("c"), control="b", metric=metric("Paid", within="1d"))
    with pytest.raises(TypeError, match="not both"):
        wait("1d", until="09:00")
