"""Scenario files: values, delays and reactions validated, problems placed by file and line."""

from __future__ import annotations

import random
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest

from journeyman.orchestrator.language import compile_file, compile_source
from journeyman.orchestrator.simulation import ScenarioError, load_scenario, parse_scenario
from journeyman.orchestrator.simulation.customers import Customer, nest, profile
from journeyman.orchestrator.simulation.distributions import (
    Between,
    Choice,
    Constant,
    Delay,
    parse_delay,
    parse_value,
)
from journeyman.workflows.inputs import JourneyEvent
from journeyman.workflows.plan import Plan

REPO = Path(__file__).resolve().parents[3]
SOURCE = "journeys/scenarios/x.yaml"
NOW = datetime(2030, 1, 7, tzinfo=UTC)

JOURNEY = compile_source(
    textwrap.dedent(
        """
        id: x
        name: X
        entry: {event: Signed Up}
        stages:
          - name: first
            goal: {event: Clicked}
            touchpoints:
              - send: {id: hello, subject: Hi, body: Hello}
              - wait: 1d
          - name: second
            goal: {event: Bought}
        """
    )
)


def errors(text: str, plan: Plan = JOURNEY) -> list[str]:
    with pytest.raises(ScenarioError) as caught:
        parse_scenario(textwrap.dedent(text).lstrip("\n"), plan, source=SOURCE)
    return [str(d) for d in caught.value.diagnostics]


def test_values_are_constants_choices_weights_and_ranges() -> None:
    assert parse_value("FR") == Constant("FR")
    assert parse_value(None) == Constant(None)
    choice = parse_value(["a", "b"])
    assert isinstance(choice, Choice) and choice.values == ("a", "b")
    weighted = parse_value({"female": 0.6, "male": 0.4})
    assert isinstance(weighted, Choice) and weighted.values == ("female", "male")
    assert parse_value({"between": [18, 75]}) == Between(18, 75)
    rng = random.Random(1)
    ages = {parse_value({"between": [18, 20]}).draw(rng) for _ in range(100)}
    assert ages == {18, 19, 20}
    price = parse_value({"between": [1.5, 2.5]}).draw(rng)
    assert isinstance(price, float) and 1.5 <= price <= 2.5
    day = parse_value({"between": ["2000-01-01", "2000-01-03"]}).draw(rng)
    assert day in ("2000-01-01", "2000-01-02", "2000-01-03")


def test_weights_are_relative_and_respected() -> None:
    rng = random.Random(7)
    drawn = [parse_value({"yes": 3, "no": 1}).draw(rng) for _ in range(4000)]
    assert 0.7 < drawn.count("yes") / len(drawn) < 0.8


def test_delays_are_durations_or_ranges() -> None:
    assert parse_delay("2h") == Delay(7200, 7200)
    assert parse_delay({"between": ["1h", "1d"]}) == Delay(3600, 86400)
    with pytest.raises(ValueError, match="backwards"):
        parse_delay({"between": ["1d", "1h"]})


def test_dotted_paths_nest() -> None:
    assert nest([("cart.total", 20), ("cart.id", "c1"), ("source", "web")]) == {
        "cart": {"total": 20, "id": "c1"},
        "source": "web",
    }


def test_a_scenario_compiles_its_reactions() -> None:
    scenario = parse_scenario(
        textwrap.dedent(
            """
            journey: x
            population: {age: {between: [18, 75]}, address.city: Paris}
            entry: {properties: {source: web}, over: 2d}
            stages:
              first:
                - {event: Clicked, probability: 60%, after: {between: [1h, 3d]}}
            steps:
              hello:
                - {event: Bought, properties: {total: 30}, when: profile.age > 40}
            """
        ),
        JOURNEY,
        source=SOURCE,
    )
    assert scenario.source == SOURCE
    assert scenario.arrival_seconds == 2 * 86400
    (clicked,) = scenario.stages["first"]
    assert (clicked.event, clicked.probability, clicked.after) == (
        "Clicked",
        0.6,
        Delay(3600, 259200),
    )
    (bought,) = scenario.steps["hello"]
    assert bought.when is not None and bought.after == Delay(0, 0)
    traits = profile(scenario, 1, "customer-1")
    assert traits["address"] == {"city": "Paris"} and 18 <= traits["age"] <= 75
    assert traits["email"].endswith(".invalid")


