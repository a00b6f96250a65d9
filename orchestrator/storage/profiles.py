"""Profile writes made by journeys: set and increment traits, add tags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import asyncpg


async def traits(conn: asyncpg.Connection | asyncpg.Pool, customer_id: str) -> dict[str, Any]:
    found: dict[str, Any] | None = await conn.fetchval(
        "SELECT traits FROM profiles WHERE customer_id = $1", customer_id
    )
    return found or {}


async def update_traits(
    conn: asyncpg.Connection,
    *,
    customer_id: str,
    set_traits: Mapping[str, Any],
    increment: Mapping[str, int | float],
    tags: Sequence[str],
) -> dict[str, Any]:
    """Apply one update atomically (the row is locked) and return the new traits.

    Dotted names (``loyalty.points``) address nested traits, as conditions read them.

    A trait to increment that is missing or not a number counts from zero; tags are a list
    trait ``tags`` that never holds the same tag twice.
    """
    async with conn.transaction():
        await conn.execute(
            "INSERT INTO profiles (customer_id) VALUES ($1) ON CONFLICT DO NOTHING", customer_id
        )
        current: dict[str, Any] = await conn.fetchval(
            "SELECT traits FROM profiles WHERE customer_id = $1 FOR UPDATE", customer_id
        )
        updated = dict(current)
        for name, value in set_traits.items():
            _put(updated, name, value)
        for name, amount in increment.items():
            value = _get(updated, name)
            base = value if isinstance(value, int | float) and not isinstance(value, bool) else 0
            _put(updated, name, base + amount)
        if tags:
            existing = updated.get("tags")
            held = [t for t in existing if isinstance(t, str)] if isinstance(existing, list) else []
            updated["tags"] = held + [t for t in tags if t not in held]
        await conn.execute(
            "UPDATE profiles SET traits = $2, updated_at = now() WHERE customer_id = $1",
            customer_id,
            updated,
        )
    return updated


def _get(traits: dict[str, Any], path: str) -> Any:
    value: Any = traits
    for part in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    return value


def _put(traits: dict[str, Any], path: str, value: Any) -> None:
    """Set a dotted path (``address.city``) as nested objects, as conditions read it."""
    *parents, last = path.split(".")
    target = traits
    for part in parents:
        child = target.get(part)
        if not isinstance(child, dict):
            child = {}
        child = dict(child)
        target[part] = child
        target = child
    target[last] = value
