"""The fast reader against the Segment models: same event, or it leaves the message to them.

``fast_read.read`` is only allowed to answer for a message the models accept, and then with
exactly the event ``normalise(parse_message(...))`` builds. Random messages (well formed,
nearly well formed and broken) check both, and typical SDK messages must take the fast path.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyman.orchestrator.ingest import fast_read
from journeyman.orchestrator.ingest.segment import (
    MAX_MESSAGE_BYTES,
    MESSAGE_TYPES,
    IncomingEvent,
    MessageRejected,
    message_size,
    normalise,
    parse_message,
    within_limit,
)

PROPERTIES = settings(
    max_examples=400,
    deadline=None,
    derandomize=True,  # the same examples on every run
    suppress_health_check=[HealthCheck.too_slow],
)
RECEIVED = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)

# Text the models trim, or must refuse: whitespace of both kinds (what Python and what
# Postgres-side Rust call whitespace differ: \x1c is one, not the other), empty, too long.
texts = st.one_of(
    st.text(max_size=12),
    st.sampled_from(
        ["u1", " u1", "u1 ", "\tu1", "u1\x1c", "\x1cu1", "u1\u00a0", "", " ", "王小明", "x" * 161]
    ),
    st.just("y" * 257),
)
times = st.one_of(
    st.sampled_from(
        [
            "2025-06-01T11:58:00Z",
            "2025-06-01T11:58:00.123+08:00",
            "2025-06-01T11:58:00",
            " 2025-06-01T11:58:00Z ",
            "2025-06-01",
            "31/12/2024",
            "soon",
            "",
        ]
    ),
    st.datetimes(
        min_value=datetime(2000, 1, 1), max_value=datetime(2030, 1, 1), timezones=st.just(UTC)
    ).map(lambda moment: moment.isoformat()),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.floats(allow_nan=False, allow_infinity=False),
    texts,
)
objects = st.dictionaries(st.sampled_from(["a", "b", "name", "traits", "x y"]), scalars, max_size=3)
values = st.one_of(scalars, objects, st.lists(scalars, max_size=2), times)
KEYS = [
    "type",
    "userId",
    "anonymousId",
    "messageId",
    "timestamp",
    "originalTimestamp",
    "sentAt",
    "context",
    "properties",
    "traits",
    "event",
    "name",
    "category",
    "groupId",
    "previousId",
    "writeKey",
    "integrations",
    "user_id",  # the Python name the models also accept
]


@st.composite
def messages(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly well-formed messages of every type, with a few fields anything at all."""
    kind = draw(st.sampled_from([*MESSAGE_TYPES, "purchase", None]))
    message: dict[str, Any] = {"messageId": draw(st.uuids()).hex}
    if kind is not None:
        message["type"] = kind
    message[draw(st.sampled_from(["userId", "anonymousId"]))] = draw(
        st.one_of(st.sampled_from(["u1", "a-81"]), st.integers(0, 99))
    )
    if draw(st.booleans()):
        message["anonymousId"] = "a-81"
    extras: dict[str, dict[str, Any]] = {
        "track": {"event": "Order Completed", "properties": {"total": 42.5}},
        "identify": {"traits": {"email": "mei@example.com"}},
        "page": {"name": "Pricing", "category": "Docs", "properties": {"url": "/p"}},
        "screen": {"name": "Wallet"},
        "group": {"groupId": "acme", "traits": {"plan": "pro"}},
        "alias": {"userId": "u1", "previousId": "a-81"},
    }
    message.update(extras.get(kind or "", {}))
    if draw(st.booleans()):
        message["timestamp"] = draw(times)
    if draw(st.booleans()):
        message["sentAt"] = draw(times)
    if draw(st.booleans()):
        message["context"] = {"traits": {"city": "Lyon"}, "ip": "203.0.113.7"}
    for key in draw(st.lists(st.sampled_from(KEYS), max_size=3)):
        message[key] = draw(values)
    return message


def by_models(
    raw: dict[str, Any], kind: str | None, **batch: Any
) -> IncomingEvent | MessageRejected:
    try:
        message = parse_message(raw, None if kind is None else MESSAGE_TYPES[kind])
    except MessageRejected as exc:
        return exc
    return normalise(message, received_at=RECEIVED, source_id="src", **batch)


def check(raw: dict[str, Any], kind: str | None, **batch: Any) -> IncomingEvent | None:
    fast = fast_read.read(raw, kind, received_at=RECEIVED, source_id="src", **batch)
    expected = by_models(raw, kind, **batch)
    if fast is None:
        return None
    assert not isinstance(expected, MessageRejected), (raw, expected.message)
    if "messageId" not in raw or raw["messageId"] is None:
        # A message without an id gets a random one on either path.
        expected = expected.model_copy(update={"message_id": fast.message_id})
    assert fast == expected
    return fast


