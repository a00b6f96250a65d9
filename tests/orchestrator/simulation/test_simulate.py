"""Simulations on the real time-skipping server: funnels, messages and times that follow from
the journey and the scenario, reproducible by seed."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any, get_type_hints

import pytest

from journeyman.orchestrator.cli import main
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.simulation import (
    Report,
    SimulationError,
    Tuning,
    parse_scenario,
    simulate,
)
from journeyman.orchestrator.simulation import activities as simulated_activities
from journeyman.orchestrator.simulation.activities import SimulatedActivities
from journeyman.workflows.activities import JourneyActivities

REPO = Path(__file__).resolve().parents[3]

# First stage: two emails a day apart, two days to convert. Second: an offer, three days,
# then on regardless. Third: a thank-you, and the journey is done.
TRIAL = """
id: trial
name: Trial
entry: {event: Signed Up}
stages:
  - name: first
    goal: {event: Clicked}
    max_dwell: 2d
    touchpoints:
      - send: {id: hello, subject: Hi, body: Hello}
      - wait: 1d
      - send: {id: again, subject: Again, body: Hello again}
  - name: second
    goal: {event: Bought}
    max_dwell: 3d
    on_max_dwell: continue
    touchpoints:
      - send: {id: offer, subject: Offer, body: Buy}
  - name: third
    touchpoints:
      - send: {id: thanks, subject: Thanks, body: Thanks}
"""
PLAN = compile_source(TRIAL)


def stage(report: Report, name: str) -> dict[str, Any]:
    found = next(s for s in report.stages if s.stage == name)
    return found.model_dump()


def sent(report: Report) -> dict[str, int]:
    return {step.step: step.sent for step in report.steps}


async def test_everyone_converting_after_an_hour_converts_in_an_hour() -> None:
    scenario = parse_scenario("stages: {first: [{event: Clicked, after: 1h}]}", PLAN)
    report = await simulate(PLAN, scenario, customers=40, seed=1)
    first = stage(report, "first")
    assert first["entered"] == first["converted"] == 40
    assert first["conversion_rate"] == 1.0
    assert first["time_to_convert"] == {"count": 40, "median_seconds": 3600, "p90_seconds": 3600}
    # Nobody buys: the second stage lets them go on after its three days.
    second = stage(report, "second")
    assert (second["entered"], second["converted"], second["moved_on"]) == (40, 0, 40)
    assert stage(report, "third")["moved_on"] == 40
    assert report.runs.completed == 40 and report.runs.active == 0
    # Converted after an hour: the second email of the first stage never goes.
    assert sent(report) == {"hello": 40, "again": 0, "offer": 40, "thanks": 40}
    assert report.messages == {"email": 120}


async def test_without_reactions_customers_leave_at_max_dwell() -> None:
    report = await simulate(PLAN, customers=30)
    first = stage(report, "first")
    assert (first["entered"], first["converted"], first["exited"], first["current"]) == (
        30,
        0,
        30,
        0,
    )
    assert stage(report, "second")["entered"] == 0
    assert report.runs.exited == 30
    assert report.scenario is None
    # The messages the plan implies for a customer who never reacts: both first-stage emails.
    assert sent(report) == {"hello": 30, "again": 30, "offer": 0, "thanks": 0}
    assert report.messages == {"email": 60}

    # Stopped after 47 hours, the same customers are all still inside, one hour before the
    # two days of max dwell are up.
    early = await simulate(PLAN, customers=30, horizon_seconds=47 * 3600)
    first = stage(early, "first")
    assert (first["entered"], first["exited"], first["current"]) == (30, 0, 30)
    assert early.runs.active == 30
    assert sent(early) == {"hello": 30, "again": 30, "offer": 0, "thanks": 0}


BRANCHING = """
id: branching
name: Branching
entry: {event: Signed Up}
stages:
  - name: welcome
    goal: {event: Bought}
    max_dwell: 10d
    touchpoints:
      - branch:
          cases:
            - when: 'count("Bought", within: 90d) > 0 and profile.age >= 40'
              then: [{send: {id: returning, subject: Back, body: Welcome back}}]
          otherwise: [{send: {id: new, subject: Hi, body: Welcome}}]
      - wait: 1d
      - send: {id: nudge, subject: Nudge, body: "Still there?"}
"""
BEHAVIOUR = """
population:
  age: {between: [18, 75]}
  timezone: [Europe/Paris, Asia/Taipei]
history:
  - {event: Bought, probability: 0.5, ago: {between: [1d, 60d]}}
stages:
  welcome:
    - {event: Bought, probability: 0.3, after: {between: [1h, 3d]}}
steps:
  returning:
    - {event: Bought, probability: 0.5, after: {between: [10m, 2d]}}
  nudge:
    - {event: Bought, probability: 0.2, after: {between: [10m, 2d]}}
