"""What a message template reads: the same names for every channel and for previews."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def template_context(
    *,
    profile: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    event_name: str | None = None,
    event_properties: Mapping[str, Any] | None = None,
    journey: Mapping[str, Any] | None = None,
    customer_id: str | None = None,
) -> dict[str, Any]:
    """The names a message template reads, the same for every channel and for previews.

    ``profile`` is the customer's traits; ``metrics`` the behavioural metrics as conditions
    read them; ``event`` the triggering event as ``{name, properties}``; ``journey``
    ``{id, name, stage, step}``; ``customer_id`` the customer's id.
    """
    return {
        "profile": dict(profile),
        "metrics": dict(metrics or {}),
        "event": {"name": event_name, "properties": dict(event_properties or {})},
        "journey": {
            "id": None,
            "name": None,
            "stage": None,
            "step": None,
            **(journey or {}),
        },
        "customer_id": customer_id,
    }
