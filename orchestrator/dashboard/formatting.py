"""How numbers (and exit reasons) read on the dashboard, and the keys that tie a shown number
to its live value.

The page and the live stream format through these functions only, so a number updated by
the stream reads exactly like the one the server rendered.
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Final, Literal

NONE: Final = "\u2013"  # an en dash: no value yet (no trials, no conversions)


def count(value: int) -> str:
    return f"{value:,}"


def customers(value: int) -> str:
    """``1 customer``, ``1,204 customers``."""
    return f"{count(value)} customer{'' if value == 1 else 's'}"


def rate(successes: int, trials: int) -> str:
    """``successes / trials`` as a percentage with one decimal; a dash without trials."""
    if trials <= 0:
        return NONE
    return percent(successes / trials)


def percent(share: float) -> str:
    return f"{share * 100:.1f}%"


def share(value: float | None) -> str:
    """A proportion already divided (``0.8``) as a percentage; a dash for none."""
    return NONE if value is None else percent(value)


def interval(low: float, high: float) -> str:
    """A rate's interval: ``69.2\u201387.7%``."""
    return f"{low * 100:.1f}\u2013{high * 100:.1f}%"


def points(difference: float | None) -> str:
    """A difference of two rates in percentage points, signed: ``+20.0 pts``."""
    return NONE if difference is None else f"{difference * 100:+.1f} pts"


def points_interval(low: float | None, high: float | None) -> str:
    """The interval of a difference: ``+5.2 to +33.4 pts``."""
    if low is None or high is None:
        return NONE
    return f"{low * 100:+.1f} to {high * 100:+.1f} pts"


def p_value(value: float | None) -> str:
    """Three decimals, or ``< 0.001`` below that; a dash when no test could be made."""
    if value is None:
        return NONE
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def score(value: float | None) -> str:
    """An average answer with one decimal; a dash without answers."""
    return NONE if value is None else f"{value:.1f}"


def nps(value: float | None) -> str:
    """A Net Promoter Score, from -100 to 100, signed and whole: ``+20``."""
    return NONE if value is None else f"{round(value):+d}"


HEAT_LEVELS: Final = 5


def heat(count: int, total: int) -> str:
    """The shading class of a table cell by ``count / total``: ``heat-0`` for none, then one
    level per fifth up to ``heat-5`` (the cell also states its number)."""
    if total <= 0 or count <= 0:
        return "heat-0"
    return f"heat-{max(1, min(HEAT_LEVELS, math.ceil(count / total * HEAT_LEVELS)))}"


def duration(seconds: float | None) -> str:
    """``45s``, ``12m``, ``2h 5m``, ``3d 4h``: the two largest units, a dash for none."""
    if seconds is None:
        return NONE
    whole = round(seconds)
    if whole < 60:
        return f"{whole}s"
    minutes, _ = divmod(whole, 60)
    hours, minutes = divmod(minutes, 60)
    days, hours = divmod(hours, 24)
    if days:
        return f"{days}d {hours}h" if hours else f"{days}d"
    if hours:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    return f"{minutes}m"


def moment(value: datetime | None) -> str:
    """A time in UTC to the minute, the zone said."""
    if value is None:
        return NONE
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def value(found: Any) -> str:
    """A trait or metric as text: strings as they are, anything else as compact JSON."""
    if isinstance(found, str):
        return found
    return json.dumps(found, ensure_ascii=False, separators=(", ", ": "), default=str)


def waiting(found: dict[str, Any] | None) -> str:
    """What a run waits for (``customers.view.describe_wait``), in a few words."""
    if not found:
        return NONE
    if found.get("kind") == "wait_for":
        limit = found.get("timeout_seconds")
        text = f"the event \u201c{found.get('event')}\u201d"
        return text + (f", for up to {duration(limit)}" if limit else "")
    if found.get("kind") == "wait":
        if "until_time" in found:
            return f"{found['until_time'].get('at')} local time"
        if "until_date" in found:
            return f"the date in the trait \u201c{found['until_date'].get('trait')}\u201d"
        return f"a delay of {duration(found.get('seconds'))}"
    return str(found.get("kind", NONE))


# --- words ----------------------------------------------------------------------------------

# The exit reasons of ``storage.exits.EXIT_REASONS`` in a marketer's words (docs/reports.md).
REASON_LABELS: Final[dict[str, str]] = {
    "timeout": "timed out (max dwell)",
    "exit_rule": "exit event",
    "exit_step": "exit step",
    "erasure": "erased",
    "merge": "merged with another customer",
    "archived": "journey archived",
    "no_goal": "moved on (stage has no goal)",
    "goto": "jumped away (goto)",
    "migration": "migrated to another version",
    "unknown": "reason unknown",
}
HOLDOUT_LABEL: Final = "held out (no messages)"


def reason_label(reason: str) -> str:
    """Why customers left, in words; ``holdout`` for held-out customers, whatever their reason."""
    if reason == "holdout":
        return HOLDOUT_LABEL
    return REASON_LABELS.get(reason, reason)


# --- live keys ------------------------------------------------------------------------------
# A shown number carries ``data-live="<key>"``; the live stream sends ``{key: text}``.


def journey_key(field: str) -> str:
    return f"journey:{field}"


def stage_key(stage: str, field: str) -> str:
    return f"stage:{stage}:{field}"


def step_key(step_id: str, field: str) -> str:
    return f"step:{step_id}:{field}"


def observed_key(touchpoint_id: str, field: str) -> str:
    """An observed touchpoint's number: its own prefix, as its id may be an older version's
    send step's."""
    return f"observed:{touchpoint_id}:{field}"


def kpi_key(touchpoint_id: str, kind: Literal["message", "observed"]) -> Callable[[str], str]:
    """The live key of each of a touchpoint's KPI fields, by its kind."""
    if kind == "observed":
        return functools.partial(observed_key, touchpoint_id)
    return functools.partial(step_key, touchpoint_id)


def funnel_key(stage: str, field: str) -> str:
    return f"funnel:{stage}:{field}"


LAYOUT_KEY: Final = "layout"
