"""Compiling journeys: the example files, defaults, step ids, conditions and content versions."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from jinja2 import StrictUndefined
from jinja2.sandbox import SandboxedEnvironment

from journeyman.orchestrator.language import (
    DEFAULT_MAX_DWELL_SECONDS,
    canonical_form,
    compile_file,
    compile_source,
    plan_hash,
)
from journeyman.orchestrator.language.folders import journey_files
from journeyman.workflows.conditions import matches
from journeyman.workflows.plan import (
    EventMatch,
    Plan,
    PropertyTest,
    SendStep,
    Step,
    WaitForStep,
    WaitStep,
)

JOURNEYS = Path(__file__).resolve().parents[3] / "journeys"
EXAMPLES = journey_files(JOURNEYS)  # configuration files are not journeys


def compile_text(text: str) -> Plan:
    return compile_source(textwrap.dedent(text), source="test.yaml")


def entry_of(plan: Plan) -> EventMatch:
    assert plan.entry.match is not None, "the journey enters on an event"
    return plan.entry.match


def all_steps(steps: list[Step]) -> list[Step]:
    found: list[Step] = []
    for step in steps:
        found.append(step)
        if isinstance(step, WaitForStep):
            found.extend(all_steps(step.on_timeout))
    return found


def sends(plan: Plan, stage: str) -> list[SendStep]:
    steps = next(s.steps for s in plan.stages if s.name == stage)
    return [step for step in all_steps(steps) if isinstance(step, SendStep)]


def test_lifecycle_example_has_the_five_stages_and_their_events() -> None:
    plan = compile_file(JOURNEYS / "lifecycle.yaml")

    assert plan.journey_id == "lifecycle"
    assert entry_of(plan).event == "Signed Up"
    stages = {stage.name: stage for stage in plan.stages}
    assert list(stages) == ["awareness", "consideration", "purchase", "service", "loyalty"]
    goals = {name: stage.goal.event for name, stage in stages.items() if stage.goal}
    assert goals == {
        "awareness": "Product Viewed",
        "consideration": "Checkout Started",
        "purchase": "Order Completed",
        "service": "Survey Answered",
        "loyalty": "Order Completed",
    }
    assert plan.event_names() == {
        "Signed Up",
        "Product Viewed",
        "Checkout Started",
        "Order Completed",
        "Survey Answered",
        "Unsubscribed",
    }
    kinds = {name: [step.kind for step in stage.steps] for name, stage in stages.items()}
    assert kinds == {
        "awareness": ["send", "wait", "wait", "send"],
        "consideration": ["send", "wait_for"],
        "purchase": ["wait", "send"],
        "service": ["send", "wait", "split"],
        "loyalty": ["send", "wait", "wait", "send"],
    }
    assert plan.step("awareness.2") == WaitStep(id="awareness.2", seconds=86400)
    assert plan.step("purchase.1") == WaitStep(id="purchase.1", seconds=3600)
    wait_for = plan.step("consideration.2")
    assert isinstance(wait_for, WaitForStep)
    assert wait_for.match.event == "Checkout Started"
    assert wait_for.timeout_seconds == 3 * 86400
    assert [step.kind for step in wait_for.on_timeout] == ["branch"]
    assert "Did something stop you?" in {s.subject for s in sends(plan, "purchase")}
    assert stages["loyalty"].max_dwell_seconds == 60 * 86400
    assert stages["awareness"].max_dwell_seconds == DEFAULT_MAX_DWELL_SECONDS


def test_abandoned_cart_example_uses_a_three_stage_model_and_an_entry_filter() -> None:
    plan = compile_file(JOURNEYS / "abandoned_cart.yaml")

    assert [stage.name for stage in plan.stages] == ["consideration", "purchase", "loyalty"]
    assert entry_of(plan).where == [PropertyTest(path="cart.total", op="gte", value=20)]
    assert matches(entry_of(plan), "Checkout Started", {"cart": {"total": 35.5}})
    assert not matches(entry_of(plan), "Checkout Started", {"cart": {"total": 5}})
    # defaults.max_dwell applies to every stage that sets none; purchase sets its own.
    dwell = {stage.name: stage.max_dwell_seconds for stage in plan.stages}
    assert dwell == {"consideration": 7 * 86400, "purchase": 2 * 86400, "loyalty": 7 * 86400}


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_templates_render_for_sparse_and_full_profiles(path: Path) -> None:
    plan = compile_file(path)
    env = SandboxedEnvironment(undefined=StrictUndefined, autoescape=False)

    def render(template: str, profile: dict[str, str]) -> str:
        # Strict: a template that needs a trait without a default fails here, not in production.
        context = {
            "profile": profile,
            "event": {"name": entry_of(plan).event, "properties": {}},
            "journey": {"id": plan.journey_id, "name": plan.name, "stage": "loyalty"},
        }
        return env.from_string(template).render(context)

    templates = [
        template
        for stage in plan.stages
        for send in sends(plan, stage.name)
        for template in (send.subject, send.body, send.html)
        if template is not None
    ]
    assert any("profile.first_name" in template for template in templates)
    for template in templates:
        sparse = render(template, {})
        if "profile.first_name" in template:
            assert "there" in sparse
            assert "Mina" in render(template, {"first_name": "Mina"})


def test_default_step_ids_follow_positions_and_explicit_ids_replace_only_their_own() -> None:
    plan = compile_text(
        """
        id: ids
        name: Ids
        entry: {event: Signed Up}
        stages:
          - name: awareness
            touchpoints:
              - send: {subject: a, body: b}
              - send: {id: named, subject: a, body: b}
              - wait_for:
                  event: Product Viewed
                  timeout: 1h
                  on_timeout:
                    - wait: 0
                    - wait_for:
                        event: Product Viewed
                        timeout: 1d
                        on_timeout:
                          - send: {subject: a, body: b}
              - wait: 5m
        """
    )

    ids = [step.id for step in all_steps(plan.stages[0].steps)]
    assert ids == [
        "awareness.1",
        "named",
        "awareness.3",
        "awareness.3.timeout.1",
        "awareness.3.timeout.2",
        "awareness.3.timeout.2.timeout.1",
        "awareness.4",
    ]
    assert plan.step("awareness.3.timeout.1") == WaitStep(id="awareness.3.timeout.1", seconds=0)


def test_anchors_and_merge_keys_share_touchpoint_text() -> None:
    plan = compile_text(
        """
        id: anchors
        name: Anchors
        entry: {event: Signed Up}
        stages:
          - name: awareness
            touchpoints:
              - send: &greeting {subject: Hello, body: Welcome aboard}
              - send:
                  <<: *greeting
                  id: again
        """
    )

    first, second = plan.stages[0].steps
    assert first == SendStep(id="awareness.1", subject="Hello", body="Welcome aboard")
    assert second == SendStep(id="again", subject="Hello", body="Welcome aboard")


def dwell_journey(defaults: str, stages: str) -> Plan:
    return compile_text(
        "id: dwell\nname: Dwell\nentry: {event: Signed Up}\n" + defaults + "stages:\n" + stages
    )


GOAL_STAGE = "  - {name: awareness, goal: {event: Product Viewed}}\n"
PLAIN_STAGE = "  - name: service\n    touchpoints: [{wait: 1h}]\n"


def test_without_defaults_only_stages_with_a_goal_get_thirty_days_and_exit() -> None:
    plan = dwell_journey("", GOAL_STAGE + PLAIN_STAGE)

    with_goal, without_goal = plan.stages
    assert (with_goal.max_dwell_seconds, with_goal.on_max_dwell) == (30 * 86400, "exit")
    assert without_goal.max_dwell_seconds is None


def test_defaults_apply_to_stages_that_set_nothing_and_stages_override_them() -> None:
    defaults = "defaults: {max_dwell: 10d, on_max_dwell: continue}\n"
    own = "  - {name: purchase, goal: {event: X}, max_dwell: 2h, on_max_dwell: exit}\n"
    plan = dwell_journey(defaults, GOAL_STAGE + PLAIN_STAGE + own)

    settings = [(s.max_dwell_seconds, s.on_max_dwell) for s in plan.stages]
    assert settings == [(10 * 86400, "continue"), (10 * 86400, "continue"), (7200, "exit")]


def test_on_max_dwell_default_alone_keeps_the_thirty_day_default() -> None:
    plan = dwell_journey("defaults: {on_max_dwell: continue}\n", GOAL_STAGE)

    assert (plan.stages[0].max_dwell_seconds, plan.stages[0].on_max_dwell) == (
        DEFAULT_MAX_DWELL_SECONDS,
        "continue",
    )


def test_where_compiles_every_operator_sorted_by_path() -> None:
    plan = compile_text(
        """
        id: ops
        name: Operators
        entry:
          event: Product Viewed
          where:
            plan: pro
            price: {gte: 10}
            cart.items: {lt: 5}
            category: {one_of: [skin, hair]}
            coupon: {exists: false}
            country: {ne: KR}
            score: {gt: 2.5}
            rank: {lte: 3}
            vip: {eq: true}
            note: null
        stages: [{name: awareness, goal: {event: Order Completed}}]
        """
    )

    assert [(t.path, t.op, t.value) for t in entry_of(plan).where] == [
        ("cart.items", "lt", 5),
        ("category", "one_of", ["skin", "hair"]),
        ("country", "ne", "KR"),
        ("coupon", "exists", False),
        ("note", "eq", None),
        ("plan", "eq", "pro"),
        ("price", "gte", 10),
        ("rank", "lte", 3),
        ("score", "gt", 2.5),
        ("vip", "eq", True),
    ]


def test_version_is_the_documented_hash_of_the_plan() -> None:
    plan = compile_file(JOURNEYS / "lifecycle.yaml")
    data = canonical_form(plan)
    del data["version"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"))

    assert plan.version == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    assert plan_hash(plan) == plan.version
    assert plan_hash(plan.model_dump(mode="json")) == plan.version


def test_version_is_pinned_for_a_known_plan() -> None:
    # Running customers are pinned to versions: if this changes, every deployed journey would
    # get a new version on the next deploy. Changing Plan's fields or the dump does exactly that.
    plan = compile_text(
        "id: tiny\nname: Tiny\nentry: {event: A}\nstages: [{name: s, touchpoints: [{wait: 1m}]}]"
    )
    canonical = (
        '{"entry":{"match":{"event":"A"}},"journey_id":"tiny","name":"Tiny",'
        '"stages":[{"name":"s","steps":[{"id":"s.1","kind":"wait","seconds":60}]}]}'
    )
    assert plan.version == hashlib.sha256(canonical.encode()).hexdigest()[:16]


def test_same_file_gives_the_same_version_in_another_process() -> None:
    path = JOURNEYS / "lifecycle.yaml"
    script = (
        "from pathlib import Path; from journeyman.orchestrator.language import compile_file; "
        f"print(compile_file(Path({str(path)!r})).version)"
    )
    env = dict(os.environ, PYTHONHASHSEED="12345")
    output = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )

    assert output.stdout.strip() == compile_file(path).version == compile_file(path).version


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_reformatting_keeps_the_version(path: Path) -> None:
    original = compile_file(path)
    data = yaml.safe_load(path.read_text())

    flow = yaml.safe_dump(data, sort_keys=True, default_flow_style=True, width=60)
    as_json = json.dumps(data, indent=3)  # JSON is YAML too
    assert compile_source(flow).version == original.version
    assert compile_source(as_json).version == original.version


BASE = """\
id: shop
name: Shop
entry: {event: Signed Up, where: {source: web, plan: {one_of: [free, pro]}}}
stages:
  - name: awareness
    goal: {event: Product Viewed, where: {price: {gte: 10}}}
    touchpoints:
      - send: {subject: "Hi {{ profile.first_name | default('there') }}", body: Welcome}
      - wait: 1d
  - name: purchase
    goal: {event: Order Completed}
