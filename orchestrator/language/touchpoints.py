"""Touchpoints as written: one model per step kind (``send`` is in ``sends.py``).

A touchpoint is one list item under ``touchpoints``, with exactly one step kind; ``wait_for``,
``branch``, ``split`` and ``experiment`` hold touchpoint lists of their own.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    ConfigDict,
    Discriminator,
    Field,
    PlainValidator,
    Tag,
    WithJsonSchema,
    model_validator,
)

from journeyman.workflows.plan import Scalar, Weekday

from .field_schemas import _NOT_BLANK, _not_empty, _present, _scalar_json, _text
from .fields import (
    TOUCHPOINT_KINDS,
    Clock,
    Count,
    Flag,
    Fraction,
    Identifier,
    PositiveDuration,
    SignedDuration,
    Text,
    TraitPath,
    WaitDuration,
    _exit,
    _increment,
    fail,
)
from .matches import EventSpec, MatchSpec, _Spec
from .property_filters import _trait_value
from .sends import SendSpec


class WaitUntilSpec(_Spec):
    """Wait until a local time of day (``until``), or a date held in a trait (``until_date``)."""

    model_config = ConfigDict(
        json_schema_extra={
            "oneOf": [_present("until"), _present("until_date")],
            "if": _present("until"),
            "then": {
                "properties": {
                    "offset": {"anyOf": [{"const": 0}, {"type": "string", "pattern": "^[^1-9]*$"}]},
                    "at": {"const": "09:00"},
                    "yearly": {"const": False},
                }
            },
            "else": {"properties": {"weekdays": {"type": "null"}}},
        }
    )

    until: Clock | None = None
    """A time of day, "HH:MM" on a 24-hour clock, in the customer's local time."""
    weekdays: list[Weekday] | None = Field(default=None, min_length=1)
    """With `until`: the days it may be (mon ... sun); every day by default."""
    until_date: TraitPath | None = None
    """A trait holding a date (`"1990-04-21"` or a date-time), such as `birthday`."""
    offset: SignedDuration = 0
    """With `until_date`: a duration before (starting with `-`) or after the date."""
    at: Clock = "09:00"
    """With `until_date`: the time of day, "HH:MM", local time."""
    yearly: Flag = False
    """With `until_date`: true for the next anniversary (birthdays, renewals)."""

    @model_validator(mode="after")
    def _one_target(self) -> WaitUntilSpec:
        if (self.until is None) == (self.until_date is None):
            fail('a timed wait has either until: "HH:MM" or until_date: TRAIT')
        if self.until_date is None and (self.offset or self.yearly or self.at != "09:00"):
            fail("offset, at and yearly go with until_date")
        if self.until is None and self.weekdays is not None:
            fail("weekdays go with until")
        return self


def _wait_kind(value: object) -> str:
    # A WaitUntilSpec instance comes from Python code, and from serializing a validated wait.
    return "@timed" if isinstance(value, dict | WaitUntilSpec) else "@duration"


WaitSpec = Annotated[
    Annotated[WaitDuration, Tag("@duration")] | Annotated[WaitUntilSpec, Tag("@timed")],
    Discriminator(_wait_kind),
]


class WaitForSpec(MatchSpec):
    """Pause until an event arrives or a segment changes (``on_event``); after ``timeout``,
    run ``on_timeout``."""

    timeout: PositiveDuration
    """How long to wait for the event or segment change (more than zero)."""
    lookback: WaitDuration = 0
    """Events up to this long before the step count too."""
    on_event: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when the event (or segment change) came."""
    on_timeout: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when the timeout passed first."""


class CaseSpec(_Spec):
    """One case of a branch: its touchpoints run when its condition holds."""

    when: Text
    """A condition over `profile`, past events and `event`, e.g. `profile.tier == "gold"`."""
    then: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when the condition holds."""


class BranchSpec(_Spec):
    """The first case whose condition holds runs; otherwise ``otherwise``."""

    cases: list[CaseSpec] = Field(min_length=1)
    """Cases tried in order; the first that holds runs."""
    otherwise: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints to run when no case holds."""