@PROPERTIES
@given(messages())
def test_a_batch_message_is_read_as_the_models_read_it(raw: dict[str, Any]) -> None:
    check(raw, None)


@PROPERTIES
@given(messages(), st.sampled_from(list(MESSAGE_TYPES)))
def test_a_single_message_is_read_as_its_endpoint_reads_it(raw: dict[str, Any], kind: str) -> None:
    check(raw, kind)


@PROPERTIES
@given(messages(), st.one_of(st.none(), st.just(RECEIVED - timedelta(minutes=3))))
def test_the_batch_context_and_sent_time_apply_as_in_the_models(
    raw: dict[str, Any], sent_at: datetime | None
) -> None:
    shared = {"locale": "zh-TW", "traits": {"plan": "free"}, "ip": "198.51.100.1"}
    check(raw, None, sent_at=sent_at, shared_context=shared)


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "track", "userId": "u1", "event": "Product Viewed", "properties": {"sku": 1}},
        {"type": "identify", "userId": 42, "anonymousId": "a-1", "traits": {"age": 31}},
        {"type": "page", "anonymousId": "a-1", "name": "Home", "properties": None},
        {"type": "screen", "userId": "u1", "context": {"device": {"type": "ios"}}},
        {"type": "group", "userId": "u1", "groupId": 7, "traits": {"plan": "pro"}},
        {"type": "alias", "userId": "u1", "previousId": "a-1"},
        {
            "type": "track",
            "userId": "u1",
            "event": "Order Completed",
            "timestamp": "2025-06-01T11:58:00.123Z",
            "sentAt": "2025-06-01T11:59:00Z",
            "originalTimestamp": "2025-06-01T11:00:00+08:00",
            "integrations": {"All": True},
            "_metadata": {"bundled": []},
            "writeKey": "wk",
        },
    ],
)
def test_what_the_sdks_send_takes_the_fast_path(raw: dict[str, Any]) -> None:
    raw = {**raw, "messageId": str(uuid.uuid4())}
    assert check(raw, None) is not None


@pytest.mark.parametrize(
    "raw",
    [
        {"type": "track", "userId": " u1 ", "event": "A"},  # trimmed by the models
        {"type": "track", "userId": "u1"},  # no event: the models say so
        {"type": "track", "user_id": "u1", "event": "A"},  # the Python name
        {"type": "track", "userId": "u1", "event": "A", "timestamp": "31/12/2024"},
        {"type": "track", "userId": True, "event": "A"},
        {"type": "track", "userId": "u1", "event": "A", "messageId": 7},
        {"type": None, "userId": "u1", "event": "A"},
        {"type": "alias", "anonymousId": "a-1", "previousId": "a-2"},
    ],
)
def test_anything_unusual_is_left_to_the_models(raw: dict[str, Any]) -> None:
    assert fast_read.read(raw, None, received_at=RECEIVED) is None


sizes = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**30), max_value=10**30),
        st.floats(allow_nan=True, allow_infinity=True),
        st.text(alphabet=st.characters(codec="utf-8"), max_size=40),
        st.sampled_from(["\x01" * 20, "王" * 10, "\u2028", '"\\']),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=5), inner, max_size=4)
    ),
    max_leaves=20,
)


@PROPERTIES
@given(sizes, st.integers(min_value=-40, max_value=40))
def test_the_quick_size_check_agrees_with_the_exact_measure(value: Any, offset: int) -> None:
    raw: dict[str, Any] = {"type": "track", "properties": {"value": value, "pad": ""}}
    # Padded to just around the limit, where the exact measure decides.
    raw["properties"]["pad"] = "x" * max(0, MAX_MESSAGE_BYTES + offset - message_size(raw))
    assert within_limit(raw) == (message_size(raw) <= MAX_MESSAGE_BYTES)
    small = {"type": "track", "properties": {"value": value}}
    assert within_limit(small) == (message_size(small) <= MAX_MESSAGE_BYTES)


@pytest.mark.parametrize("filler", [math.inf, 1e16, 10**25, "\x01", "王"])
def test_the_limit_is_exact_for_what_orjson_writes_differently(filler: Any) -> None:
    # orjson writes infinity as null, 1e16 without a plus sign, and cannot write 10**25: the
    # size that counts is json's, to the byte.
    raw: dict[str, Any] = {"type": "track", "properties": {"values": [filler] * 1000, "pad": ""}}
    raw["properties"]["pad"] = "x" * (MAX_MESSAGE_BYTES - message_size(raw))
    assert message_size(raw) == MAX_MESSAGE_BYTES and within_limit(raw)
    raw["properties"]["pad"] += "x"
    assert not within_limit(raw)
