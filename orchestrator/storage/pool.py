"""Connections with JSON codecs, so jsonb columns read and write plain Python values."""

from __future__ import annotations

import json
from typing import Any

import asyncpg

Pool = asyncpg.Pool


async def _init_connection(conn: asyncpg.Connection) -> None:
    for kind in ("json", "jsonb"):
        await conn.set_type_codec(kind, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def create_pool(url: str, *, min_size: int = 1, max_size: int = 10) -> asyncpg.Pool:
    """Open a pool; every connection decodes jsonb to Python values."""
    pool: Any = await asyncpg.create_pool(
        url, min_size=min_size, max_size=max_size, init=_init_connection
    )
    return pool


async def connect(url: str) -> asyncpg.Connection:
    """One connection with the same codecs as the pool (for LISTEN and migrations)."""
    conn: asyncpg.Connection = await asyncpg.connect(url)
    await _init_connection(conn)
    return conn
