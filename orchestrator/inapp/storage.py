"""In-app messages in Postgres: stored once per send, listed for a customer, read, acknowledged.

A message is *pending* until the customer acknowledges it (dismisses it, or acts on it) or it
expires; reading it (the app showed it) keeps it pending but moves it after the unread ones.
Listings page by keyset in that order, unread first, newest first, so a message arriving
between two pages never shifts the rest.

Every function takes ``customer_ids``: the customer's canonical id and its aliases, so
messages stored before two identities merged stay visible to the merged customer, and no one
else's message can be read or changed through another customer's ids.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from journeyman.orchestrator.customers.listing import PageRequest, encode_cursor

DEFAULT_LIMIT = 20
MAX_LIMIT = 100
# A message's title and body are rendered templates; past these they are not messages.
MAX_TITLE_CHARS = 1_000
MAX_BODY_CHARS = 20_000

_COLUMNS = (
    "id, customer_id, send_key, title, body, data, created_at, read_at, acknowledged_at, expires_at"
)
# The listing order, as a keyset: (read?, created_at, id), unread first, newest first.
_ORDER = "(read_at IS NOT NULL), created_at DESC, id DESC"
_AFTER = (
    "($3::boolean IS NULL OR (read_at IS NOT NULL) > $3"
    " OR ((read_at IS NOT NULL) = $3 AND (created_at, id) < ($4, $5)))"
)


@dataclass(frozen=True)
class InAppMessage:
    id: str
    customer_id: str
    send_key: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    acknowledged_at: datetime | None
    expires_at: datetime | None


@dataclass(frozen=True)
class Stored:
    message: InAppMessage
    created: bool  # False: a message with this send key was already stored (a retry)


@dataclass(frozen=True)
class MessagePage:
    messages: list[InAppMessage]
    next: str | None  # the cursor for the following page; None on the last one


class MessageError(ValueError):
    """A message that cannot be stored as given (too long, expired before it was made)."""


def _message(row: Mapping[str, Any]) -> InAppMessage:
    return InAppMessage(**{**dict(row), "id": str(row["id"])})


def message_id(value: str) -> uuid.UUID | None:
    """``value`` as a message id; None when it cannot be one (so it matches no message)."""
    try:
        return uuid.UUID(value)
    except ValueError:
        return None


async def store(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    customer_id: str,
    send_key: str,
    title: str,
    body: str,
    data: Mapping[str, Any] | None = None,
    expires_at: datetime | None = None,
    now: datetime | None = None,
) -> Stored:
    """Store a message for a customer, once per ``send_key``: a retry gets the first one back.

    ``customer_id`` is the customer's canonical id (``customers.identity.canonical``).
    """
    if len(title) > MAX_TITLE_CHARS or len(body) > MAX_BODY_CHARS:
        raise MessageError(
            f"an in-app message has at most {MAX_TITLE_CHARS} characters of title and"
            f" {MAX_BODY_CHARS} of body"
        )
    if expires_at is not None and expires_at.tzinfo is None:
        raise MessageError("expires_at needs a time zone")
    row = await conn.fetchrow(
        "INSERT INTO in_app_messages (customer_id, send_key, title, body, data, expires_at,"
        " created_at) VALUES ($1, $2, $3, $4, $5, $6, coalesce($7::timestamptz, now()))"
        f" ON CONFLICT (send_key) DO NOTHING RETURNING {_COLUMNS}",
        customer_id,
        send_key,
        title,
        body,
        dict(data or {}),
        expires_at,
        now,
    )
    if row is not None:
        return Stored(_message(row), created=True)
    existing = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM in_app_messages WHERE send_key = $1", send_key
    )
    assert existing is not None  # unique key conflicted, and rows are never updated away
    return Stored(_message(existing), created=False)


async def list_for_customer(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    customer_ids: Sequence[str],
    request: PageRequest,
    pending_only: bool = True,
    now: datetime | None = None,
) -> MessagePage:
    """A customer's messages, unread first, newest first, one keyset page at a time.

    ``pending_only``: only messages neither acknowledged nor expired (at ``now``).
    """
    read, created_at, last_id = _after(request)
    args: list[Any] = [list(customer_ids), request.limit + 1, read, created_at, last_id]
    where = f"customer_id = ANY($1::text[]) AND {_AFTER}"
    if pending_only:
        where += (
            " AND acknowledged_at IS NULL"
            " AND (expires_at IS NULL OR expires_at > coalesce($6::timestamptz, now()))"
        )
        args.append(now)
    rows = await conn.fetch(
        f"SELECT {_COLUMNS} FROM in_app_messages WHERE {where} ORDER BY {_ORDER} LIMIT $2", *args
    )
    messages = [_message(row) for row in rows[: request.limit]]
    cursor = None
    if len(rows) > request.limit:
        last = messages[-1]
        cursor = encode_cursor(
            ("1" if last.read_at is not None else "0", last.created_at.isoformat(), last.id)
        )
    return MessagePage(messages, cursor)


def _after(request: PageRequest) -> tuple[bool | None, datetime | None, uuid.UUID | None]:
    if request.after is None:
        return None, None, None
    read, created_at, last_id = request.after
    try:
        return read == "1", datetime.fromisoformat(created_at), uuid.UUID(last_id)
    except ValueError:
        raise MessageError(
            "after is not a cursor from this list: pass the 'next' value of the previous page"
        ) from None


async def get(
    conn: asyncpg.Connection | asyncpg.Pool, *, customer_ids: Sequence[str], id: str
) -> InAppMessage | None:
    """One of the customer's messages; None when it is not theirs or does not exist."""
    found = message_id(id)
    if found is None:
        return None
    row = await conn.fetchrow(
        f"SELECT {_COLUMNS} FROM in_app_messages WHERE id = $1 AND customer_id = ANY($2::text[])",
        found,
        list(customer_ids),
    )
    return None if row is None else _message(row)