class PathSpec(_Spec):
    """One path of a split or variant of an experiment, taken with probability weight/total."""

    name: Identifier
    """Unique among the paths; part of the ids of its touchpoints."""
    weight: Count = Field(gt=0, le=1_000_000)
    """A whole number, more than zero."""
    then: list[TouchpointSpec] = Field(default_factory=list)
    """Touchpoints of this path."""


def _unique_names(paths: list[PathSpec]) -> list[PathSpec]:
    # A path's name is part of its steps' ids: two paths with one name would share ids.
    names = [path.name for path in paths]
    for name in names:
        if names.count(name) > 1:
            fail(f"path name {name!r} is used twice; each path needs its own name")
    return paths


Paths = Annotated[list[PathSpec], AfterValidator(_unique_names)]


class MetricSpec(EventSpec):
    """An experiment's success: the event arriving ``within`` of entering the experiment."""

    within: PositiveDuration
    """How long after entering the experiment the event counts."""


class DecideSpec(_Spec):
    """When and how an experiment picks its winner."""

    after: PositiveDuration
    """Time since the first customer entered before a winner may be picked."""
    min_per_variant: Count = Field(default=100, gt=0)
    """Customers every variant needs first."""
    confidence: Fraction = Field(default=0.95, gt=0.5, lt=1)
    """How sure a variant must be to beat the control (above 0.5, below 1)."""


class ExperimentSpec(_Spec):
    """A/B/n test: split by weight, measure ``metric``, and with ``decide`` pick a winner."""

    variants: Paths = Field(min_length=2)
    """At least two variants, each with a unique name."""
    control: Identifier
    """The name of the variant to beat."""
    metric: MetricSpec
    """The event counted as a success, `within` a time of entering the experiment."""
    decide: DecideSpec | None = None
    """When to pick a winner; without it the experiment keeps splitting by weight."""

    @model_validator(mode="after")
    def _control_is_a_variant(self) -> ExperimentSpec:
        names = [variant.name for variant in self.variants]
        if self.control not in names:
            fail(f"control {self.control!r} is not one of the variants ({', '.join(names)})")
        return self


TraitValue = Annotated[Scalar, PlainValidator(_trait_value), WithJsonSchema(_scalar_json())]
Increment = Annotated[int | float, PlainValidator(_increment), WithJsonSchema({"type": "number"})]


class UpdateSpec(_Spec):
    """Change the customer's profile: set traits, increment numbers, add tags."""

    model_config = ConfigDict(
        json_schema_extra={
            "anyOf": [_not_empty("set"), _not_empty("increment"), _not_empty("tags")]
        }
    )

    set: dict[TraitPath, TraitValue] = Field(default_factory=dict)
    """Traits (names or dotted paths) to set to a string, number, boolean or null."""
    increment: dict[TraitPath, Increment] = Field(default_factory=dict)
    """Traits to add a number to (negative to subtract)."""
    tags: list[Identifier] = Field(default_factory=list)
    """Tags to add."""

    @model_validator(mode="after")
    def _does_something(self) -> UpdateSpec:
        if not (self.set or self.increment or self.tags):
            fail("an update sets, increments or tags something")
        return self


ExitValue = Annotated[
    bool | str,
    PlainValidator(_exit),
    WithJsonSchema({"anyOf": [{"const": True}, _text(_NOT_BLANK).json_schema]}),
]


def _touchpoint_json(schema: dict[str, Any]) -> None:
    # Exactly one kind, never null (`send:` with nothing under it), one id at most.
    for kind in TOUCHPOINT_KINDS:
        field = schema["properties"][kind]
        field.pop("default", None)
        options = [option for option in field.pop("anyOf") if option != {"type": "null"}]
        field.update(options[0] if len(options) == 1 else {"anyOf": options})
    schema["oneOf"] = [{"required": [kind]} for kind in TOUCHPOINT_KINDS]
    send_id = {"required": ["send"], "properties": {"send": _present("id")}}
    schema["not"] = {"allOf": [_present("id"), send_id]}