"""


async def test_the_same_seed_gives_the_same_report() -> None:
    plan = compile_source(BRANCHING)
    scenario = parse_scenario(BEHAVIOUR, plan, source="behaviour.yaml")
    first = await simulate(plan, scenario, customers=40, seed=7)
    again = await simulate(plan, scenario, customers=40, seed=7)
    other = await simulate(plan, scenario, customers=40, seed=8)
    assert first.model_dump() == again.model_dump()
    assert first.model_dump() != other.model_dump()
    # The branch read traits and the drawn history: both emails went out, once per customer.
    emails = sent(first)
    assert emails["returning"] > 0 and emails["new"] > 0
    assert emails["returning"] + emails["new"] == 40
    welcome = stage(first, "welcome")
    assert 0 < welcome["converted"] < 40
    assert welcome["converted"] + welcome["exited"] == 40


@pytest.mark.skip(
    reason="quarantined: passes alone and with the simulation tests, but hangs after the rest of"
    " the suite has run; under investigation (see the issue notes)"
)
async def test_a_failing_activity_stops_the_simulation(monkeypatch: pytest.MonkeyPatch) -> None:
    # A bug in an activity would otherwise be retried every simulated minute until the horizon.
    def broken(*args: object) -> bool:
        raise RuntimeError("broken condition")

    # Only the branch activity's evaluation breaks: conditions evaluated by the simulated
    # customers' reactions stay whole, as the bug under test is the activity's.
    monkeypatch.setattr(simulated_activities, "_condition", broken)
    with pytest.raises(SimulationError, match="activity evaluate_branch failed") as caught:
        await simulate(compile_source(BRANCHING), customers=5)
    assert "RuntimeError: broken condition" in str(caught.value)


async def test_the_sandbox_changes_nothing() -> None:
    # Simulations run the workflow unsandboxed for speed; in the sandbox, as production runs
    # it, the same customers give the same report.
    scenario = parse_scenario(
        "stages: {first: [{event: Clicked, probability: 0.5, after: {between: [1h, 3d]}}]}", PLAN
    )
    fast = await simulate(PLAN, scenario, customers=20, seed=5)
    sandboxed = await simulate(PLAN, scenario, customers=20, seed=5, tuning=Tuning(sandboxed=True))
    assert fast.model_dump() == sandboxed.model_dump()


def test_the_simulated_activities_match_the_real_ones() -> None:
    # Same names, same input and output types: the workflow cannot tell them apart.
    real = activities(JourneyActivities)
    simulated = activities(SimulatedActivities)
    assert len(real) == 7
    assert {name: simulated.get(name) for name in real} == real


def activities(cls: type[Any]) -> dict[str, dict[str, Any]]:
    """Activity name -> type hints of every activity method of a class."""
    found = {}
    for method in vars(cls).values():
        definition = getattr(method, "__temporal_activity_definition", None)
        if definition is not None:
            found[definition.name] = get_type_hints(method)
    return found


def test_the_cli_prints_the_funnel(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            str(REPO / "journeys" / "lifecycle.yaml"),
            "--customers",
            "30",
            "--scenario",
            str(REPO / "journeys" / "scenarios" / "lifecycle.yaml"),
            "--seed",
            "3",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Simulated Lifecycle journey" in out
    assert "stage" in out and "converted" in out and "to convert: median" in out
    for name in ("awareness", "consideration", "purchase", "service", "loyalty"):
        assert f"\n{name} " in out
    assert "messages sent: " in out and "welcome" in out
    assert "simulated 30 customers in" in err


def test_the_cli_prints_json_without_progress(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "simulate",
            str(REPO / "journeys" / "abandoned_cart.yaml"),
            "--customers",
            "30",
            "--scenario",
            str(REPO / "journeys" / "scenarios" / "abandoned_cart.yaml"),
            "--json",
        ]
    )
    out, err = capsys.readouterr()
    assert code == 0, err
    assert err == ""
    report = json.loads(out)
    assert report["journey_id"] == "abandoned_cart" and report["customers"] == 30
    assert report["stages"][0]["entered"] == 30
    assert report["runs"]["active"] == 0
    assert report["goal"]["event"] == "Order Completed"


def test_a_bad_scenario_is_a_clean_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent(
            """
            stages:
              awareness:
                - event: Product Viewed
                  after: 2 days
            """
        ).lstrip()
    )
    code = main(["simulate", str(REPO / "journeys" / "lifecycle.yaml"), "--scenario", str(bad)])
    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert err.startswith(f"{bad}:4:14: stages.awareness[0].after: a duration is whole seconds")
    assert "Traceback" not in err


def test_a_bad_journey_is_a_clean_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    journey = tmp_path / "j.yaml"
    journey.write_text("id: j\nname: J\nentry: {event: A}\nstages: []\n")
    assert main(["simulate", str(journey)]) == 1
    err = capsys.readouterr().err
    assert f"{journey}:4:9: stages: must not be empty" in err
    assert "Traceback" not in err
