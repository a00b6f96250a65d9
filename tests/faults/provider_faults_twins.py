"""The providers' local twins, made to misbehave for chosen recipients.

The twins of ``tests/channels`` check every request against the provider's documented shape
and script faults in arrival order. Here the fault is chosen by a key read from the request
itself (the recipient's address, phone number or device token, the webhook's path), so many
sends can run at once, each meeting its own fault. Every twin also notes when each key's
requests arrived, how many messages it kept per key, and the idempotency key each carried.

Faults (``Fault``) reuse the ``tests/channels`` vocabulary:

- ``Reply(status, body, headers)``: answer that, and keep nothing (429 with ``Retry-After``, 500);
- ``Delay(seconds)``: take the message, and answer only after ``seconds`` (past the client's
  timeout, the answer is lost while the provider holds the message);
- ``Hang()``: accept the connection and the request, never answer;
- ``Trickle(seconds)`` (Twilio, FCM and the webhook receiver): take the message and send the
  answer one byte at a time over ``seconds``, so no single read ever waits long;
- ``Endless()`` (the same twins): answer success with a body that never ends (256 KB every
  2 ms), counting what it got to send before the client hung up.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import defaultdict, deque
from collections.abc import AsyncIterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse

from ..channels.messaging_servers import (
    FcmServer,
    LocalServer,
    Recorded,
    TwilioServer,
    WebhookReceiver,
)
from ..channels.provider_servers import (
    Delay,
    Drop,
    Hang,
    PostmarkTwin,
    ProviderTwin,
    Received,
    Reply,
    SendGridTwin,
)


@dataclass(frozen=True)
class Trickle:
    """Take the message, then send the answer one byte at a time, spread over ``seconds``."""

    seconds: float


@dataclass(frozen=True)
class Endless:
    """Answer success with a body that never ends."""


Fault = Reply | Delay | Hang | Trickle | Endless


class _Faults:
    """Faults queued per key, and what each key's requests looked like."""

    def __init__(self) -> None:
        self._queued: dict[str, deque[Fault]] = defaultdict(deque)
        # monotonic arrival times and idempotency keys per key, in arrival order
        self._arrivals: dict[str, list[float]] = defaultdict(list)
        self._tokens: dict[str, list[str | None]] = defaultdict(list)
        self.streamed: dict[str, int] = defaultdict(int)  # bytes of endless answers sent

    def fail(self, key: str, *faults: Fault) -> None:
        """Meet the next requests for ``key`` with ``faults``, in order, then answer normally."""
        self._queued[key].extend(faults)

    def arrived(self, key: str, token: str | None) -> None:
        self._arrivals[key].append(time.monotonic())
        self._tokens[key].append(token)

    def next_fault(self, key: str) -> Fault | None:
        queue = self._queued.get(key)
        return queue.popleft() if queue else None

    def arrivals(self, key: str) -> list[float]:
        """When each request for ``key`` arrived (``time.monotonic()``)."""
        return list(self._arrivals.get(key, []))

    def tokens(self, key: str) -> list[str | None]:
        """The idempotency key each request for ``key`` carried (None: no header)."""
        return list(self._tokens.get(key, []))


# --- SendGrid and Postmark: threaded twins from tests/channels/provider_servers.py ---------


