"""Customer data configuration: which events carry orders and satisfaction, the class
thresholds and the sweep interval, read from ``customers.yaml`` beside the journeys.

Every field has a default that follows the Segment e-commerce spec, so the file is optional;
``journeys/customers.yaml`` writes each default out with its meaning.

Errors::

    ValueError
    └── ConfigError                 (journeyman.orchestrator.config)
        └── CustomerSettingsError   the file is unreadable or a field is wrong; names both
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any, Literal, Self, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from journeyman.orchestrator.config import ConfigError

SETTINGS_FILE = "customers.yaml"
SETTINGS_FILES = (SETTINGS_FILE, "customers.yml")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=256)]
# A dotted path into an event's context, like ``device.type``.
ContextPath = Annotated[
    str, StringConstraints(strip_whitespace=True, pattern=r"^[^.\s]+(\.[^.\s]+)*$")
]


class CustomerSettingsError(ConfigError):
    """The customer data configuration cannot be used; the message names the file and field."""


class _Section(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class OrderMapping(_Section):
    """The event that records a purchase, and where its amounts and products are."""

    event: Name = "Order Completed"
    # The first of these properties holding a number is the order's revenue.
    revenue: tuple[Name, ...] = Field(default=("revenue", "total"), min_length=1)
    products: Name = "products"
    # The first of these fields of a product holding a value identifies the product.
    product_id: tuple[Name, ...] = Field(default=("product_id", "sku"), min_length=1)
    category: Name = "category"
    quantity: Name = "quantity"


class SatisfactionMapping(_Section):
    """The event that records a satisfaction answer (CSAT, NPS, a 1-10 score)."""

    event: Name = "Survey Answered"
    score: Name = "score"


class InteractionMapping(_Section):
    """Where in an event's ``context`` its channel and device type are."""

    channel: ContextPath = "channel"
    device: ContextPath = "device.type"


class VipRule(_Section):
    """VIP by revenue total and/or order count; a threshold set to null is not used."""

    min_revenue: float | None = Field(default=1000.0, ge=0)
    min_orders: int | None = Field(default=None, ge=1)
    # any: either threshold reached makes a VIP; all: every threshold that is set.
    require: Literal["any", "all"] = "any"


class LoyalRule(_Section):
    """Loyal: at least ``min_orders`` orders, the first one ``min_tenure_days`` ago or more."""

    min_orders: int = Field(default=5, ge=1)
    min_tenure_days: float = Field(default=180, ge=0)


class RegularRule(_Section):
    """Regular: at least ``min_orders`` orders, on average at most ``max_average_gap_days``
    apart (the gap is measured from the first order to the last)."""

    min_orders: int = Field(default=3, ge=2)
    max_average_gap_days: float = Field(default=60, gt=0)


class FrequencyThresholds(_Section):
    """Purchase frequency classes; the first rule that holds wins:
    vip > loyal > regular > sporadic (one order or more) > none (no orders)."""

    vip: VipRule = VipRule()
    loyal: LoyalRule = LoyalRule()
    regular: RegularRule = RegularRule()


class RecencyThresholds(_Section):
    """Recency classes, from the time since the customer's latest activity."""

    # Active while the latest activity is at most this many days old.
    active_days: float = Field(default=30, gt=0)
    # Inactive up to this many days; lost beyond.
    lost_after_days: float = Field(default=90, gt=0)

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.lost_after_days <= self.active_days:
            raise ValueError(
                f"lost_after_days ({self.lost_after_days:g}) must be greater than"
                f" active_days ({self.active_days:g})"
            )
        return self

    @property
    def active(self) -> timedelta:
        return timedelta(days=self.active_days)

    @property
    def lost_after(self) -> timedelta:
        return timedelta(days=self.lost_after_days)


MIN_SWEEP_INTERVAL = timedelta(minutes=1)
MAX_SWEEP_INTERVAL = timedelta(days=7)


class SweepSettings(_Section):
    """How often the scheduled sweep turns the passing of time into recency events."""

    interval: timedelta = timedelta(hours=1)

    @field_validator("interval", mode="before")
    @classmethod
    def _duration(cls, value: Any) -> Any:
        # Imported here: the language package loads the compiler, which reaches ingest, which
        # loads this module (a top-level import would be circular).
        from journeyman.orchestrator.language.durations import DurationError, parse_duration

        if isinstance(value, timedelta):
            return value
        try:
            return timedelta(seconds=parse_duration(value))
        except DurationError as exc:
            raise ValueError(str(exc)) from None

    @field_validator("interval")
    @classmethod
    def _bounded(cls, value: timedelta) -> timedelta:
        if not MIN_SWEEP_INTERVAL <= value <= MAX_SWEEP_INTERVAL:
            raise ValueError("the sweep interval must be from 1m to 7d")
        return value


