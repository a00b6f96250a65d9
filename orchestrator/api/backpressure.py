"""Backpressure on ingest: a bound on requests at work, and a 503 instead of an endless queue.

A process takes at most ``limit`` ingest requests at once; the next ones wait their turn (first
come, first served) for a short while, then get ``503`` with ``Retry-After``. A request that
cannot get a database connection within the same short wait, or finds the database away,
gets the same answer. Nothing of such a request was committed (or, when the connection broke
during the commit, it was and the retry's ``messageId`` dedupes it), so a client that retries
loses nothing: every Segment SDK retries a 503.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import deque
from collections.abc import AsyncIterator, Iterator
from typing import Any

import asyncpg

from .errors import ApiError

log = logging.getLogger(__name__)

# Seconds a client is asked to wait: a busy process frees up fast; a database takes longer.
OVERLOADED_RETRY_AFTER = 1
DATABASE_RETRY_AFTER = 5

# Errors that mean "the database cannot take this now", not "this request is wrong". The
# transaction did not commit (40xxx, 53xxx, 57xxx, 08xxx), or could not even start.
DATABASE_UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, unreachable, reset
    TimeoutError,  # no pooled connection within the wait
    asyncpg.exceptions.PostgresConnectionError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.InsufficientResourcesError,  # too many connections, disk full
    asyncpg.exceptions.OperatorInterventionError,  # shutting down, starting up
    asyncpg.exceptions.TransactionRollbackError,  # deadlock, serialization failure
)


class InFlightLimiter:
    """At most ``limit`` holders at once; others wait up to ``wait_seconds``, in order."""

    def __init__(self, limit: int = 64, *, wait_seconds: float = 1.0) -> None:
        if limit < 1:
            raise ValueError("the in-flight limit must be at least 1")
        self.limit = limit
        self.wait_seconds = wait_seconds
        self._free = limit
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def in_flight(self) -> int:
        """Requests holding a slot now."""
        return self.limit - self._free

    @property
    def waiting(self) -> int:
        """Requests queued for a slot now."""
        return sum(1 for waiter in self._waiters if not waiter.done())

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the block; ``ApiError`` 503 when none frees up in time."""
        await self._acquire()
        try:
            yield
        finally:
            self._release()

    async def _acquire(self) -> None:
        if self._free > 0 and not self.waiting:
            self._free -= 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(self.wait_seconds):
                await waiter
        except TimeoutError:
            if waiter.done() and not waiter.cancelled():
                return  # the slot was handed over just as the wait ran out: keep it
            self._discard(waiter)
            raise overloaded(self.limit) from None
        except BaseException:
            if waiter.done() and not waiter.cancelled():
                self._release()  # handed over, but the request is gone: pass it on
            else:
                self._discard(waiter)
            raise

    def _release(self) -> None:
        # Hand the slot straight to the first live waiter, so no newcomer can overtake it.
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return
        self._free += 1

    def _discard(self, waiter: asyncio.Future[None]) -> None:
        with contextlib.suppress(ValueError):
            self._waiters.remove(waiter)


def overloaded(limit: int) -> ApiError:
    return ApiError(
        503,
        "overloaded",
        f"ingest is at its limit of {limit} requests in flight; retry after "
        f"{OVERLOADED_RETRY_AFTER} s (nothing of this request was stored)",
        headers={"Retry-After": str(OVERLOADED_RETRY_AFTER)},
    )


@contextlib.contextmanager
def database_unavailable_is_503() -> Iterator[None]:
    """Turn "the database cannot take this now" into a 503 the client retries."""
    try:
        yield
    except DATABASE_UNAVAILABLE as exc:
        raise _database_unavailable(exc) from None
    except asyncpg.InterfaceError as exc:
        if not _while_unavailable(exc):
            raise  # a misuse of a connection: a bug, not the database's state
        raise _database_unavailable(exc) from None


def _while_unavailable(exc: BaseException) -> bool:
    """Whether ``exc`` was raised while handling a "database unavailable" error, as the
    rollback of a transaction whose connection was just lost is."""
    seen: set[int] = set()
    cause = exc.__cause__ or exc.__context__
    while cause is not None and id(cause) not in seen:
        if isinstance(cause, DATABASE_UNAVAILABLE):
            return True
        seen.add(id(cause))
        cause = cause.__cause__ or cause.__context__
    return False


def _database_unavailable(exc: BaseException) -> ApiError:
    # The type only: connection errors can carry the URL, and with it a password.
    log.warning("ingest: database unavailable (%s); answered 503", type(exc).__name__)
    return ApiError(
        503,
        "database_unavailable",
        f"the database cannot be reached or has no free connection; retry after "
        f"{DATABASE_RETRY_AFTER} s (nothing of this request was stored)",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


class PatientPool:
    """A pool whose ``acquire`` gives up after ``wait_seconds`` (``TimeoutError``).

    Only getting a connection is bounded: a transaction that has started is never cut short
    by this wait, so a wait that runs out has written nothing.
    """

    def __init__(self, pool: asyncpg.Pool, wait_seconds: float) -> None:
        self._pool = pool
        self._wait = wait_seconds

    def acquire(self) -> Any:
        return self._pool.acquire(timeout=self._wait)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._pool, name)