class _KeyedProviderTwin(ProviderTwin):
    """A ``ProviderTwin`` whose faults are chosen per recipient."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.faults = _Faults()

    def key_of(self, body: Any) -> str:
        raise NotImplementedError

    def _key(self, body: Any) -> str:
        try:
            return self.key_of(body)
        except (LookupError, TypeError, AttributeError):
            return ""  # not a body the provider takes: the twin refuses it anyway

    def kept(self, key: str) -> int:
        """Messages for ``key`` the twin took (answered or not)."""
        return sum(1 for body in self.accepted if self._key(body) == key)

    def _answer(self, request: Received) -> Reply | Hang | Drop:
        # The base class's answer, with the scripted outcome taken from this request's key.
        try:
            key = self._key(request.json())
        except ValueError:
            key = ""
        with self._lock:
            self._received.append(request)
            self.faults.arrived(key, None)  # SendGrid and Postmark take no idempotency key
        refusal = self.refuse(request)
        if refusal is not None:
            return refusal
        with self._lock:
            fault = self.faults.next_fault(key)
        if isinstance(fault, Reply):
            return fault
        if isinstance(fault, Trickle | Endless):
            raise AssertionError("the threaded twins answer at once; use Delay or Hang")
        if isinstance(fault, Delay):
            time.sleep(fault.seconds)
        answer = self.accept(request)
        with self._lock:
            self._accepted.append(request.json())
        return fault if isinstance(fault, Hang) else answer


class SendGridFaults(_KeyedProviderTwin, SendGridTwin):
    """SendGrid's Mail Send API; faults keyed by the recipient's address."""

    def key_of(self, body: Any) -> str:
        return str(body["personalizations"][0]["to"][0]["email"])


class PostmarkFaults(_KeyedProviderTwin, PostmarkTwin):
    """Postmark's Email API; faults keyed by the recipient's address (``To``)."""

    def key_of(self, body: Any) -> str:
        to = str(body["To"])
        return to[to.find("<") + 1 : to.rfind(">")] if "<" in to else to


# --- Twilio, FCM and a webhook receiver: uvicorn twins from messaging_servers.py -------------


def dripping(answer: Any, seconds: float, *, status: int = 200) -> Response:
    """``answer`` as JSON, sent one byte at a time over ``seconds`` (no read ever waits long)."""
    body = json.dumps(answer).encode()
    pause = seconds / len(body)

    async def drip() -> AsyncIterator[bytes]:
        for byte in body:
            await asyncio.sleep(pause)
            yield bytes([byte])

    return StreamingResponse(drip(), status_code=status, media_type="application/json")


# The request a handler is working on: ``record`` sets it, ``scripted`` reads it, in the
# handler's own task (uvicorn runs each request in a task of its own).
_handling: ContextVar[Recorded | None] = ContextVar("handling", default=None)


class _KeyedLocalServer(LocalServer):
    """A ``LocalServer`` whose scripted answers are chosen per key."""

    idempotency_header: str | None = None
    success_status = 200

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.faults = _Faults()

    def key_of(self, recorded: Recorded) -> str:
        raise NotImplementedError

    def _key(self, recorded: Recorded) -> str:
        try:
            return self.key_of(recorded)
        except (ValueError, LookupError, TypeError):
            return ""

    async def record(self, request: Request) -> Recorded:
        recorded = await super().record(request)
        _handling.set(recorded)
        token = recorded.headers.get((self.idempotency_header or "").lower())
        self.faults.arrived(self._key(recorded), token)
        return recorded

    async def scripted(self) -> Response | None:
        recorded = _handling.get()
        key = "" if recorded is None else self._key(recorded)
        fault = None if recorded is None else self.faults.next_fault(key)
        if fault is None:
            return await super().scripted()
        if isinstance(fault, Reply):
            if fault.body is None:
                return Response(status_code=fault.status, headers=dict(fault.headers))
            return JSONResponse(fault.body, status_code=fault.status, headers=dict(fault.headers))
        if isinstance(fault, Delay):
            await asyncio.sleep(fault.seconds)
            return None  # then handled as usual: the message is taken, the answer is late
        if isinstance(fault, Hang):
            assert self._released is not None
            await self._released.wait()
            return Response(status_code=504)
        if isinstance(fault, Endless):
            return self.endless(key)
        return self.trickled(fault)

    def endless(self, key: str) -> Response:
        """A success answer whose body never ends; what got sent is counted under ``key``."""
        chunk = b"x" * 262144

        async def forever() -> AsyncIterator[bytes]:
            while True:
                await asyncio.sleep(0.002)
                self.faults.streamed[key] += len(chunk)
                yield chunk

        return StreamingResponse(forever(), status_code=self.success_status)

    def trickled(self, fault: Trickle) -> Response:
        raise AssertionError(f"{type(self).__name__} does not trickle")


class TwilioFaults(_KeyedLocalServer, TwilioServer):
    """Twilio's Messages API; faults keyed by the ``To`` number."""

    idempotency_header = "I-Twilio-Idempotency-Token"
    success_status = 201

    def key_of(self, recorded: Recorded) -> str:
        return dict(recorded.form())["To"]

    def kept(self, key: str) -> int:
        return sum(1 for message in self.created if message["To"] == key)

    def trickled(self, fault: Trickle) -> Response:
        recorded = _handling.get()
        assert recorded is not None
        sid = "SM" + secrets.token_hex(16)
        self.created.append({**dict(recorded.form()), "sid": sid})
        return dripping({"sid": sid, "status": "queued"}, fault.seconds, status=201)


class FcmFaults(_KeyedLocalServer, FcmServer):
    """FCM HTTP v1 ``messages:send``; faults keyed by the device token."""

    def key_of(self, recorded: Recorded) -> str:
        if recorded.path == "/token":
            return ""
        return str(recorded.json()["message"]["token"])

    def kept(self, key: str) -> int:
        return sum(1 for message in self.sent if message.get("token") == key)

    def trickled(self, fault: Trickle) -> Response:
        recorded = _handling.get()
        assert recorded is not None
        self.sent.append(recorded.json()["message"])
        name = f"projects/{self.project_id}/messages/0:{secrets.token_hex(8)}"
        return dripping({"name": name}, fault.seconds)


class WebhookFaults(_KeyedLocalServer, WebhookReceiver):
    """A webhook receiver that drops repeats by ``Idempotency-Key``; faults keyed by path."""

    idempotency_header = "Idempotency-Key"

    def key_of(self, recorded: Recorded) -> str:
        return recorded.path

    def kept(self, key: str) -> int:
        return sum(1 for request in self.accepted if request.path == key)

    def trickled(self, fault: Trickle) -> Response:
        recorded = _handling.get()
        assert recorded is not None
        # The receiver acts on the request (keeps it, notes its key), then is slow to say so.
        self.accepted.append(recorded)
        self._seen_keys.add(recorded.headers.get("idempotency-key", ""))
        return dripping({"ok": True, "note": "x" * 64}, fault.seconds)
