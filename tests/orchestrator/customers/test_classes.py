"""The class rules on crafted values (boundaries included), and the configuration they read."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pydantic import BaseModel

from journeyman.orchestrator.config import ConfigError
from journeyman.orchestrator.customers.classes import (
    FrequencyClass,
    average_gap_days,
    became_at,
    frequency_class,
    recency_class,
    tenure_days,
)
from journeyman.orchestrator.customers.settings import (
    CustomerDataSettings,
    CustomerSettingsError,
    load_customer_settings,
    parse_customer_settings,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
DEFAULTS = CustomerDataSettings()
REPO = Path(__file__).resolve().parents[3]


def days_ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


def frequency(
    orders: int,
    revenue: float = 0,
    *,
    first: float | None = None,
    last: float | None = None,
    settings: CustomerDataSettings = DEFAULTS,
) -> FrequencyClass:
    """The class of ``orders`` orders, the first ``first`` days ago and the last ``last``."""
    return frequency_class(
        order_count=orders,
        revenue_total=Decimal(str(revenue)),
        first_order_at=None if first is None else days_ago(first),
        last_order_at=None if last is None else days_ago(last),
        now=NOW,
        settings=settings,
    )


# Frequency, with the defaults: vip from 1000 revenue; loyal from 5 orders over 180 days;
# regular from 3 orders at most 60 days apart on average; sporadic from one order.


def test_no_orders_is_none() -> None:
    assert frequency(0) == "none"
    # Revenue without an order (a data problem) does not make a class.
    assert frequency(0, 5000) == "none"


def test_one_order_is_sporadic() -> None:
    assert frequency(1, 50, first=10, last=10) == "sporadic"


@pytest.mark.parametrize(
    ("revenue", "expected"),
    [(999.99, "sporadic"), (1000, "vip"), (1000.01, "vip"), (25_000, "vip")],
)
def test_vip_by_revenue_boundary(revenue: float, expected: str) -> None:
    assert frequency(1, revenue, first=3, last=3) == expected


def test_vip_beats_every_other_rule() -> None:
    # Loyal and regular too, but VIP comes first.
    assert frequency(10, 1500, first=400, last=1) == "vip"


def test_vip_by_order_count_when_configured() -> None:
    by_orders = parse_customer_settings("frequency: {vip: {min_revenue: null, min_orders: 10}}")
    assert frequency(9, 90_000, first=30, last=1, settings=by_orders) == "regular"
    assert frequency(10, 100, first=30, last=1, settings=by_orders) == "vip"


def test_vip_requiring_all_thresholds() -> None:
    both = parse_customer_settings(
        "frequency: {vip: {min_revenue: 500, min_orders: 4, require: all}}"
    )
    assert frequency(4, 499, first=20, last=1, settings=both) == "regular"
    assert frequency(3, 900, first=20, last=1, settings=both) == "regular"
    assert frequency(4, 500, first=20, last=1, settings=both) == "vip"
    either = parse_customer_settings("frequency: {vip: {min_revenue: 500, min_orders: 4}}")
    assert frequency(4, 10, first=20, last=1, settings=either) == "vip"
    assert frequency(1, 500, first=1, last=1, settings=either) == "vip"


def test_vip_switched_off() -> None:
    never = parse_customer_settings("frequency: {vip: {min_revenue: null}}")
    assert frequency(1, 1_000_000, first=1, last=1, settings=never) == "sporadic"


def test_loyal_boundaries_exactly() -> None:
    assert frequency(5, 100, first=180, last=170) == "loyal"
    assert frequency(5, 100, first=179.99, last=179) == "regular"  # not yet 180 days
    assert frequency(4, 100, first=500, last=499) == "regular"  # one order short of loyal


@pytest.mark.parametrize(
    ("orders", "first", "last", "expected"),
    [
        (3, 120, 0, "regular"),  # 120 days over 2 gaps: 60 on average, the limit
        (3, 120.01, 0, "sporadic"),  # just over 60 days on average
        (2, 10, 0, "sporadic"),  # two orders are not enough for regular
        (4, 90, 0, "regular"),  # 30 days apart
        (3, 170, 0, "sporadic"),  # 85 days apart
    ],
)
def test_regular_by_orders_and_average_gap(
    orders: int, first: float, last: float, expected: str
) -> None:
    assert frequency(orders, 100, first=first, last=last) == expected


def test_precedence_is_vip_loyal_regular_sporadic_none() -> None:
    histories = {
        "vip": frequency(6, 2000, first=200, last=1),
        "loyal": frequency(6, 200, first=200, last=1),
        "regular": frequency(6, 200, first=100, last=1),
        "sporadic": frequency(2, 200, first=100, last=1),
        "none": frequency(0),
    }
    assert histories == {name: name for name in histories}


def test_gap_and_tenure_helpers() -> None:
    assert average_gap_days(1, days_ago(5), days_ago(5)) is None
    assert average_gap_days(3, days_ago(20), days_ago(0)) == 10
    assert average_gap_days(2, None, days_ago(0)) is None
    assert tenure_days(None, NOW) == 0
    assert tenure_days(days_ago(7.5), NOW) == 7.5
    assert tenure_days(NOW + timedelta(days=2), NOW) == 0  # a clock running fast


# Recency, with the defaults: active within 30 days, inactive up to 90, lost beyond.


@pytest.mark.parametrize(
    ("age", "expected"),
    [
        (timedelta(0), "active"),
        (timedelta(days=-3), "active"),  # dated in the future by a fast clock
        (timedelta(days=30), "active"),  # the boundary belongs to the younger class
        (timedelta(days=30, microseconds=1), "inactive"),
        (timedelta(days=89), "inactive"),
        (timedelta(days=90), "inactive"),
        (timedelta(days=90, microseconds=1), "lost"),
        (timedelta(days=4000), "lost"),
    ],
)
def test_recency_class_boundaries(age: timedelta, expected: str) -> None:
    assert recency_class(NOW - age, NOW, DEFAULTS) == expected


def test_recency_thresholds_are_configurable() -> None:
    weekly = parse_customer_settings("recency: {active_days: 7, lost_after_days: 14}")
    assert recency_class(days_ago(7), NOW, weekly) == "active"
    assert recency_class(days_ago(8), NOW, weekly) == "inactive"
    assert recency_class(days_ago(15), NOW, weekly) == "lost"


def test_became_at_is_the_moment_the_threshold_passed() -> None:
    seen = days_ago(100)
    assert became_at(seen, "inactive", DEFAULTS) == seen + timedelta(days=30)
    assert became_at(seen, "lost", DEFAULTS) == seen + timedelta(days=90)
    assert became_at(seen, "active", DEFAULTS) == seen


# The configuration.


def _field_names(model: type[BaseModel]) -> set[str]:
    names = set()
    for name, info in model.model_fields.items():
        names.add(name)
        if isinstance(info.annotation, type) and issubclass(info.annotation, BaseModel):
            names |= _field_names(info.annotation)
    return names


def test_the_shipped_file_writes_out_every_default() -> None:
    assert load_customer_settings(REPO / "journeys") == CustomerDataSettings()
    lines = (REPO / "journeys" / "customers.yaml").read_text().splitlines()
    written = {line.split(":")[0].strip() for line in lines if not line.lstrip().startswith("#")}
    assert _field_names(CustomerDataSettings) <= written
    # Each field has a comment on the line above it.
    for index, line in enumerate(lines):
        if line.strip() and not line.lstrip().startswith("#") and not line.endswith(":"):
            assert lines[index - 1].lstrip().startswith("#"), line


def test_no_file_means_defaults(tmp_path: Path) -> None:
    assert load_customer_settings(tmp_path) == CustomerDataSettings()
    (tmp_path / "customers.yaml").write_text("# nothing set\n")
    assert load_customer_settings(tmp_path) == CustomerDataSettings()


def test_a_file_changes_only_what_it_sets(tmp_path: Path) -> None:
    (tmp_path / "customers.yaml").write_text(
        "orders:\n  event: Purchase\n  revenue: [amount]\n"
        "satisfaction: {event: NPS Answered, score: nps}\n"
        "sweep: {interval: 15m}\n"
    )
    settings = load_customer_settings(tmp_path)
    assert settings.orders.event == "Purchase"
    assert settings.orders.revenue == ("amount",)
    assert settings.orders.products == "products"
    assert settings.satisfaction.score == "nps"
    assert settings.sweep.interval == timedelta(minutes=15)
    assert settings.recency == CustomerDataSettings().recency


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "recency: {active_days: 60, lost_after_days: 45}",
            "recency: lost_after_days (45) must be greater than active_days (60)",
        ),
        (
            "frequency: {gold: {min_orders: 2}}",
            "frequency.gold: unknown field; the fields here are vip, loyal, regular",
        ),
        (
            "frequency: {regular: {min_orders: 1}}",
            "frequency.regular.min_orders: Input should be greater than or equal to 2",
        ),
        (
            "frequency: {vip: {require: most}}",
            "frequency.vip.require: Input should be 'any' or 'all'",
        ),
        ("sweep: {interval: 10s}", "sweep.interval: the sweep interval must be from 1m to 7d"),
        ("sweep: {interval: soon}", "sweep.interval: a duration is whole seconds or text like"),
        ("orders: {event: ''}", "orders.event: String should have at least 1 character"),
        ("interaction: {device: 'device..type'}", "interaction.device: String should match"),
        ("- orders", "the top level must be a mapping of sections (orders, satisfaction,"),
        ("orders: [unclosed", "(line 1, column 18)"),
    ],
)
def test_errors_name_the_file_and_the_field(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "customers.yaml"
    path.write_text(text)
    with pytest.raises(CustomerSettingsError) as caught:
        load_customer_settings(tmp_path)
    assert str(caught.value).startswith(f"{path}: ")
    assert message in str(caught.value)
    # The CLI reports configuration errors as such (exit status 2, one line per problem).
    assert isinstance(caught.value, ConfigError)


def test_the_yml_spelling_is_read_too_but_not_both(tmp_path: Path) -> None:
    (tmp_path / "customers.yml").write_text("recency: {active_days: 14}\n")
    assert load_customer_settings(tmp_path).recency.active_days == 14
    (tmp_path / "customers.yaml").write_text("recency: {active_days: 21}\n")
    with pytest.raises(CustomerSettingsError, match="both exist"):
        load_customer_settings(tmp_path)


def test_unreadable_file(tmp_path: Path) -> None:
    (tmp_path / "customers.yaml").write_bytes(b"orders: {event: \xff}\n")
    with pytest.raises(CustomerSettingsError, match="not valid UTF-8"):
        load_customer_settings(tmp_path)


def test_settings_are_frozen() -> None:
    settings = CustomerDataSettings()
    with pytest.raises(ValueError, match="frozen"):
        settings.recency.active_days = 3  # type: ignore[misc]


def test_subscription_groups_are_configured_in_the_same_file(tmp_path: Path) -> None:
    (tmp_path / "customers.yaml").write_text(
        "subscription_groups:\n"
        "  - {channel: email, name: newsletter, label: Our newsletter}\n"
        "  - {channel: push, name: alerts, label: Back-in-stock alerts, mode: opt_in}\n"
    )
    groups = load_customer_settings(tmp_path).subscription_groups
    assert [(g.channel, g.name, g.mode) for g in groups] == [
        ("email", "newsletter", "opt_out"),
        ("push", "alerts", "opt_in"),
    ]


@pytest.mark.parametrize(
    ("groups", "problem"),
    [
        ("[{channel: fax, name: x, label: X}]", "subscription_groups.0.channel"),
        ("[{channel: email, name: Bad Name, label: X}]", "subscription_groups.0.name"),
        ("[{channel: email, name: x, label: X, colour: red}]", "the fields here are channel"),
        (
            "[{channel: email, name: x, label: X}, {channel: email, name: x, label: Y}]",
            "listed twice: email:x",
        ),
    ],
)
def test_bad_subscription_groups_are_named(tmp_path: Path, groups: str, problem: str) -> None:
    (tmp_path / "customers.yaml").write_text(f"subscription_groups: {groups}\n")
    with pytest.raises(CustomerSettingsError, match=re.escape(problem)):
        load_customer_settings(tmp_path)