"""

REFORMATTED = """\
# The same journey, written differently: comments, key order, quoting, block style.
stages:
  - touchpoints:
      - send:
          body: "Welcome"       # quoted now
          subject: 'Hi {{ profile.first_name | default(''there'') }}'
      - wait: 24h               # one day, spelled in hours
    goal:
      where:
        price:
          gte: 10
      event: Product Viewed
    name: awareness
  - goal: {event: Order Completed}
    name: purchase
entry:
  where: {plan: {one_of: [free, pro]}, source: web}
  event: Signed Up
name: 'Shop'
id: shop
"""


def test_comments_key_order_and_spelling_do_not_change_the_version() -> None:
    assert compile_source(REFORMATTED).version == compile_source(BASE).version


def test_spelling_out_a_default_does_not_change_the_version() -> None:
    # The version hashes what the plan does, not how the file says it.
    explicit = BASE.replace(
        "goal: {event: Order Completed}",
        "goal: {event: Order Completed}\n    max_dwell: 720h\n    on_max_dwell: exit",
    ).replace("Welcome}", "Welcome, channel: email}")

    assert explicit != BASE
    assert compile_source(explicit).version == compile_source(BASE).version


@pytest.mark.parametrize(
    ("before", "after"),
    [
        ("wait: 1d", "wait: 2d"),
        ("body: Welcome", "body: Welcome!"),
        ("{gte: 10}", "{gt: 10}"),
        ("{gte: 10}", "{gte: 10.5}"),
        ("source: web", "source: app"),
        ("[free, pro]", "[pro, free]"),
        ("name: Shop", "name: Shop journey"),
        ("id: shop", "id: shop2"),
        ("event: Order Completed}", "event: Order Completed, where: {total: {gt: 0}}}"),
        ("Welcome}\n", "Welcome, id: welcome}\n"),
        ("goal: {event: Order Completed}", "goal: {event: Order Completed}\n    max_dwell: 40d"),
        ("name: purchase", "name: decision"),
    ],
)
def test_semantic_changes_change_the_version(before: str, after: str) -> None:
    assert before in BASE
    changed = BASE.replace(before, after, 1)

    assert compile_source(changed).version != compile_source(BASE).version


def test_reordering_stages_changes_the_version() -> None:
    first, second = BASE.split("  - name: awareness")[1].split("  - name: purchase")
    swapped = BASE.split("  - name: awareness")[0] + "  - name: purchase" + second
    swapped += "  - name: awareness" + first

    plan = compile_source(swapped)
    assert [s.name for s in plan.stages] == ["purchase", "awareness"]
    assert plan.version != compile_source(BASE).version
