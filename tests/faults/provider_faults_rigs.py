"""Each HTTP provider wired to its misbehaving twin: how a customer is addressed, the key the
twin files their requests under, the provider's own "slow down" and "server error" answers.

A rig is entered as an async context: it starts the twin and yields it with the keyword
arguments that give ``fault_worker`` the provider pointed at it.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import httpx

from journeyman.channels import (
    FcmPush,
    PostmarkProvider,
    SendGridProvider,
    StaticTokenSource,
    TwilioSms,
)

from ..channels.provider_servers import Reply
from .provider_faults_twins import (
    Fault,
    FcmFaults,
    PostmarkFaults,
    SendGridFaults,
    TwilioFaults,
)

SENDGRID_KEY = "SG.faults-test-key"
POSTMARK_TOKEN = "postmark-faults-token"
TWILIO_SID = "AC" + "f" * 32
TWILIO_TOKEN = "twilio-faults-token-0123456789abcdef"
FCM_PROJECT = "faults-project"
FCM_TOKEN = "ya29.faults-static-token"


@dataclass
class Twin:
    """A running keyed twin, behind one interface whatever its kind."""

    server: SendGridFaults | PostmarkFaults | TwilioFaults | FcmFaults

    def fail(self, key: str, *faults: Fault) -> None:
        self.server.faults.fail(key, *faults)

    def arrivals(self, key: str) -> list[float]:
        return self.server.faults.arrivals(key)

    def tokens(self, key: str) -> list[str | None]:
        return self.server.faults.tokens(key)

    def kept(self, key: str) -> int:
        return self.server.kept(key)

    def streamed(self, key: str) -> int:
        """Bytes of an endless answer the twin got to send for ``key``."""
        return self.server.faults.streamed.get(key, 0)


Running = Callable[
    [httpx.AsyncClient], contextlib.AbstractAsyncContextManager[tuple[Twin, dict[str, Any]]]
]


@dataclass(frozen=True)
class Rig:
    """One provider: its send step, its customers' address, its twin."""

    name: str
    send: str  # the journey's send step, YAML
    address_trait: str
    busy: Reply  # 429 in the provider's own format (the test adds Retry-After)
    unavailable: Reply  # 503 in the provider's own format, without Retry-After
    error: Reply  # 500 in the provider's own format
    running: Running
    # Where a scenario's customer is reached; the twin files its requests under this key.
    address: Callable[[str, int], str]
    trickles: bool = False  # the twin can trickle its answer (``Trickle``)
    idempotency_header: bool = False  # the provider sends the send's key (Twilio)


@contextlib.asynccontextmanager
async def _sendgrid(client: httpx.AsyncClient) -> AsyncIterator[tuple[Twin, dict[str, Any]]]:
    with SendGridFaults(api_key=SENDGRID_KEY) as twin:
        provider = SendGridProvider(client, api_key=SENDGRID_KEY, base_url=twin.base_url)
        yield Twin(twin), {"email": provider}


@contextlib.asynccontextmanager
async def _postmark(client: httpx.AsyncClient) -> AsyncIterator[tuple[Twin, dict[str, Any]]]:
    with PostmarkFaults(server_token=POSTMARK_TOKEN) as twin:
        provider = PostmarkProvider(client, server_token=POSTMARK_TOKEN, base_url=twin.base_url)
        yield Twin(twin), {"email": provider}


@contextlib.asynccontextmanager
async def _twilio(client: httpx.AsyncClient) -> AsyncIterator[tuple[Twin, dict[str, Any]]]:
    async with TwilioFaults(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as twin:
        provider = TwilioSms(
            client,
            account_sid=TWILIO_SID,
            auth_token=TWILIO_TOKEN,
            from_number="+15005550006",
            base_url=twin.url,
        )
        yield Twin(twin), {"sms": provider}


@contextlib.asynccontextmanager
async def _fcm(client: httpx.AsyncClient) -> AsyncIterator[tuple[Twin, dict[str, Any]]]:
    async with FcmFaults(project_id=FCM_PROJECT) as twin:
        twin.static_tokens.add(FCM_TOKEN)
        provider = FcmPush(
            client,
            project_id=FCM_PROJECT,
            token_source=StaticTokenSource(FCM_TOKEN),
            base_url=twin.url,
        )
        yield Twin(twin), {"push": provider}


def _email(scenario: str, _: int) -> str:
    return f"{scenario}@example.com"


def _phone(_: str, index: int) -> str:
    return f"+1555010{index:04d}"


def _device(scenario: str, _: int) -> str:
    return f"device-{scenario}"


HTTP_RIGS = [
    Rig(
        name="sendgrid",
        send='{id: note, subject: "Your order", body: "It ships today."}',
        address_trait="email",
        busy=Reply(429, {"errors": [{"field": None, "message": "too many requests"}]}),
        unavailable=Reply(503, {"errors": [{"field": None, "message": "service unavailable"}]}),
        error=Reply(500, {"errors": [{"field": None, "message": "internal error"}]}),
        running=_sendgrid,
        address=_email,
    ),
    Rig(
        name="postmark",
        send='{id: note, subject: "Your order", body: "It ships today."}',
        address_trait="email",
        busy=Reply(429, {"ErrorCode": 429, "Message": "Rate limit exceeded."}),
        unavailable=Reply(503, {"ErrorCode": 0, "Message": "Service unavailable."}),
        error=Reply(500, {"ErrorCode": 0, "Message": "Internal server error."}),
        running=_postmark,
        address=_email,
    ),
    Rig(
        name="twilio",
        send='{id: note, channel: sms, group: transactional, body: "Your code is 4242."}',
        address_trait="phone",
        busy=Reply(429, {"code": 20429, "message": "Too Many Requests", "status": 429}),
        unavailable=Reply(503, {"code": 20503, "message": "Service Unavailable", "status": 503}),
        error=Reply(500, {"code": 20500, "message": "Internal Server Error", "status": 500}),
        running=_twilio,
        address=_phone,
        trickles=True,
        idempotency_header=True,
    ),
    Rig(
        name="fcm",
        send='{id: note, channel: push, group: transactional, title: "Hi", body: "Ships today"}',
        address_trait="push_token",
        busy=Reply(
            429,
            {"error": {"code": 429, "message": "Quota exceeded.", "status": "RESOURCE_EXHAUSTED"}},
        ),
        unavailable=Reply(
            503, {"error": {"code": 503, "message": "Unavailable.", "status": "UNAVAILABLE"}}
        ),
        error=Reply(
            500, {"error": {"code": 500, "message": "Internal error.", "status": "INTERNAL"}}
        ),
        running=_fcm,
        address=_device,
        trickles=True,
    ),
]
