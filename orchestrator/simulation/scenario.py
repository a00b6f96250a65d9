"""Scenario files: who the synthetic customers are and how they behave in one journey.

```yaml
journey: lifecycle                 # optional: the journey id this scenario is written for
population:                        # traits of every synthetic profile (dotted paths nest)
  gender: {female: 0.6, male: 0.4}
  age: {between: [18, 75]}
  timezone: [Europe/Paris, America/New_York]
entry:
  properties: {source: web}        # properties of the entry event
  over: 7d                         # arrivals spread evenly at random over 7 days (default: 0)
history:                           # events from before entry, for conditions that count them
  - {event: Order Completed, properties: {category: anti-aging}, probability: 0.3, ago: 30d}
stages:                            # reactions to entering a stage
  awareness:
    - event: Product Viewed
      properties: {price: {between: [5, 80]}}
      probability: 0.6             # default 1
      after: {between: [1h, 3d]}   # default 0
steps:                             # reactions to receiving a message (a send step id)
  welcome:
    - {event: Product Viewed, probability: 0.1, after: 2h, when: "profile.age < 30"}
```

Values are written as ``distributions`` describes. Each reaction is decided on its own: a
customer may do several of them, or none. ``when`` is a condition in the journey language's
condition syntax, read against the customer's traits, entry event and events so far.
Problems come back as ``ScenarioError`` naming file, line, column and place, like the journey
compiler's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, NoReturn

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, PlainValidator, ValidationError
from pydantic_core import ErrorDetails, PydanticCustomError

from journeyman.orchestrator.language.locations import (
    Diagnostic,
    Document,
    JourneyError,
    describe_value,
    load,
)
from journeyman.workflows import expressions
from journeyman.workflows.plan import Plan, SendStep, walk

from .distributions import (
    NO_DELAY,
    Delay,
    Distribution,
    parse_delay,
    parse_value,
)
from .errors import ScenarioError

_TRAIT_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")
_PROPERTY_PART = re.compile(r"[^.\s]+")


@dataclass(frozen=True)
class Reaction:
    """One thing a customer may do after a trigger: emit ``event`` after ``after``."""

    event: str
    properties: tuple[tuple[str, Distribution], ...] = ()
    probability: float = 1.0
    after: Delay = NO_DELAY
    when: expressions.Expression | None = None


@dataclass(frozen=True)
class Scenario:
    """A validated scenario; ``source`` is the file it came from (None: nobody reacts)."""

    source: str | None = None
    population: tuple[tuple[str, Distribution], ...] = ()
    entry_properties: tuple[tuple[str, Distribution], ...] = ()
    arrival_seconds: int = 0  # entries spread over this long (0: everyone at the start)
    history: tuple[Reaction, ...] = ()  # past events; ``after`` is how long before entry
    stages: Mapping[str, tuple[Reaction, ...]] = field(default_factory=dict)
    steps: Mapping[str, tuple[Reaction, ...]] = field(default_factory=dict)


NOBODY_REACTS = Scenario()


def load_scenario(path: Path, plan: Plan) -> Scenario:
    """Read and validate a scenario file for ``plan``, or raise ``ScenarioError``."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ScenarioError([_problem(path, "no such file or directory")]) from None
    except UnicodeDecodeError:
        raise ScenarioError([_problem(path, "the file is not valid UTF-8")]) from None
    except OSError as exc:
        raise ScenarioError([_problem(path, exc.strerror or str(exc))]) from None
    return parse_scenario(text, plan, source=str(path))


def parse_scenario(text: str, plan: Plan, *, source: str = "<string>") -> Scenario:
    """Validate scenario text against ``plan``, or raise ``ScenarioError`` listing every problem."""
    try:
        document = load(text, source)
    except JourneyError as exc:  # YAML syntax, duplicate keys: the journey loader's checks
        raise ScenarioError(exc.diagnostics) from None
    if not isinstance(document.data, dict):
        message = "the top level must be a mapping with population, entry, stages and steps"
        raise ScenarioError([document.diagnostic((), message)])
    try:
        spec = ScenarioSpec.model_validate(document.data)
    except ValidationError as exc:
        raise ScenarioError([_diagnostic(document, error) for error in exc.errors()]) from None
    problems = _against_plan(spec, plan, document)
    if problems:
        raise ScenarioError(problems)
    return Scenario(
        source=source,
        population=tuple(spec.population.items()),
        entry_properties=tuple(spec.entry.properties.items()),
        arrival_seconds=spec.entry.over,
        history=_reactions(spec.history),
        stages={name: _reactions(items) for name, items in spec.stages.items()},
        steps={step: _reactions(items) for step, items in spec.steps.items()},
    )


def _reactions(items: Sequence[ReactionSpec | PastSpec]) -> tuple[Reaction, ...]:
    return tuple(
        Reaction(
            event=item.event,
            properties=tuple(item.properties.items()),
            probability=item.probability,
            after=item.after if isinstance(item, ReactionSpec) else item.ago,
            when=expressions.parse(item.when) if item.when is not None else None,
        )
        for item in items
    )


