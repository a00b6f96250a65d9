"""Reading request bodies within the documented limit, gzip included.

The body is read as JSON whatever its ``Content-Type``: browsers send beacons as ``text/plain``
(a "simple" request needs no CORS preflight), and ``curl -d`` sends form encoding unless told
otherwise. JSON is UTF-8 by its RFC, so a declared charset is not needed either.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

import orjson
from fastapi import Request

from .errors import ApiError


def _too_large(limit: int) -> ApiError:
    return ApiError(413, "payload_too_large", f"request body is larger than {limit} bytes")


async def read_json(request: Request, *, limit: int, refuse_nul: bool = False) -> Any:
    """The JSON body, refusing more than ``limit`` bytes before or after decompression.

    ``application/json``, ``text/plain`` (beacons) or any other declared type: only the bytes
    decide; a body that is not JSON is a 400. ``refuse_nul``: a body holding the character
    U+0000 anywhere (a value or a key) is a 400 naming where (``nul_error``).
    """
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise _too_large(limit)
    raw = bytearray()
    async for chunk in request.stream():
        raw.extend(chunk)
        if len(raw) > limit:
            raise _too_large(limit)
    data = bytes(raw)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        # Bounded decompression: a small gzip bomb must not expand past the limit in memory.
        inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        try:
            data = inflater.decompress(data, limit + 1)
        except zlib.error:
            raise ApiError(400, "invalid_request", "body is not valid gzip") from None
        if len(data) > limit or inflater.unconsumed_tail:
            raise _too_large(limit)
    if not data.strip():
        raise ApiError(400, "invalid_request", "request body is empty")
    value = parse_json(data)
    # JSON can carry a NUL only as an escape (a raw one is not JSON), so a body without a
    # backslash has none: that search is a memchr, about 5 µs for 50 kB, where searching for
    # the escape itself takes some 50 times longer. The JSON text "\\u0000" (an escaped
    # backslash, then "u0000") also matches the escape; the walk then finds no NUL.
    if refuse_nul and b"\\" in data and _ESCAPED_NUL in data:
        where = nul_at(value)
        if where is not None:
            raise nul_error(where)
    return value


_ESCAPED_NUL = b"\\u0000"


def nul_at(value: Any, path: str = "") -> str | None:
    """Where the first U+0000 in a parsed JSON value is (``batch[2].properties.name``), in
    the notation of field errors; None when there is none. A NUL in a key is shown escaped."""
    if isinstance(value, str):
        return (path or "(body)") if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            name = f"{path}.{key}" if path else key
            if "\x00" in key:
                return name.replace("\x00", "\\u0000")
            found = nul_at(item, name)
            if found is not None:
                return found
    elif isinstance(value, list):
        for position, item in enumerate(value):
            found = nul_at(item, f"{path}[{position}]")
            if found is not None:
                return found
    return None


def nul_error(where: str) -> ApiError:
    """The 400 for a body holding U+0000 at ``where``: Postgres cannot store the character."""
    message = (
        f"{where} holds the character U+0000 (NUL), which cannot be stored;"
        " nothing of this request was stored"
    )
    return ApiError(
        400,
        "invalid_request",
        message,
        fields=[{"field": where, "message": "U+0000 (NUL) is not allowed"}],
    )


# A run of 20 digits may be an integer beyond 64 bits, which orjson reads as a float. Found by
# mapping every digit to "0" and anything else to " " (two passes in C; a regular expression
# takes longer than parsing the body).
_DIGITS_AS_ZERO = bytes(0x30 if 0x30 <= byte <= 0x39 else 0x20 for byte in range(256))
_LONG_NUMBER = b"0" * 20


def parse_json(data: bytes) -> Any:
    """The JSON value of ``data``, as ``json.loads`` reads it; a 400 when it is not JSON.

    orjson reads the usual body several times faster. What it reads differently is left to
    ``json``: integers beyond 64 bits (exact in Python, floats in orjson), and what orjson
    refuses but ``json`` takes (``NaN``, a byte-order mark, UTF-16, lone surrogates).
    """
    if _LONG_NUMBER not in data.translate(_DIGITS_AS_ZERO):
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            pass  # json decides, and words the error
    try:
        return json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, "invalid_request", f"body is not valid JSON: {exc}") from None