class TouchpointSpec(_Spec):
    """One list item under ``touchpoints``: exactly one step kind, with an optional ``id``."""

    model_config = ConfigDict(json_schema_extra=_touchpoint_json)

    id: Identifier | None = None
    """Step id, unique in the journey: a `goto` target, shown in reports and logs."""
    send: SendSpec | None = None
    """Send a message: an email (the default), or on `channel` sms, push, in_app or webhook."""
    wait: WaitSpec | None = None
    """Pause: a duration (`2d`), or until a time of day or a date held in a trait."""
    wait_for: WaitForSpec | None = None
    """Pause until an event arrives, at most `timeout`."""
    branch: BranchSpec | None = None
    """Run the first case whose condition holds, else `otherwise`."""
    split: Paths | None = Field(default=None, min_length=2)
    """Random paths by weight (at least two); a customer always takes the same one."""
    experiment: ExperimentSpec | None = None
    """A/B/n test of variants against a control, with a winner picked on a metric."""
    update: UpdateSpec | None = None
    """Change the customer's profile."""
    goto: Identifier | None = None
    """Jump to a stage (its first touchpoint) or to a step id."""
    exit: ExitValue | None = None
    """Leave the journey: `true`, or the reason as text, shown in reports."""

    @model_validator(mode="before")
    @classmethod
    def _one_kind(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data  # pydantic reports the wrong type
        kinds = [kind for kind in TOUCHPOINT_KINDS if kind in data]
        if not kinds:
            found = ", ".join(repr(key) for key in data) or "nothing"
            fail(f"a touchpoint is one of {', '.join(TOUCHPOINT_KINDS)}; got {found}")
        if len(kinds) > 1:
            fail(f"put {' and '.join(kinds)} in separate touchpoints (one '- ' item each)")
        if data[kinds[0]] is None:
            extra = [key for key in data if key not in (kinds[0], "id")]
            hint = "; indent the keys that belong under it" if extra else ""
            fail(f"'{kinds[0]}' has no value{hint}")
        if kinds[0] == "exit" and data["exit"] is False:
            fail("exit: true ends the run here; remove the step to keep going")
        if isinstance(data.get("wait"), dict) and not data["wait"]:
            fail("'wait' has no value")
        return data

    @model_validator(mode="after")
    def _one_id(self) -> TouchpointSpec:
        if self.id is not None and self.send is not None and self.send.id is not None:
            fail("give the step one id: either beside send or inside it")
        return self

    @property
    def kind(self) -> str:
        return next(k for k in TOUCHPOINT_KINDS if getattr(self, k) is not None)

    @property
    def step_id(self) -> str | None:
        if self.send is not None and self.send.id is not None:
            return self.send.id
        return self.id

    def nested(self) -> Iterator[tuple[list[TouchpointSpec], tuple[str | int, ...]]]:
        """The touchpoint lists this touchpoint holds, with their places under it."""
        if self.wait_for is not None:
            yield self.wait_for.on_event, ("wait_for", "on_event")
            yield self.wait_for.on_timeout, ("wait_for", "on_timeout")
        if self.branch is not None:
            for n, case in enumerate(self.branch.cases):
                yield case.then, ("branch", "cases", n, "then")
            yield self.branch.otherwise, ("branch", "otherwise")
        for n, route in enumerate(self.split or []):
            yield route.then, ("split", n, "then")
        if self.experiment is not None:
            for n, route in enumerate(self.experiment.variants):
                yield route.then, ("experiment", "variants", n, "then")


WaitForSpec.model_rebuild()
CaseSpec.model_rebuild()
BranchSpec.model_rebuild()
PathSpec.model_rebuild()
ExperimentSpec.model_rebuild()
TouchpointSpec.model_rebuild()
