"""Journey durations: whole seconds, or text such as ``90s``, ``15m``, ``2h``, ``3d``, ``1d12h``."""

from __future__ import annotations

import re

UNITS: dict[str, int] = {"w": 7 * 86400, "d": 86400, "h": 3600, "m": 60, "s": 1}

# Ten years: far beyond any sensible wait, yet small enough that timers never overflow.
MAX_SECONDS = 3650 * 86400

# Units largest first, each at most once, lowercase only (so "m" can never be read as "month").
_TEXT = re.compile(r"(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?")

_EXPECTED = "a duration is whole seconds or text like 90s, 15m, 2h, 3d, 1w or 1d12h"


class DurationError(ValueError):
    """A value that is not a valid duration; the message says what was expected."""


def parse_duration(value: object) -> int:
    """Return ``value`` as whole seconds, or raise ``DurationError``."""
    # YAML reads yes/no/on/off as booleans, and bool is an int subclass: never a duration.
    if isinstance(value, bool):
        raise DurationError(f"{_EXPECTED}, got {value!r}")
    if isinstance(value, int):
        seconds = value
    elif isinstance(value, str):
        seconds = _parse_text(value)
    else:
        raise DurationError(f"{_EXPECTED}, got {value!r}")
    if seconds < 0:
        raise DurationError(f"a duration must not be negative, got {value!r}")
    if seconds > MAX_SECONDS:
        raise DurationError(f"a duration must be at most {MAX_SECONDS // 86400}d")
    return seconds


def _parse_text(text: str) -> int:
    stripped = text.strip()
    found = _TEXT.fullmatch(stripped) if stripped else None
    if found is None:
        raise DurationError(f"{_EXPECTED}, got {text!r}")
    amounts = (int(group) if group else 0 for group in found.groups())
    return sum(amount * unit for amount, unit in zip(amounts, UNITS.values(), strict=True))


def format_duration(seconds: int) -> str:
    """Render seconds in the shortest text ``parse_duration`` reads back (``0`` gives ``0s``)."""
    if seconds == 0:
        return "0s"
    parts: list[str] = []
    for suffix, unit in UNITS.items():
        amount, seconds = divmod(seconds, unit)
        if amount:
            parts.append(f"{amount}{suffix}")
    return "".join(parts)
