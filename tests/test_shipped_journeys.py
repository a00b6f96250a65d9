"""The journeys and segments shipped in ``journeys/``: they compile cleanly, render, and mean
what they say.

Engineers copy these files, so each one is checked for the behaviour its comments promise:
conditions are evaluated against made-up customers exactly as the branch activity (and, for
segments, membership) does. No servers: compiling, evaluating and rendering are pure.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from journeyman.channels import EmailTemplate, Renderer
from journeyman.orchestrator.customers.definitions import SegmentDefinition
from journeyman.orchestrator.customers.events import SEGMENT_ENTERED, SEGMENT_EXITED
from journeyman.orchestrator.customers.segment_files import (
    SCHEMA_COMMENT,
    SegmentSpec,
    compile_segment_file,
    validate_segment_paths,
)
from journeyman.orchestrator.ingest.entry import entry_key
from journeyman.orchestrator.language import Diagnostic, compile_file, validate_paths
from journeyman.orchestrator.language.folders import journey_files
from journeyman.workflows.conditions import matches
from journeyman.workflows.expressions import Context, StoredEvent, evaluate, needs, parse
from journeyman.workflows.plan import (
    BranchStep,
    ExitStep,
    ExperimentStep,
    GotoStep,
    Plan,
    Reentry,
    SendStep,
    SplitStep,
    Step,
    UpdateStep,
    WaitForStep,
    WaitStep,
    children,
    walk,
)

JOURNEYS = Path(__file__).resolve().parents[1] / "journeys"
FILES = journey_files(JOURNEYS)  # configuration files are not journeys
SEGMENT_FILES = sorted((JOURNEYS / "segments").glob("*.yaml"))
SHIPPED = {
    "lifecycle", "abandoned_cart", "post_purchase_survey", "loyalty", "win_back", "b2b",
    "vip_welcome",
}  # fmt: skip
SHIPPED_SEGMENTS = {
    "mature_anti_aging": "persona",
    "young_men_anti_aging": "persona",
    "vip": "segment",
    "at_risk": "segment",
    "lost": "segment",
}
NOW = datetime(2025, 3, 14, 12, 0, tzinfo=UTC)
DAY = 86400


def load(journey_id: str) -> Plan:
    return compile_file(JOURNEYS / f"{journey_id}.yaml")


def steps_of(plan: Plan) -> Iterator[tuple[str, Step]]:
    """Every step of the plan, nested ones included, with its stage name."""
    for stage in plan.stages:
        for step in walk(stage.steps):
            yield stage.name, step


def step(plan: Plan, step_id: str, kind: type[Any]) -> Any:
    found = plan.step(step_id)
    assert isinstance(found, kind), f"{step_id} is a {found.kind}"
    return found


def happened(name: str, days_ago: float, **properties: Any) -> StoredEvent:
    return StoredEvent(name, properties, NOW - timedelta(days=days_ago))


def context(
    traits: Mapping[str, Any] | None = None,
    history: Sequence[StoredEvent] = (),
    event: Mapping[str, Any] | None = None,
) -> Context:
    by_name: dict[str, list[StoredEvent]] = {}
    for stored in history:
        by_name.setdefault(stored.name, []).append(stored)
    return Context(traits=traits or {}, event=event or {}, history=by_name, now=NOW)


def chosen(branch: BranchStep, facts: Context) -> int:
    """The case a customer takes, as the branch activity decides; ``len(cases)``: otherwise."""
    for index, case in enumerate(branch.cases):
        if evaluate(parse(case.when), facts):
            return index
    return len(branch.cases)


# --- Every file -----------------------------------------------------------------------


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_compiles_without_warnings_under_its_own_name(path: Path) -> None:
    warnings: list[Diagnostic] = []
    plan = compile_file(path, warnings=warnings)

    assert [str(w) for w in warnings] == []
    assert plan.journey_id == path.stem  # a reader finds the file by the journey's id


def test_ids_are_distinct_and_the_journeys_are_shipped() -> None:
    results = validate_paths([JOURNEYS])
    plans = [outcome for _, outcome in results]

    assert all(isinstance(p, Plan) for p in plans), [str(p) for p in plans]
    ids = [p.journey_id for p in plans if isinstance(p, Plan)]
    assert len(ids) == len(set(ids)) == len(FILES)
    assert set(ids) >= SHIPPED


def test_together_they_show_the_whole_language() -> None:
    plans = [compile_file(path) for path in FILES]
    steps = [s for plan in plans for _, s in steps_of(plan)]
    waits = [s for s in steps if isinstance(s, WaitStep)]
    waits_for = [s for s in steps if isinstance(s, WaitForStep)]
    sends = [s for s in steps if isinstance(s, SendStep)]

    assert {s.kind for s in steps} == {
        "send", "wait", "wait_for", "branch", "split", "experiment", "update", "goto", "exit"
    }  # fmt: skip
    assert any(w.until_time is not None and len(w.until_time.weekdays) < 7 for w in waits)
    assert any(w.until_date is not None and w.until_date.yearly for w in waits)
    assert any(w.until_date is not None and w.until_date.offset_seconds < 0 for w in waits)
    assert any(w.lookback_seconds > 0 for w in waits_for)
    assert any(w.on_event and w.on_timeout for w in waits_for)
    assert any(s.template is not None and s.locales for s in sends)
    assert any(s.template is None and s.locales for s in sends)
    assert any(p.goal is not None for p in plans)
    assert any(p.exits for p in plans)
    assert any(p.entry.holdout_percent > 0 for p in plans)
    assert any(p.entry.api for p in plans)
    assert {p.entry.reentry.mode for p in plans} == {"once", "after", "concurrent"}
    assert any(p.entry.match is not None and p.entry.match.event == SEGMENT_ENTERED for p in plans)
    assert any(e.event == SEGMENT_EXITED for p in plans for e in p.exits)
    assert any(p.delivery.quiet_hours is not None for p in plans)
    assert any(p.delivery.frequency_caps for p in plans)
    assert any(p.delivery.throttle_per_minute is not None for p in plans)


SPARSE: dict[str, Any] = {"email": "c1@example.com"}
FULL: dict[str, Any] = {
    "email": "mina@example.com",
    "first_name": "Mina",
    "favorite_category": "serums",
    "loyalty_points": 2300,
    "coupon_code": "WALLET20",
    "coupon_expires_at": "2025-04-01",
    "cart_coupon": "CART15",
    "cart_coupon_percent": 15,
    "winback_coupon": "COMEBACK15",
    "trial_ends_at": "2025-04-10",
    "company": {"name": "Hanbit Retail", "employee_count": 800},
    "contract": {"renewal_date": "2026-01-31"},
}
ENTRY_PROPERTIES: dict[str, Any] = {
    "title": "The 2025 retail benchmark",
    "cart": {"id": "c-42", "total": 120},
    "order_id": "o-7",
}


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
@pytest.mark.parametrize(
    ("profile", "properties"), [(SPARSE, {}), (FULL, ENTRY_PROPERTIES)], ids=["sparse", "full"]
)
def test_every_email_renders_in_every_locale(
    path: Path, profile: dict[str, Any], properties: dict[str, Any]
) -> None:
    # The worker's renderer and context: undefined names fail, so a trait without a default
    # would fail here before it fails a customer's email.
    plan = compile_file(path)
    renderer = Renderer()
    entry = plan.entry.match.event if plan.entry.match else "API Entry"
    for stage, send in steps_of(plan):
        if not isinstance(send, SendStep):
            continue
        for locale in [None, *send.locales]:
            content = send.content_for(locale)
            rendered = renderer.render_email(
                EmailTemplate(subject=content.subject, body=content.body, html=content.html),
                {
                    "profile": profile,
                    "event": {"name": entry, "properties": properties},
                    "journey": {"id": plan.journey_id, "name": plan.name, "stage": stage},
                    "customer_id": "c1",
                },
            )
            shown = f"{rendered.subject}\n{rendered.text}\n{rendered.html or ''}"
            assert rendered.subject.strip(), (send.id, locale)
            assert "None" not in shown, (send.id, locale)


def _guarded(
    steps: Sequence[Step], guards: tuple[str, ...] = ()
) -> Iterator[tuple[Step, tuple[str, ...]]]:
    """Each step with the conditions of the branch cases it sits in."""
    for item in steps:
        yield item, guards
        if isinstance(item, BranchStep):
            for case in item.cases:
                yield from _guarded(case.steps, (*guards, case.when))
            yield from _guarded(item.otherwise, guards)
        else:
            for nested in children(item):
                yield from _guarded(nested, guards)


def _with(traits: dict[str, Any], path: str, value: object) -> dict[str, Any]:
    out = dict(traits)
    head, _, rest = path.partition(".")
    out[head] = _with(out.get(head) or {}, rest, value) if rest else value
    return out


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_date_waits_are_only_reached_with_the_date_known(path: Path) -> None:
    # A missing or unreadable date ends a timed wait at once: the reminder behind it would go
    # out immediately. Every such wait sits in a branch that needs the trait to be set.
    plan = compile_file(path)
    for stage in plan.stages:
        for item, guards in _guarded(stage.steps):
            if not isinstance(item, WaitStep) or item.until_date is None:
                continue
            trait = item.until_date.trait
            checks = [tree for tree in map(parse, guards) if trait in needs(tree).traits]
            assert checks, f"{item.id}: no branch around it reads {trait}"
            known: dict[str, Any] = {}
            for name in {name for tree in checks for name in needs(tree).traits}:
                known = _with(known, name, "2030-01-01")
            unknown = _with(known, trait, None)
            assert all(evaluate(tree, context(known)) for tree in checks), item.id
            assert not all(evaluate(tree, context(unknown)) for tree in checks), item.id


# --- segments and personas ------------------------------------------------------------


def segment(segment_id: str) -> SegmentDefinition:
    return compile_segment_file(JOURNEYS / "segments" / f"{segment_id}.yaml")


def holds(definition: SegmentDefinition, facts: Context) -> bool:
    """Whether a customer matches, as membership evaluates a segment: no triggering event."""
    return evaluate(parse(definition.condition), facts)


@pytest.mark.parametrize("path", SEGMENT_FILES, ids=lambda p: p.name)
def test_segment_compiles_without_warnings_under_its_own_name(path: Path) -> None:
    warnings: list[Diagnostic] = []
    definition = compile_segment_file(path, warnings=warnings)

    assert [str(w) for w in warnings] == []
    assert definition.segment_id == path.stem
    assert path.read_text(encoding="utf-8").splitlines()[0] == SCHEMA_COMMENT


def test_segment_ids_are_distinct_and_the_personas_and_segments_are_shipped() -> None:
    results = validate_segment_paths([JOURNEYS / "segments"])
    specs = [outcome for _, outcome in results]

    assert all(isinstance(s, SegmentSpec) for s in specs), [str(s) for s in specs]
    kinds = {s.id: s.kind for s in specs if isinstance(s, SegmentSpec)}
    assert kinds == SHIPPED_SEGMENTS


def test_every_segment_a_shipped_journey_names_is_shipped() -> None:
    named = {
        test.value
        for plan in (compile_file(path) for path in FILES)
        for match in plan.exits + ([plan.entry.match] if plan.entry.match else [])
        if match.event in (SEGMENT_ENTERED, SEGMENT_EXITED)
        for test in match.where
    }

    assert named and named <= set(SHIPPED_SEGMENTS)


# --- lifecycle ------------------------------------------------------------------------


def test_lifecycle_keeps_the_five_stages_goals_and_welcome() -> None:
    plan = load("lifecycle")

    assert plan.entry.match is not None and plan.entry.match.event == "Signed Up"
    assert [(s.name, s.goal.event if s.goal else None) for s in plan.stages] == [
        ("awareness", "Product Viewed"),
        ("consideration", "Checkout Started"),
        ("purchase", "Order Completed"),
        ("service", "Survey Answered"),
        ("loyalty", "Order Completed"),
    ]
    welcome = plan.stages[0].steps[0]
    assert isinstance(welcome, SendStep) and welcome.id == "welcome"
    assert "Welcome" in welcome.subject
    # The end-to-end tests expect these emails as each stage is entered, even when its goal
    # event is already waiting: only a send that is the stage's first step is sure to go out.
    openers = {s.name: s.steps[0] for s in plan.stages}
    assert {name: o.id for name, o in openers.items() if isinstance(o, SendStep)} == {
        "awareness": "welcome",
        "consideration": "comparison",
        "service": "order-follow-up",
        "loyalty": "member-points",
    }
    # The demo and the end-to-end tests count every email the moment it is due: nothing may
    # hold the lifecycle's emails back or end runs early.
    assert plan.entry.holdout_percent == 0 and plan.goal is None
    assert plan.delivery.quiet_hours is None and plan.delivery.throttle_per_minute is None


WOMAN_61 = {"gender": "female", "age": 61}
MAN_24 = {"gender": "male", "age": 24}
ORDERED = happened("Order Completed", 40, category="anti-aging")
VIEWED = happened("Product Viewed", 10, category="anti-aging")
PERSONA: dict[str, tuple[dict[str, Any], list[StoredEvent], bool]] = {
    "woman-61-recent-anti-aging-order": (WOMAN_61, [ORDERED], True),
    "woman-45": ({"gender": "female", "age": 45}, [ORDERED], False),
    "order-older-than-six-months": (
        WOMAN_61,
        [happened("Order Completed", 200, category="anti-aging")],
        False,
    ),
    "order-of-another-category": (
        WOMAN_61,
        [happened("Order Completed", 40, category="cleansers")],
        False,
    ),
    "woman-61-only-viewed": (WOMAN_61, [VIEWED], False),
    "man-24-recent-anti-aging-view": (MAN_24, [VIEWED], True),
    "view-older-than-30-days": (
        MAN_24,
        [happened("Product Viewed", 45, category="anti-aging")],
        False,
    ),
    "man-35": ({"gender": "male", "age": 35}, [VIEWED], False),
    "no-demographics": ({}, [ORDERED, VIEWED], False),
}


@pytest.mark.parametrize(("traits", "history", "expected"), PERSONA.values(), ids=PERSONA)
def test_lifecycle_campaign_reaches_the_seed_persona(
    traits: dict[str, Any], history: list[StoredEvent], expected: bool
) -> None:
    branch = step(load("lifecycle"), "anti-aging-audience", BranchStep)

    assert evaluate(parse(branch.cases[0].when), context(traits, history)) is expected
    campaign = [s for s in walk(branch.cases[0].steps) if isinstance(s, SendStep)]
    assert [s.template for s in campaign] == ["anti_aging_campaign"]
    assert {"zh-tw", "zh-cn", "ko"} <= set(campaign[0].locales)


@pytest.mark.parametrize(("traits", "history", "expected"), PERSONA.values(), ids=PERSONA)
def test_the_persona_files_are_the_lifecycle_campaign_audience(
    traits: dict[str, Any], history: list[StoredEvent], expected: bool
) -> None:
    # The campaign audience is the two personas together, each one half of it.
    mature, young = segment("mature_anti_aging"), segment("young_men_anti_aging")
    facts = context(traits, history)

    assert (holds(mature, facts) or holds(young, facts)) is expected
    assert not (holds(mature, facts) and holds(young, facts))
    if holds(mature, facts):
        assert traits["gender"] == "female"
    if holds(young, facts):
        assert traits["gender"] == "male"


def test_lifecycle_samples_survey_by_phone_for_a_fifth() -> None:
    split = step(load("lifecycle"), "survey-channel", SplitStep)

    weights = {p.name: p.weight for p in split.paths}
    assert weights["phone"] / sum(weights.values()) == pytest.approx(0.2)


# --- abandoned_cart -------------------------------------------------------------------


def test_abandoned_cart_runs_once_per_cart_and_an_order_ends_it_converted() -> None:
    plan = load("abandoned_cart")
    entry = plan.entry.match
    assert entry is not None

    assert plan.entry.reentry == Reentry(mode="concurrent", key="cart.id")
    assert entry_key(plan, {"cart": {"id": "c-42", "total": 35}}) == "c-42"
    assert matches(entry, "Checkout Started", {"cart": {"id": "c-42", "total": 35}})
    assert not matches(entry, "Checkout Started", {"cart": {"id": "c-43", "total": 12}})
    # The order is the goal, within the discount's 72 hours. Exits are checked before the
    # goal, so an exit on Order Completed would record every recovered cart as "exited".
    assert plan.goal is not None and plan.goal.match.event == "Order Completed"
    assert plan.goal.within_seconds == 3 * DAY
    assert "Order Completed" not in {e.event for e in plan.exits}


def test_abandoned_cart_discount_is_sized_by_the_cart_and_expires() -> None:
    plan = load("abandoned_cart")
    discount = step(plan, "discount", BranchStep)

    big, small = ({"cart": {"id": "c", "total": t}} for t in (120, 40))
    assert chosen(discount, context(event=big)) == 0
    assert chosen(discount, context(event=small)) == 1
    coupons = [u.set.get("cart_coupon") for _, u in steps_of(plan) if isinstance(u, UpdateStep)]
    assert coupons[:2] == ["CART15", "CART10"] and None in coupons
    consideration = plan.stages[0].steps
    assert isinstance(consideration[-2], UpdateStep)
    assert consideration[-2].set["cart_coupon"] is None
    assert isinstance(consideration[-1], ExitStep)
    # Reminder, discount and last call: the coupon expires when the goal window closes.
    elapsed = sum(s.seconds for s in consideration if isinstance(s, WaitStep))
    assert plan.goal is not None and elapsed == plan.goal.within_seconds


# --- post_purchase_survey -------------------------------------------------------------


def test_survey_waits_for_the_answer_and_stops_after_two_asks() -> None:
    plan = load("post_purchase_survey")
    answer = step(plan, "answer", WaitForStep)

    assert answer.match.event == "Survey Answered" and answer.lookback_seconds > 0
    assert [s.kind for s in answer.on_timeout] == ["send", "wait_for"]
    second = answer.on_timeout[1]
    assert isinstance(second, WaitForStep) and second.match.event == "Survey Answered"
    assert [s.kind for s in second.on_timeout] == ["exit"]
    score = step(plan, "score", BranchStep)
    unhappy, happy = ({s.id for s in walk(c.steps)} for c in score.cases)
    assert "care-call" in unhappy and "review-request" in happy


@pytest.mark.parametrize(("score", "path"), [(2, 0), (6, 0), (7, 2), (8, 2), (9, 1), (10, 1)])
def test_survey_score_decides_the_follow_up(score: int, path: int) -> None:
    branch = step(load("post_purchase_survey"), "score", BranchStep)
    answered = [
        happened("Survey Answered", 3, score=1),
        happened("Survey Answered", 1, score=score),
    ]

    assert chosen(branch, context(history=answered)) == path  # the latest answer counts


# --- loyalty --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("traits", "tier"),
    [
        ({"loyalty_points": 100}, 2),
        ({"loyalty_points": 300, "loyalty_tier": "member"}, 3),
        ({"loyalty_points": 600, "loyalty_tier": "member"}, 1),
        ({"loyalty_points": 900, "loyalty_tier": "silver"}, 3),
        ({"loyalty_points": 2100, "loyalty_tier": "silver"}, 0),
        ({"loyalty_points": 2500, "loyalty_tier": "gold"}, 3),
    ],
)
def test_loyalty_points_move_members_up_one_tier_at_a_time(
    traits: dict[str, Any], tier: int
) -> None:
    plan = load("loyalty")
    earn = plan.stages[0].steps[0]
    branch = step(plan, "tier", BranchStep)

    assert isinstance(earn, UpdateStep) and earn.increment == {"loyalty_points": 100}
    assert chosen(branch, context(traits)) == tier
    if tier < len(branch.cases):
        update = branch.cases[tier].steps[0]
        assert isinstance(update, UpdateStep)
        assert update.set["loyalty_tier"] == ["gold", "silver", "member"][tier]


def test_loyalty_reminds_before_coupon_expiry_greets_birthdays_and_loops_per_order() -> None:
    plan = load("loyalty")
    dates = {
        s.until_date.trait: s.until_date
        for _, s in steps_of(plan)
        if isinstance(s, WaitStep) and s.until_date is not None
    }

    coupon, birthday = dates["coupon_expires_at"], dates["birthday"]
    assert (coupon.offset_seconds, coupon.at, coupon.yearly) == (-3 * DAY, "10:00", False)
    assert (birthday.offset_seconds, birthday.yearly) == (0, True)
    member = plan.stages[plan.stage_index("member")]
    assert member.goal is not None and member.goal.event == "Order Completed"
    loop = plan.stages[-1].steps[-1]
    assert isinstance(loop, GotoStep) and loop.stage and loop.target == plan.stages[0].name


# --- win_back -------------------------------------------------------------------------


def test_win_back_holds_out_ten_percent_and_counts_orders_as_conversions() -> None:
    plan = load("win_back")

    assert plan.entry.holdout_percent == 10
    assert plan.entry.api and plan.entry.match is not None
    assert plan.goal is not None and plan.goal.match.event == "Order Completed"
    assert "Order Completed" not in {e.event for e in plan.exits}


@pytest.mark.parametrize(
    ("days", "case"), [(None, 0), (200, 1), (180, 1), (90, 3), (60, 3), (20, 2)]
)
def test_win_back_sorts_inactive_from_lost_by_recency(days: int | None, case: int) -> None:
    recency = step(load("win_back"), "recency", BranchStep)
    history = [] if days is None else [happened("Order Completed", days + 0.5)]

    assert chosen(recency, context(history=history)) == case
    if case == 1:
        goto = recency.cases[1].steps[0]
        assert isinstance(goto, GotoStep) and goto.stage and goto.target == "lost"


def test_win_back_tests_incentives_against_a_control_without_one() -> None:
    experiment = step(load("win_back"), "incentive", ExperimentStep)
    paths = {v.name: v.steps for v in experiment.variants}

    assert experiment.metric.event == "Order Completed" and experiment.decide is not None
    assert experiment.control in paths and len(paths) >= 3
    assert not any(isinstance(s, UpdateStep) for s in paths[experiment.control])
    assert all(
        any(isinstance(s, UpdateStep) and s.set for s in steps)
        for name, steps in paths.items()
        if name != experiment.control
    )


# --- vip, at_risk, lost and vip_welcome -------------------------------------------------


def with_metrics(**metrics: Any) -> Context:
    return Context(traits={}, event={}, history={}, now=NOW, metrics=metrics)


@pytest.mark.parametrize(
    ("metrics", "expected"),
    [
        ({"frequency": "vip", "recency": "active", "order_count": 12}, {"vip"}),
        ({"frequency": "vip", "recency": "inactive", "order_count": 12}, {"vip", "at_risk"}),
        ({"frequency": "loyal", "recency": "inactive", "order_count": 4}, {"at_risk"}),
        ({"frequency": "none", "recency": "inactive", "order_count": 0}, set()),
        ({"frequency": "sporadic", "recency": "lost", "order_count": 1}, {"lost"}),
        ({"frequency": "regular", "recency": "active", "order_count": 3}, set()),
        ({}, set()),
    ],
)
def test_behaviour_segments_follow_the_customer_metrics(
    metrics: dict[str, Any], expected: set[str]
) -> None:
    facts = with_metrics(**metrics)
    matched = {name for name in ("vip", "at_risk", "lost") if holds(segment(name), facts)}

    assert matched == expected


def test_vip_welcome_thanks_new_vips_and_lets_those_who_leave_go() -> None:
    plan = load("vip_welcome")
    entry = plan.entry.match
    assert entry is not None

    assert matches(entry, SEGMENT_ENTERED, {"segment": "vip"})
    assert not matches(entry, SEGMENT_ENTERED, {"segment": "lost"})
    assert not matches(entry, SEGMENT_EXITED, {"segment": "vip"})
    assert any(matches(e, SEGMENT_EXITED, {"segment": "vip"}) for e in plan.exits)
    assert plan.entry.reentry == Reentry()  # thanked once
    wait, thanks = plan.stages[0].steps
    assert isinstance(wait, WaitStep) and wait.until_time is not None
    assert wait.until_time.at == "10:00"
    assert isinstance(thanks, SendStep) and "VIP" in thanks.subject


# --- b2b ------------------------------------------------------------------------------


def test_b2b_has_four_stages_business_hours_and_renewal_reminders() -> None:
    plan = load("b2b")

    assert [(s.name, s.goal.event if s.goal else None) for s in plan.stages] == [
        ("awareness", "Demo Requested"),
        ("consideration", "Trial Started"),
        ("decision", "Contract Signed"),
        ("retention", "Contract Renewed"),
    ]
    quiet = plan.delivery.quiet_hours
    assert quiet is not None
    assert (quiet.start, quiet.end, quiet.action) == ("18:00", "09:00", "defer")
    assert plan.delivery.frequency_caps
    weekday_waits = [
        s.until_time.weekdays
        for _, s in steps_of(plan)
        if isinstance(s, WaitStep) and s.until_time is not None
    ]
    assert weekday_waits and all("sat" not in d and "sun" not in d for d in weekday_waits)
    retention = plan.stages[-1]
    renewals = [
        s.until_date.offset_seconds
        for s in walk(retention.steps)
        if isinstance(s, WaitStep)
        and s.until_date
        and s.until_date.trait == "contract.renewal_date"
    ]
    assert renewals == [-60 * DAY, -14 * DAY]
