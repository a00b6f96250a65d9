"""JSON Schema pieces of the field types and models of journey files.

They describe what the custom validators accept, as closely as patterns allow, for editors and
the published schema (``schema.py``); the compiler stays the judge (templates, time zones, cron
fields, 3650d at most).
"""

from __future__ import annotations

from typing import Any

from pydantic import WithJsonSchema

from .durations import MAX_SECONDS


def _text(pattern: str) -> WithJsonSchema:
    return WithJsonSchema({"type": "string", "pattern": pattern})


def _scalar_json() -> dict[str, Any]:
    return {"type": ["string", "number", "boolean", "null"]}


def _duration_json(minimum: int, *, signed: bool = False) -> WithJsonSchema:
    units = r"(\d+w)?(\d+d)?(\d+h)?(\d+m)?(\d+s)?"
    sign = r"(-\s*)?" if signed else ""
    nonzero = r"(?=\S*[1-9])" if minimum else ""  # "0s" and "0d0h" are zero too
    return WithJsonSchema(
        {
            "anyOf": [
                {
                    "type": "integer",
                    "minimum": -MAX_SECONDS if signed else minimum,
                    "maximum": MAX_SECONDS,
                },
                {"type": "string", "pattern": rf"^\s*{sign}{nonzero}(?=\d){units}\s*$"},
            ]
        }
    )


def _cron_json() -> WithJsonSchema:
    part = r"(\*|[A-Za-z0-9]+(-[A-Za-z0-9]+)?)(/\d+)?"
    field = rf"{part}(,{part})*"
    return _text(rf"^\s*{field}(\s+{field}){{4}}\s*$")


def _any_case(word: str) -> str:
    """A regular expression matching ``word`` in any case (JSON Schema patterns have no flags)."""
    # Header names here hold letters and '-', which needs no escape outside a class.
    return "".join(f"[{c.upper()}{c.lower()}]" if c.isalpha() else c for c in word)


def _present(key: str) -> dict[str, Any]:
    """JSON Schema: ``key`` is given and not null (a null counts as leaving it out)."""
    return {"required": [key], "properties": {key: {"not": {"type": "null"}}}}


def _not_empty(key: str) -> dict[str, Any]:
    """JSON Schema: ``key`` holds a non-empty list or mapping."""
    return {"required": [key], "properties": {key: {"minItems": 1, "minProperties": 1}}}


_CLOCK_JSON = _text(r"^([01][0-9]|2[0-3]):[0-5][0-9]$")
_NOT_BLANK = r"\S"
_PATH_TEXT = r"^[^.\s]+(\.[^.\s]+)*$"
_PERCENT_TEXT = r"^\s*\+?0*(\d{1,2}(\.\d*)?|\.\d+)\s*%\s*$"
_INSTANT_TEXT = r"^\s*\d{4}-?\d{2}-?\d{2}[T ].*(Z|[+-]\d{2}(:?\d{2}(:?\d{2}(\.\d+)?)?)?)\s*$"
_ONE_LINE = r"^\s*\S([^\n]*\S)?\s*$"