GroupName = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_]{1,64}$")]


class SubscriptionGroupSetting(_Section):
    """A kind of message on one channel that customers can join or leave (consent)."""

    channel: Literal["email", "sms", "push", "in_app", "webhook"]
    name: GroupName
    label: Name
    description: str = ""
    # opt_out: customers get it until they leave; opt_in: only after they agreed.
    mode: Literal["opt_in", "opt_out"] = "opt_out"


DEFAULT_SUBSCRIPTION_GROUPS = (
    SubscriptionGroupSetting(channel="email", name="marketing", label="Offers and news by email"),
    SubscriptionGroupSetting(
        channel="email", name="product_updates", label="Product updates by email"
    ),
    # Marketing texts need the customer's express agreement in most places.
    SubscriptionGroupSetting(
        channel="sms", name="marketing", label="Offers by text message", mode="opt_in"
    ),
)


class CustomerDataSettings(_Section):
    """Everything the behavioural metrics and the sweep need to know, with working defaults."""

    orders: OrderMapping = OrderMapping()
    satisfaction: SatisfactionMapping = SatisfactionMapping()
    interaction: InteractionMapping = InteractionMapping()
    frequency: FrequencyThresholds = FrequencyThresholds()
    recency: RecencyThresholds = RecencyThresholds()
    sweep: SweepSettings = SweepSettings()
    # The preference page lists them in this order; a send names one with `group:`.
    subscription_groups: tuple[SubscriptionGroupSetting, ...] = DEFAULT_SUBSCRIPTION_GROUPS

    @field_validator("subscription_groups")
    @classmethod
    def _distinct_groups(
        cls, value: tuple[SubscriptionGroupSetting, ...]
    ) -> tuple[SubscriptionGroupSetting, ...]:
        keys = [f"{group.channel}:{group.name}" for group in value]
        repeated = sorted({key for key in keys if keys.count(key) > 1})
        if repeated:
            raise ValueError(f"subscription groups listed twice: {', '.join(repeated)}")
        return value


def load_customer_settings(journeys_dir: Path) -> CustomerDataSettings:
    """``journeys_dir/customers.yaml`` (or ``.yml``) validated, or the defaults without one."""
    found = [journeys_dir / name for name in SETTINGS_FILES if (journeys_dir / name).exists()]
    if len(found) > 1:
        raise CustomerSettingsError(
            f"{found[0]} and {found[1]} both exist: keep one customer data configuration"
        )
    path = found[0] if found else journeys_dir / SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return CustomerDataSettings()
    except UnicodeDecodeError:
        raise CustomerSettingsError(f"{path}: the file is not valid UTF-8") from None
    except OSError as exc:
        raise CustomerSettingsError(f"{path}: cannot read: {exc.strerror or exc}") from None
    return parse_customer_settings(text, source=str(path))


def parse_customer_settings(text: str, *, source: str = SETTINGS_FILE) -> CustomerDataSettings:
    """Validate the text of a ``customers.yaml``; errors name ``source`` and each bad field."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        problem = getattr(exc, "problem", None) or "the file is not valid YAML"
        raise CustomerSettingsError(f"{source}: {problem}{where}") from None
    if data is None:
        return CustomerDataSettings()
    if not isinstance(data, dict):
        raise CustomerSettingsError(
            f"{source}: the top level must be a mapping of sections"
            f" ({', '.join(CustomerDataSettings.model_fields)})"
        )
    try:
        return CustomerDataSettings.model_validate(data)
    except ValidationError as exc:
        raise CustomerSettingsError(_describe(source, exc)) from None


def _describe(source: str, exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_url=False):
        field = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "extra_forbidden":
            known = _fields_at(error["loc"][:-1])
            message = f"unknown field; the fields here are {', '.join(known)}"
        lines.append(f"{source}: {field}: {message}")
    return "\n".join(lines)


def _fields_at(path: tuple[int | str, ...]) -> list[str]:
    model: type[BaseModel] = CustomerDataSettings
    for part in path:
        if isinstance(part, int):
            continue  # an item of a list section: its model was found from the list's type
        annotation = model.model_fields[str(part)].annotation
        # A list section (subscription_groups) is typed tuple[Model, ...].
        candidates = [annotation, *get_args(annotation)]
        found = [c for c in candidates if isinstance(c, type) and issubclass(c, BaseModel)]
        assert found, f"{part} is not a section"
        model = found[0]
    return list(model.model_fields)