def _against_plan(spec: ScenarioSpec, plan: Plan, document: Document) -> list[Diagnostic]:
    """What only the journey can tell: its id, its stage names and its send steps."""
    found: list[Diagnostic] = []
    if spec.journey is not None and spec.journey != plan.journey_id:
        message = f"this scenario is for journey {spec.journey!r}, not {plan.journey_id!r}"
        found.append(document.diagnostic(("journey",), message))
    stages = [stage.name for stage in plan.stages]
    for name in spec.stages:
        if name not in stages:
            message = f"unknown stage {name!r}; the journey's stages are {', '.join(stages)}"
            found.append(document.diagnostic(("stages", name), message, key=True))
    steps = {step.id: step for stage in plan.stages for step in walk(stage.steps)}
    sends = [step_id for step_id, step in steps.items() if isinstance(step, SendStep)]
    for step_id in spec.steps:
        step = steps.get(step_id)
        if step is None:
            listed = ", ".join(sends) or "none"
            message = f"unknown step {step_id!r}; the journey's send steps are {listed}"
            found.append(document.diagnostic(("steps", step_id), message, key=True))
        elif not isinstance(step, SendStep):
            message = (
                f"step {step_id!r} is a {step.kind}, not a send: customers react to the"
                " messages they receive"
            )
            found.append(document.diagnostic(("steps", step_id), message, key=True))
    return found


# --- the file as written -------------------------------------------------------------


def _fail(message: str) -> NoReturn:
    # The message goes through the context so that braces in it are not formatted.
    raise PydanticCustomError("scenario", "{message}", {"message": message})


def _value(raw: object) -> Distribution:
    try:
        return parse_value(raw)
    except ValueError as exc:
        _fail(str(exc))


def _delay(raw: object) -> Delay:
    try:
        return parse_delay(raw)
    except ValueError as exc:
        _fail(str(exc))


def _over(raw: object) -> int:
    if isinstance(raw, dict):
        _fail("entry.over is one duration, like 7d")
    return _delay(raw).high


def _probability(raw: object) -> float:
    number: object = raw
    if isinstance(raw, str) and raw.strip().endswith("%"):
        try:
            number = float(raw.strip()[:-1]) / 100
        except ValueError:
            number = None
    if isinstance(number, bool) or not isinstance(number, int | float):
        number = None
    if number is None or not math.isfinite(number) or not 0 <= number <= 1:
        _fail(f"a probability is a number from 0 to 1, or a percentage like 60%; got {raw!r}")
    assert isinstance(number, int | float)
    return float(number)


def _condition(text: str) -> str:
    try:
        expressions.parse(text)
    except expressions.ExpressionError as exc:
        _fail(f"condition: {exc}")
    return text


def _trait_path(value: str) -> str:
    if not _TRAIT_PATH.fullmatch(value):
        _fail(f"a trait is a name or dotted path like address.city; got {value!r}")
    return value


def _property_path(value: str) -> str:
    if not all(_PROPERTY_PART.fullmatch(part) for part in value.split(".")):
        _fail(f"a property path is names joined by dots, without spaces; got {value!r}")
    return value


def _text(value: str) -> str:
    if not value.strip():
        _fail("must not be empty")
    return value


def _no_clashes(values: dict[str, Distribution]) -> dict[str, Distribution]:
    """``cart`` and ``cart.total`` cannot both be set: one would overwrite the other."""
    for path in values:
        for other in values:
            if other.startswith(path + "."):
                _fail(f"{other!r} is inside {path!r}: set one or the other")
    return values


Text = Annotated[str, AfterValidator(_text)]
TraitPath = Annotated[str, AfterValidator(_trait_path)]
PropertyPath = Annotated[str, AfterValidator(_property_path)]
Value = Annotated[Distribution, PlainValidator(_value)]
DelayValue = Annotated[Delay, PlainValidator(_delay)]
Probability = Annotated[float, PlainValidator(_probability)]
Condition = Annotated[str, AfterValidator(_text), AfterValidator(_condition)]
Properties = Annotated[dict[PropertyPath, Value], AfterValidator(_no_clashes)]


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ReactionSpec(_Spec):
    event: Text
    properties: Properties = Field(default_factory=dict)
    probability: Probability = 1.0
    after: DelayValue = NO_DELAY
    when: Condition | None = None


class PastSpec(_Spec):
    event: Text
    properties: Properties = Field(default_factory=dict)
    probability: Probability = 1.0
    ago: DelayValue = NO_DELAY
    when: Condition | None = None


class EntrySpec(_Spec):
    properties: Properties = Field(default_factory=dict)
    over: Annotated[int, PlainValidator(_over)] = 0


class ScenarioSpec(_Spec):
    journey: Text | None = None
    population: Annotated[dict[TraitPath, Value], AfterValidator(_no_clashes)] = Field(
        default_factory=dict
    )
    entry: EntrySpec = Field(default_factory=EntrySpec)
    history: list[PastSpec] = Field(default_factory=list)
    stages: dict[Text, list[ReactionSpec]] = Field(default_factory=dict)
    steps: dict[Text, list[ReactionSpec]] = Field(default_factory=dict)


# --- diagnostics ---------------------------------------------------------------------


def _problem(path: Path, message: str) -> Diagnostic:
    return Diagnostic(str(path), None, None, "", message)


def _diagnostic(document: Document, error: ErrorDetails) -> Diagnostic:
    raw = error["loc"]
    loc = [part for part in raw if part != "[key]"]
    kind = error["type"]
    if kind == "missing":
        return document.diagnostic(loc[:-1], f"missing required key '{loc[-1]}'")
    if kind == "extra_forbidden":
        return document.diagnostic(loc, f"unknown key '{loc[-1]}'", key=True)
    return document.diagnostic(loc, _message(error), key="[key]" in raw)


def _message(error: ErrorDetails) -> str:
    kind, value = error["type"], error["input"]
    if kind in ("string_type", "str_type"):
        return f"expected text, got {describe_value(value)}"
    if kind in ("model_type", "dict_type", "model_attributes_type"):
        return f"expected a mapping, got {describe_value(value)}"
    if kind == "list_type":
        return f"expected a list of reactions, got {describe_value(value)}"
    return error["msg"]