async def mark_read(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    customer_ids: Sequence[str],
    id: str,
    at: datetime | None = None,
) -> InAppMessage | None:
    """Record that the customer saw the message (the first time counts); None when it is
    not one of theirs."""
    return await _stamp(conn, "read_at = coalesce(read_at, $3)", customer_ids, id, at)


async def acknowledge(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    customer_ids: Sequence[str],
    id: str,
    at: datetime | None = None,
) -> InAppMessage | None:
    """Record that the customer dismissed or acted on the message (it is no longer pending,
    and counts as read); the first time counts. None when it is not one of theirs."""
    return await _stamp(
        conn,
        "acknowledged_at = coalesce(acknowledged_at, $3), read_at = coalesce(read_at, $3)",
        customer_ids,
        id,
        at,
    )


async def _stamp(
    conn: asyncpg.Connection | asyncpg.Pool,
    assignments: str,
    customer_ids: Sequence[str],
    id: str,
    at: datetime | None,
) -> InAppMessage | None:
    found = message_id(id)
    if found is None:
        return None
    # ``$3`` is the time to record: the one given, else the database's now.
    stamped = assignments.replace("$3", "coalesce($3::timestamptz, now())")
    row = await conn.fetchrow(
        f"UPDATE in_app_messages SET {stamped}"
        f" WHERE id = $1 AND customer_id = ANY($2::text[]) RETURNING {_COLUMNS}",
        found,
        list(customer_ids),
        at,
    )
    return None if row is None else _message(row)


async def erase(conn: asyncpg.Connection | asyncpg.Pool, *, customer_ids: Sequence[str]) -> int:
    """Delete every message of a customer (for erasure); returns how many went."""
    status: str = await conn.execute(
        "DELETE FROM in_app_messages WHERE customer_id = ANY($1::text[])", list(customer_ids)
    )
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0
