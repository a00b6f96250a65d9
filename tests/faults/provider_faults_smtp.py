"""An SMTP server (aiosmtpd, real SMTP on a loopback port) that misbehaves for chosen recipients.

Faults are queued per recipient address and met at the stage they belong to:

- ``Refuse(reply)`` at ``RCPT TO``: a ``4xx`` (try later) or ``5xx`` (never) reply;
- ``Stall("rcpt")``: no reply to ``RCPT TO``, ever: the message was never handed over;
- ``Stall("data")``: the whole message is read and kept, then no reply to it, ever: the
  server holds the message while the client cannot know.

A stalled session is let go when the server stops. Every ``RCPT TO`` is noted with its time, so
tests count attempts per recipient and the messages kept for each.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import defaultdict, deque
from dataclasses import dataclass
from typing import Any, Literal, Self

from aiosmtpd.controller import Controller

from ..channels.provider_servers import unused_port


@dataclass(frozen=True)
class Refuse:
    """Answer ``RCPT TO`` with ``reply``, e.g. ``"451 4.7.1 Try again later"``."""

    reply: str
    stage: Literal["rcpt"] = "rcpt"


@dataclass(frozen=True)
class Stall:
    """Never answer, at ``RCPT TO`` or after reading the message (``DATA``)."""

    stage: Literal["rcpt", "data"]


SmtpFault = Refuse | Stall


class _Handler:
    """aiosmtpd hooks (found by name)."""

    def __init__(self, server: FaultySmtpServer) -> None:
        self._server = server

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        self._server._arrived(address)
        fault = self._server._take(address, "rcpt")
        if isinstance(fault, Refuse):
            return fault.reply
        if isinstance(fault, Stall):
            await self._server._stalled()
            return "421 4.3.2 Shutting down"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        raw: bytes = envelope.original_content
        stall = False
        for address in envelope.rcpt_tos:
            self._server._keep(address, raw)
            stall |= isinstance(self._server._take(address, "data"), Stall)
        if stall:
            await self._server._stalled()
        return "250 2.0.0 Ok: queued"


class FaultySmtpServer:
    """A real SMTP server whose faults are queued per recipient (``fail``)."""

    def __init__(self) -> None:
        self.port = unused_port()
        self._lock = threading.Lock()
        # Waited on in the server's own loop (its thread), set from the test's.
        self._released = asyncio.Event()
        self._queued: dict[str, deque[SmtpFault]] = defaultdict(deque)
        self._arrivals: dict[str, list[float]] = defaultdict(list)
        self._kept: dict[str, list[bytes]] = defaultdict(list)
        self._controller = Controller(
            _Handler(self), hostname="127.0.0.1", port=self.port, server_hostname="faults.local"
        )

    def fail(self, address: str, *faults: SmtpFault) -> None:
        """Meet the next sends to ``address`` with ``faults``, in order."""
        with self._lock:
            self._queued[address.lower()].extend(faults)

    def attempts(self, address: str) -> list[float]:
        """When each ``RCPT TO`` for ``address`` arrived (``time.monotonic()``)."""
        with self._lock:
            return list(self._arrivals.get(address.lower(), []))

    def kept(self, address: str) -> int:
        """Messages for ``address`` the server read to the end (whether it answered or not)."""
        with self._lock:
            return len(self._kept.get(address.lower(), []))

    def _arrived(self, address: str) -> None:
        with self._lock:
            self._arrivals[address.lower()].append(time.monotonic())

    def _take(self, address: str, stage: str) -> SmtpFault | None:
        with self._lock:
            queue = self._queued.get(address.lower())
            if queue and queue[0].stage == stage:
                return queue.popleft()
            return None

    def _keep(self, address: str, raw: bytes) -> None:
        with self._lock:
            self._kept[address.lower()].append(raw)

    async def _stalled(self) -> None:
        await self._released.wait()

    def __enter__(self) -> Self:
        self._controller.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._controller.loop.call_soon_threadsafe(self._released.set)
        self._controller.stop()
