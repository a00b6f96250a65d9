"""Request bodies are read by orjson, yet exactly as ``json`` reads them: big integers, NaN,
byte-order marks and UTF-16 included; what is not JSON is a 400 with json's own words."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyman.orchestrator.api.body import parse_json
from journeyman.orchestrator.api.errors import ApiError

from .conftest import WRITE_KEY, Api

AUTH = (WRITE_KEY, "")

documents = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(min_value=-(10**40), max_value=10**40),
        st.floats(allow_nan=False),
        st.text(),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=5), st.dictionaries(st.text(max_size=8), inner, max_size=5)
    ),
    max_leaves=30,
)


def same(a: Any, b: Any) -> bool:
    """Equal and of the same types all the way down (1 is not 1.0 here)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or repr(a) == repr(b)


@settings(
    max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(documents, st.booleans())
def test_a_body_reads_as_json_reads_it(document: Any, ascii_only: bool) -> None:
    data = json.dumps(document, ensure_ascii=ascii_only).encode()
    assert same(parse_json(data), json.loads(data))


@pytest.mark.parametrize(
    "data",
    [
        b'{"id": 123456789012345678901234567890}',  # beyond 64 bits: exact
        b"[18446744073709551615, -9223372036854775808, 1e400]",
        b'{"score": NaN, "top": Infinity}',
        b'\xef\xbb\xbf{"with": "bom"}',
        '{"utf": "16"}'.encode("utf-16"),
        b'{"lone": "\\ud800"}',
        b'{"a": 1, "a": 2}',
    ],
)
def test_what_orjson_reads_otherwise_is_read_by_json(data: bytes) -> None:
    assert same(parse_json(data), json.loads(data))


@pytest.mark.parametrize("data", [b"{not json", b'{"a": 1,}', b"\xff\xfe\x00", b'"unterminated'])
def test_what_is_not_json_is_a_400_in_jsons_words(data: bytes) -> None:
    with pytest.raises(ApiError) as raised:
        parse_json(data)
    assert raised.value.status == 400
    assert raised.value.message.startswith("body is not valid JSON: ")


async def test_a_big_integer_is_stored_to_the_last_digit(api: Api) -> None:
    body = (
        '{"batch": [{"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "'
        + str(uuid.uuid4())
        + '", "properties": {"order_id": 123456789012345678901234567890, "total": 12.5}}]}'
    )
    response = await api.http.post(
        "/v1/batch", content=body, headers={"Content-Type": "application/json"}, auth=AUTH
    )
    assert response.status_code == 200, response.text
    stored = await api.pool.fetchrow(
        "SELECT properties->>'order_id' AS order_id, properties->'total' AS total FROM events"
    )
    assert stored is not None and stored["order_id"] == "123456789012345678901234567890"
    assert stored["total"] == 12.5
