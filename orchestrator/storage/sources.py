"""Write keys per source: created once, stored only as SHA-256 digests, revocable at once.

A source is one sender of events (a web site, an app, a back office), with its own write key.
Its id is generated (``src_`` and 16 hex digits) rather than derived from the name, so names
may repeat or change, a source created again after a revocation gets a fresh id, and no source
can ever take the configured key's id (``default``). The plaintext key is returned by
`create_source` and never stored: the table keeps its digest and its first characters (a hint
to tell keys apart).
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime

import asyncpg

KEY_PREFIX = "wk_"
# "wk_" and four random characters: enough to tell keys apart in a list, while the 28 random
# characters left (168 bits) keep a hint useless for guessing.
HINT_LENGTH = len(KEY_PREFIX) + 4
ID_PREFIX = "src_"

_COLUMNS = "source_id, name, key_hint, created_at, revoked_at"


@dataclass(frozen=True)
class Source:
    """A source as stored, without its key (only the hint)."""

    source_id: str
    name: str
    key_hint: str
    created_at: datetime
    revoked_at: datetime | None

    @property
    def revoked(self) -> bool:
        return self.revoked_at is not None


def hash_key(key: str) -> str:
    """The SHA-256 hex digest stored in place of a write key.

    A fast digest is right here, unlike for passwords: the keys are 192 random bits, so there
    is no dictionary to try and nothing a slow hash (bcrypt, argon2) would protect, while a
    deterministic digest lets every request find its source with one indexed lookup.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def _source(row: asyncpg.Record) -> Source:
    return Source(
        source_id=row["source_id"],
        name=row["name"],
        key_hint=row["key_hint"],
        created_at=row["created_at"],
        revoked_at=row["revoked_at"],
    )


async def create_source(
    conn: asyncpg.Connection | asyncpg.Pool, *, name: str
) -> tuple[Source, str]:
    """A new source and its plaintext write key, which nothing can show again."""
    key = KEY_PREFIX + secrets.token_urlsafe(24)
    row = await conn.fetchrow(
        f"INSERT INTO sources (source_id, name, key_hash, key_hint) VALUES ($1, $2, $3, $4)"
        f" RETURNING {_COLUMNS}",
        ID_PREFIX + secrets.token_hex(8),
        name,
        hash_key(key),
        key[:HINT_LENGTH],
    )
    assert row is not None
    return _source(row), key


async def list_sources(conn: asyncpg.Connection | asyncpg.Pool) -> list[Source]:
    """Every source, revoked ones included, oldest first."""
    rows = await conn.fetch(f"SELECT {_COLUMNS} FROM sources ORDER BY created_at, source_id")
    return [_source(row) for row in rows]


async def get_source(conn: asyncpg.Connection | asyncpg.Pool, *, source_id: str) -> Source | None:
    row = await conn.fetchrow(f"SELECT {_COLUMNS} FROM sources WHERE source_id = $1", source_id)
    return None if row is None else _source(row)


async def revoke_source(
    conn: asyncpg.Connection | asyncpg.Pool, *, source_id: str
) -> Source | None:
    """Revoke the source's key; None for an unknown id.

    Revoking again changes nothing and returns the first revocation time, so a retried
    request gets the same answer.
    """
    row = await conn.fetchrow(
        f"UPDATE sources SET revoked_at = coalesce(revoked_at, now()) WHERE source_id = $1"
        f" RETURNING {_COLUMNS}",
        source_id,
    )
    return None if row is None else _source(row)


async def source_for_key(conn: asyncpg.Connection | asyncpg.Pool, *, key: str) -> str | None:
    """The id of the live source this write key belongs to; None if unknown or revoked.

    Read on every request (one lookup on the unique index of ``key_hash``), never cached,
    so a revocation takes effect at once in every process.
    """
    found: str | None = await conn.fetchval(
        "SELECT source_id FROM sources WHERE key_hash = $1 AND revoked_at IS NULL",
        hash_key(key),
    )
    return found