def test_the_same_seed_draws_the_same_customer() -> None:
    scenario = parse_scenario(
        "population: {age: {between: [1, 1000000]}}\n"
        "stages: {first: [{event: Clicked, probability: 0.5, after: {between: [1m, 30d]}}]}\n",
        JOURNEY,
    )
    assert profile(scenario, 7, "c") == profile(scenario, 7, "c")
    assert profile(scenario, 7, "c") != profile(scenario, 8, "c")

    def decided(seed: int) -> list[tuple[str, int]]:
        entry = JourneyEvent(message_id="e", name="Signed Up", occurred_at=NOW)
        customer = Customer("c", "journey/x/c", {}, entry)
        found = []
        for n in range(20):
            emitted = customer.react(scenario.stages["first"], seed=seed, trigger=f"t{n}", now=NOW)
            found += [(e.event, e.delay_seconds) for e in emitted]
        return found

    assert decided(3) == decided(3)
    assert decided(3) != decided(4)
    assert 0 < len(decided(3)) < 20  # probability 0.5 over 20 triggers


def test_problems_name_file_line_column_and_place() -> None:
    found = errors(
        """
        population:
          gender: {female: lots, male: 0.4}
        stages:
          first:
            - event: Clicked
              probability: 1.5
              after: {between: [1h]}
              when: profile.age >
            - {event: Clicked, colour: red}
        """
    )
    assert found == [
        f"{SOURCE}:2:11: population.gender: a mapping is a weighted choice like"
        " {female: 0.6, male: 0.4}, or {between: [low, high]}; the weight of 'female' is"
        " 'lots', not a number of 0 or more",
        f"{SOURCE}:6:20: stages.first[0].probability: a probability is a number from 0 to 1,"
        " or a percentage like 60%; got 1.5",
        f"{SOURCE}:7:14: stages.first[0].after: a delay is a duration like 2h, or"
        " {between: [1h, 3d]}",
        f"{SOURCE}:8:13: stages.first[0].when: condition: expected a value, got the end of the"
        " condition at column 14",
        f"{SOURCE}:9:24: stages.first[1].colour: unknown key 'colour'",
    ]


def test_stages_and_steps_must_exist_in_the_journey() -> None:
    found = errors(
        """
        journey: y
        stages:
          frist: [{event: Clicked}]
        steps:
          hello: [{event: Bought}]
          helo: [{event: Bought}]
          first.2: [{event: Bought}]
        """
    )
    assert found == [
        f"{SOURCE}:1:10: journey: this scenario is for journey 'y', not 'x'",
        f"{SOURCE}:3:3: stages.frist: unknown stage 'frist'; the journey's stages are first,"
        " second",
        f"{SOURCE}:6:3: steps.helo: unknown step 'helo'; the journey's send steps are hello",
        f"{SOURCE}:7:3: steps[\"first.2\"]: step 'first.2' is a wait, not a send: customers"
        " react to the messages they receive",
    ]


def test_yaml_errors_and_missing_files_are_scenario_errors(tmp_path: Path) -> None:
    assert errors("stages: {first: [unclosed\n") == [
        f"{SOURCE}:2:1: YAML syntax error: expected ',' or ']', but got '<stream end>'"
        " (while parsing a flow sequence)"
    ]
    assert errors("stages: {}\nstages: {}\n") == [
        f"{SOURCE}:2:1: duplicate key 'stages' (first on line 1)"
    ]
    assert errors("- just a list\n") == [
        f"{SOURCE}:1:1: the top level must be a mapping with population, entry, stages and steps"
    ]
    with pytest.raises(ScenarioError, match=r"nope\.yaml: no such file or directory"):
        load_scenario(tmp_path / "nope.yaml", JOURNEY)


@pytest.mark.parametrize(
    "scenario",
    sorted((REPO / "journeys" / "scenarios").glob("*.yaml")),
    ids=lambda path: path.name,
)
def test_every_shipped_scenario_fits_its_journey(scenario: Path) -> None:
    # journeys/scenarios/<name>.yaml describes journeys/<name>.yaml.
    plan = compile_file(REPO / "journeys" / scenario.name)
    loaded = load_scenario(scenario, plan)
    assert loaded.stages or loaded.steps
