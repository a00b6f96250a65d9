"""SendGrid's Event Webhook and Twilio's status callbacks over a real Postgres, signed for real.

SendGrid payloads are signed with a P-256 key pair made here, exactly as SendGrid signs (ECDSA,
SHA-256, over the timestamp header followed by the raw body); SendGrid's own published test
vector checks the verification. Twilio signatures are computed by the documented algorithm,
checked against Twilio's published example.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from fastapi import FastAPI
from pydantic import SecretStr

from journeyman.channels import message_id_for
from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.api.routes.provider_webhooks import (
    ProviderWebhookKeys,
    install_provider_webhooks,
    load_sendgrid_public_key,
    status_callback_url,
    verify_sendgrid_signature,
)
from journeyman.orchestrator.storage import (
    claim_send,
    connect,
    create_pool,
    finish_send,
    migrate,
)
from journeyman.orchestrator.storage.delivery_states import attach_waiting_events
from journeyman.orchestrator.tracking import may_send

TWILIO_TOKEN = "twilio_test_auth_token"
PUBLIC_URL = "https://journeys.example.com"
SENDER = "Shop <news@shop.example>"
TIMESTAMP = "1772355600"

# SendGrid's published test vector (sendgrid-python, test/unit/test_eventwebhook.py).
SG_EXAMPLE_KEY = (
    "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE83T4O/n84iotIvIW4mdBgQ/7dAfSmpqIM8kF9mN1flpVKS3GRqe6"
    "2gw+2fNNRaINXvVpiglSI8eNEc6wEA3F+g=="
)
SG_EXAMPLE_SIGNATURE = (
    "MEUCIGHQVtGj+Y3LkG9fLcxf3qfI10QysgDWmMOVmxG0u6ZUAiEAyBiXDWzM+uOe5W0JuG+luQAbPIqHh89M15T"
    "luLtEZtM="
)
SG_EXAMPLE_TIMESTAMP = "1600112502"
SG_EXAMPLE_PAYLOAD = (
    b'[{"email":"hello@world.com","event":"dropped","reason":"Bounced Address",'
    b'"sg_event_id":"ZHJvcC0xMDk5NDkxOS1MUnpYbF9OSFN0T0doUTRrb2ZTbV9BLTA",'
    b'"sg_message_id":"LRzXl_NHStOGhQ4kofSm_A.filterdrecv-p3mdw1-756b745b58-kmzbl-18-5F5FC76C-9.0",'
    b'"smtp-id":"<LRzXl_NHStOGhQ4kofSm_A@ismtpd0039p1iad1.sendgrid.net>","timestamp":1600112492}]'
    b"\r\n"
)


def twilio_signature(url: str, params: list[tuple[str, str]], token: str) -> str:
    """Twilio's documented scheme: the URL, then each parameter name and value sorted by name,
    HMAC-SHA1 with the Auth Token, base64."""
    data = url + "".join(name + value for name, value in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), data.encode(), hashlib.sha1).digest()).decode()


def test_the_twilio_signer_reproduces_twilios_published_example() -> None:
    params = [
        ("CallSid", "CA1234567890ABCDE"),
        ("Digits", "1234"),
        ("From", "+14158675309"),
        ("To", "+18005551212"),
        ("Caller", "+14158675309"),
    ]
    url = "https://mycompany.com/myapp.php?foo=1&bar=2"
    assert twilio_signature(url, params, "12345") == "RSOYDt4T1cUTdK1PDd93/VVr8B8="


def test_sendgrids_published_example_verifies_and_a_changed_byte_does_not() -> None:
    key = load_sendgrid_public_key(SG_EXAMPLE_KEY)
    assert verify_sendgrid_signature(
        key,
        payload=SG_EXAMPLE_PAYLOAD,
        signature=SG_EXAMPLE_SIGNATURE,
        timestamp=SG_EXAMPLE_TIMESTAMP,
    )
    for payload, timestamp in (
        (SG_EXAMPLE_PAYLOAD.replace(b"Bounced", b"bounced"), SG_EXAMPLE_TIMESTAMP),
        (SG_EXAMPLE_PAYLOAD.rstrip(), SG_EXAMPLE_TIMESTAMP),  # the trailing CRLF is signed too
        (SG_EXAMPLE_PAYLOAD, "1600112503"),
    ):
        assert not verify_sendgrid_signature(
            key, payload=payload, signature=SG_EXAMPLE_SIGNATURE, timestamp=timestamp
        )


def test_a_key_that_is_not_p256_is_refused_at_start_up() -> None:
    with pytest.raises(ValueError, match="not a public key"):
        load_sendgrid_public_key("not a key")
    other = ec.generate_private_key(ec.SECP384R1()).public_key()
    der = other.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(ValueError, match="P-256"):
        load_sendgrid_public_key(base64.b64encode(der).decode())


@dataclass
class Hooks:
    app: FastAPI
    http: httpx.AsyncClient
    pool: asyncpg.Pool
    signing_key: ec.EllipticCurvePrivateKey

    async def claimed(
        self,
        send_key: str,
        *,
        provider_message_id: str | None = None,
        status: str = "sent",
        channel: str = "email",
        customer_id: str = "ann",
        recipient: str = "ann@example.com",
    ) -> None:
        """A delivery as the send path leaves it: claimed, then (usually) sent."""
        await claim_send(
            self.pool,
            send_key=send_key,
            journey_id="welcome",
            version="v1",
            customer_id=customer_id,
            step_id="hello",
            channel=channel,
        )
        if status != "sending":
            assert status in ("sent", "unknown")
            await finish_send(
                self.pool,
                send_key=send_key,
                status="sent" if status == "sent" else "unknown",
                recipient=recipient,
                provider_message_id=provider_message_id,
            )

    async def delivery(self, send_key: str) -> asyncpg.Record:
        found = await self.pool.fetchrow("SELECT * FROM deliveries WHERE send_key = $1", send_key)
        assert found is not None
        return found

    async def events(self) -> int:
        return int(await self.pool.fetchval("SELECT count(*) FROM delivery_events"))

    def sendgrid_headers(self, body: bytes, timestamp: str = TIMESTAMP) -> dict[str, str]:
        signature = self.signing_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
        return {
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
        }

    async def sendgrid(self, events: list[dict[str, Any]] | bytes) -> httpx.Response:
        body = events if isinstance(events, bytes) else json.dumps(events).encode() + b"\r\n"
        return await self.http.post(
            "/webhooks/sendgrid", content=body, headers=self.sendgrid_headers(body)
        )

    async def twilio(
        self,
        params: list[tuple[str, str]],
        *,
        query: str = "",
        signed_url: str | None = None,
        token: str = TWILIO_TOKEN,
    ) -> httpx.Response:
        url = status_callback_url(PUBLIC_URL) + (f"?{query}" if query else "")
        signature = twilio_signature(signed_url or url, params, token)
        return await self.http.post(
            "/webhooks/twilio" + (f"?{query}" if query else ""),
            content=urlencode(params),
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": signature,
            },
        )


@pytest.fixture
async def hooks(database_url: str) -> AsyncIterator[Hooks]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key="wk_test_key",
        admin_token="adm_test_token",
        max_body_bytes=64 * 1024,
    )
    app = create_app(services, follow_deploys=False)
    signing_key = ec.generate_private_key(ec.SECP256R1())
    der = signing_key.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    install_provider_webhooks(
        app,
        ProviderWebhookKeys(
            sendgrid_public_key=base64.b64encode(der).decode(),
            twilio_auth_token=SecretStr(TWILIO_TOKEN),
            public_url=PUBLIC_URL,
        ),
    )
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://journeyman.test") as http:
        yield Hooks(app, http, pool, signing_key)
    await pool.close()


def sg_event(name: str, message: str, number: int, **fields: Any) -> dict[str, Any]:
    """A SendGrid event for the message whose X-Message-Id is ``message``."""
    return {
        "email": "ann@example.com",
        "timestamp": 1772355600 + number,
        "event": name,
        "sg_event_id": f"{message}-{name}-{number}",
        "sg_message_id": f"{message}.filterdrecv-5645d9c87f-8jrq4-1-5F5FC76C-9.0",
        "smtp-id": f"<{message}@ismtpd0001p1iad1.sendgrid.net>",
        **fields,
    }


# --- SendGrid ------------------------------------------------------------------------------------


async def test_a_message_moves_through_its_states(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    response = await hooks.sendgrid(
        [
            sg_event("processed", "Xmsg1", 0),
            sg_event("delivered", "Xmsg1", 1, response="250 OK"),
            sg_event("open", "Xmsg1", 2, sg_machine_open=False, useragent="Mozilla/5.0"),
            sg_event("click", "Xmsg1", 3, url="https://shop.example/sale"),
        ]
    )
    assert response.status_code == 200, response.text
    assert response.json() == {"events": 4, "recorded": 4, "duplicates": 0, "unmatched": 0}
    found = await hooks.delivery("k1")
    assert found["status"] == "clicked"
    assert [found[c].timestamp() for c in ("delivered_at", "opened_at", "clicked_at")] == [
        1772355601,
        1772355602,
        1772355603,
    ]


async def test_the_message_id_in_custom_args_finds_a_delivery_still_sending(
    hooks: Hooks,
) -> None:
    # The event may come before the send path stored X-Message-Id: the Message-ID header that
    # journeyman.channels.sendgrid puts in custom_args finds the row all the same.
    await hooks.claimed("wf-1/awareness/hello/1", status="sending")
    message_id = message_id_for("wf-1/awareness/hello/1", from_address=SENDER)
    response = await hooks.sendgrid(
        [sg_event("delivered", "Xnotyet", 0, journeyman_msg_id=message_id)]
    )
    assert response.json()["recorded"] == 1
    assert (await hooks.delivery("wf-1/awareness/hello/1"))["status"] == "delivered"


async def test_a_late_delivered_does_not_move_an_open_back(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    await hooks.sendgrid([sg_event("open", "Xmsg1", 5)])
    await hooks.sendgrid([sg_event("delivered", "Xmsg1", 1)])
    found = await hooks.delivery("k1")
    assert found["status"] == "opened"
    assert found["delivered_at"].timestamp() == 1772355601


async def test_a_retried_batch_is_recorded_once(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    batch = [sg_event("delivered", "Xmsg1", 1), sg_event("bounce", "Xmsg1", 2, type="bounce")]
    first = await hooks.sendgrid(batch)
    again = await hooks.sendgrid(batch)
    assert first.json() == {"events": 2, "recorded": 2, "duplicates": 0, "unmatched": 0}
    assert again.json() == {"events": 2, "recorded": 0, "duplicates": 2, "unmatched": 0}
    assert await hooks.events() == 2
    assert await hooks.pool.fetchval("SELECT count(*) FROM suppressions") == 1


async def test_a_tampered_or_unsigned_request_is_refused_and_changes_nothing(
    hooks: Hooks,
) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    body = json.dumps([sg_event("delivered", "Xmsg1", 1)]).encode()
    headers = hooks.sendgrid_headers(body)
    tampered = body.replace(b"delivered", b"spamreport")
    other_key = ec.generate_private_key(ec.SECP256R1())
    foreign = base64.b64encode(other_key.sign(TIMESTAMP.encode() + body, ec.ECDSA(hashes.SHA256())))
    attempts = [
        (tampered, headers),
        (body, {**headers, "X-Twilio-Email-Event-Webhook-Timestamp": "1772355601"}),
        (body, {**headers, "X-Twilio-Email-Event-Webhook-Signature": foreign.decode()}),
        (body, {**headers, "X-Twilio-Email-Event-Webhook-Signature": "not base64!"}),
        (body, {"Content-Type": "application/json"}),
    ]
    for content, sent_headers in attempts:
        response = await hooks.http.post(
            "/webhooks/sendgrid", content=content, headers=sent_headers
        )
        assert response.status_code == 403, response.text
        assert response.json()["error"] == "forbidden"
    assert await hooks.events() == 0
    assert (await hooks.delivery("k1"))["status"] == "sent"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"not json", "not valid JSON"),
        (b'{"event": "delivered"}', "JSON array"),
        (b'[{"event": "delivered", "timestamp": 1}, "x"]', "event [2] is not a JSON object"),
        (b'[{"timestamp": 1}]', "no 'event' name"),
        (b'[{"event": "open", "timestamp": "yesterday"}]', "Unix 'timestamp'"),
        (b'[{"event": "open", "timestamp": 1, "sg_message_id": 7}]', "'sg_message_id'"),
    ],
)
async def test_a_signed_body_that_is_not_a_batch_is_refused_whole(
    hooks: Hooks, body: bytes, message: str
) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    good = json.dumps(sg_event("delivered", "Xmsg1", 1)).encode()
    # A good event before the bad one is not recorded either.
    if body.startswith(b"[{"):
        body = b"[" + good + b"," + body[1:]
    response = await hooks.sendgrid(body)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert await hooks.events() == 0
    assert (await hooks.delivery("k1"))["status"] == "sent"


async def test_a_bounce_ends_the_message_and_suppresses_the_address(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    reason = "550 5.1.1 The email account ann@example.com does not exist"
    await hooks.sendgrid(
        [sg_event("bounce", "Xmsg1", 1, type="bounce", reason=reason, status="5.1.1")]
    )
    found = await hooks.delivery("k1")
    assert found["status"] == "bounced"
    assert found["reason"] == "550 5.1.1 The email account <recipient> does not exist"
    assert found["bounced_at"] is not None
    async with hooks.pool.acquire() as conn:
        decision = await may_send(
            conn, customer_id="ann", channel="email", group=None, address="ann@example.com"
        )
        other_customer = await may_send(
            conn, customer_id="bob", channel="email", group=None, address="ANN@example.com"
        )
        new_address = await may_send(
            conn, customer_id="ann", channel="email", group=None, address="ann@work.example"
        )
    assert (decision.allowed, decision.rule) == (False, "suppressed:bounce")
    assert other_customer.rule == "suppressed:bounce"  # the address, whoever it belongs to
    assert new_address.allowed  # the customer still gets mail at an address that works


async def test_a_blocked_message_fails_without_suppressing_the_address(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    await hooks.sendgrid(
        [sg_event("bounce", "Xmsg1", 1, type="blocked", reason="unable to get mx info")]
    )
    found = await hooks.delivery("k1")
    assert (found["status"], found["reason"]) == ("failed", "blocked: unable to get mx info")
    assert await hooks.pool.fetchval("SELECT count(*) FROM suppressions") == 0


async def test_a_spam_report_is_a_complaint_that_stops_the_customer(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    await hooks.sendgrid([sg_event("open", "Xmsg1", 1), sg_event("spamreport", "Xmsg1", 2)])
    found = await hooks.delivery("k1")
    assert (found["status"], found["reason"]) == ("complained", "spam report")
    assert found["complained_at"].timestamp() == 1772355602
    async with hooks.pool.acquire() as conn:
        # Another address of the same customer is covered too.
        decision = await may_send(
            conn, customer_id="ann", channel="email", group=None, address="ann@work.example"
        )
    assert decision.rule == "suppressed:complaint"


@pytest.mark.parametrize(
    ("reason", "status", "ledger_reason"),
    [
        ("Bounced Address", "suppressed", "SendGrid suppression list: Bounced Address"),
        ("Unsubscribed Address", "suppressed", "SendGrid suppression list: Unsubscribed Address"),
        (
            "Spam Reporting Address",
            "suppressed",
            "SendGrid suppression list: Spam Reporting Address",
        ),
        ("Invalid", "suppressed", "SendGrid suppression list: Invalid"),
        ("Spam Content", "failed", "dropped by SendGrid: Spam Content"),
    ],
)
async def test_a_dropped_message_is_suppressed_by_a_list_or_failed(
    hooks: Hooks, reason: str, status: str, ledger_reason: str
) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    await hooks.sendgrid([sg_event("dropped", "Xmsg1", 1, reason=reason)])
    found = await hooks.delivery("k1")
    assert (found["status"], found["reason"]) == (status, ledger_reason)


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("deferred", {"response": "421 try again later", "attempt": "2"}),
        ("unsubscribe", {}),
        ("group_unsubscribe", {"asm_group_id": 42}),
        ("group_resubscribe", {"asm_group_id": 42}),
        ("account_status_change", {}),  # a kind of event SendGrid may add later
    ],
)
async def test_events_that_record_only_leave_the_state(
    hooks: Hooks, name: str, fields: dict[str, Any]
) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    response = await hooks.sendgrid([sg_event(name, "Xmsg1", 1, **fields)])
    assert response.json()["recorded"] == 1
    assert (await hooks.delivery("k1"))["status"] == "sent"
    assert await hooks.pool.fetchval("SELECT event FROM delivery_events") == name


async def test_a_machine_open_proves_delivery_not_reading(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    await hooks.sendgrid([sg_event("open", "Xmsg1", 1, sg_machine_open=True)])
    found = await hooks.delivery("k1")
    assert (found["status"], found["opened_at"]) == ("delivered", None)


async def test_sendgrids_published_example_passes_the_route(hooks: Hooks) -> None:
    # The whole path with SendGrid's own signed request: a drop of an address on its list.
    install_provider_webhooks(hooks.app, ProviderWebhookKeys(sendgrid_public_key=SG_EXAMPLE_KEY))
    await hooks.claimed("k1", provider_message_id="LRzXl_NHStOGhQ4kofSm_A")
    response = await hooks.http.post(
        "/webhooks/sendgrid",
        content=SG_EXAMPLE_PAYLOAD,
        headers={
            "Content-Type": "application/json",
            "X-Twilio-Email-Event-Webhook-Signature": SG_EXAMPLE_SIGNATURE,
            "X-Twilio-Email-Event-Webhook-Timestamp": SG_EXAMPLE_TIMESTAMP,
        },
    )
    assert response.json() == {"events": 1, "recorded": 1, "duplicates": 0, "unmatched": 0}
    found = await hooks.delivery("k1")
    assert (found["status"], found["reason"]) == (
        "suppressed",
        "SendGrid suppression list: Bounced Address",
    )


async def test_events_of_other_messages_are_kept_but_change_nothing(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    response = await hooks.sendgrid([sg_event("bounce", "Xforeign", 1, type="bounce")])
    assert response.json() == {"events": 1, "recorded": 0, "duplicates": 0, "unmatched": 1}
    assert await hooks.events() == 1
    assert await hooks.pool.fetchval("SELECT count(*) FROM suppressions") == 0
    assert (await hooks.delivery("k1"))["status"] == "sent"


async def test_only_a_digest_of_the_payload_is_stored(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="Xmsg1")
    await hooks.sendgrid([sg_event("click", "Xmsg1", 1, ip="203.0.113.9", useragent="Agent/1")])
    stored = await hooks.pool.fetchrow("SELECT * FROM delivery_events")
    assert stored is not None
    assert "203.0.113.9" not in json.dumps({k: str(v) for k, v in stored.items()})
    assert len(stored["payload_sha256"]) == 64


# --- Twilio --------------------------------------------------------------------------------------


def callback(sid: str, status: str, **extra: str) -> list[tuple[str, str]]:
    return [
        ("AccountSid", "AC0123456789abcdef0123456789abcdef"),
        ("From", "+15017122661"),
        ("To", "+886912345678"),
        ("MessageSid", sid),
        ("SmsSid", sid),
        ("MessageStatus", status),
        ("SmsStatus", status),
        ("ApiVersion", "2010-04-01"),
        *extra.items(),
    ]


@pytest.mark.parametrize(
    ("twilio_status", "state", "reason"),
    [
        ("queued", "queued", None),
        ("sending", "queued", None),
        ("sent", "sent", None),
        ("delivered", "delivered", None),
        ("read", "opened", None),
        ("undelivered", "failed", "Twilio undelivered, error 30003"),
        ("failed", "failed", "Twilio failed, error 30008"),
    ],
)
async def test_each_twilio_status_maps_to_its_state(
    hooks: Hooks, twilio_status: str, state: str, reason: str | None
) -> None:
    # The send path's doubt ("unknown") is the state every report may replace.
    await hooks.claimed("k1", provider_message_id="SM1", status="unknown", channel="sms")
    code = {"undelivered": "30003", "failed": "30008"}.get(twilio_status)
    params = callback("SM1", twilio_status, **({"ErrorCode": code} if code else {}))
    response = await hooks.twilio(params)
    assert response.status_code == 200, response.text
    assert response.json() == {"duplicate": False, "matched": True, "status": state}
    found = await hooks.delivery("k1")
    assert (found["status"], found["reason"]) == (state, reason)


async def test_twilio_states_only_move_forward_and_repeat_once(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="SM1", channel="sms")
    assert (await hooks.twilio(callback("SM1", "delivered"))).json()["status"] == "delivered"
    late = await hooks.twilio(callback("SM1", "sent"))
    assert late.json() == {"duplicate": False, "matched": True, "status": "delivered"}
    again = await hooks.twilio(callback("SM1", "delivered"))
    assert again.json()["duplicate"] is True
    assert await hooks.events() == 2


async def test_a_forged_twilio_callback_is_refused_and_changes_nothing(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="SM1", channel="sms")
    params = callback("SM1", "delivered")
    signature = twilio_signature(status_callback_url(PUBLIC_URL), params, TWILIO_TOKEN)
    forged = callback("SM1", "failed")
    attempts = [
        (urlencode(forged), signature),  # a field changed after signing
        (urlencode(params), twilio_signature(status_callback_url(PUBLIC_URL), params, "x")),
        (
            urlencode(params),
            twilio_signature("https://elsewhere.example/webhooks/twilio", params, TWILIO_TOKEN),
        ),
        (urlencode(params), ""),
    ]
    for body, sent in attempts:
        response = await hooks.http.post(
            "/webhooks/twilio",
            content=body,
            headers={
                "Content-Type": "application/x-www-form-urlencoded",
                "X-Twilio-Signature": sent,
            },
        )
        assert response.status_code == 403, response.text
    assert await hooks.events() == 0
    assert (await hooks.delivery("k1"))["status"] == "sent"


async def test_the_query_string_twilio_called_is_part_of_the_signature(hooks: Hooks) -> None:
    await hooks.claimed("k1", provider_message_id="SM1", channel="sms")
    params = callback("SM1", "delivered")
    assert (await hooks.twilio(params, query="region=tw")).status_code == 200
    # Signed for the bare URL but called with a query: not what Twilio signed.
    refused = await hooks.twilio(
        callback("SM1", "read"), query="region=tw", signed_url=status_callback_url(PUBLIC_URL)
    )
    assert refused.status_code == 403


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ([("AccountSid", "AC1"), ("MessageStatus", "delivered")], "needs MessageSid"),
        (callback("SM1", "receiving"), "unknown Twilio MessageStatus 'receiving'"),
    ],
)
async def test_a_signed_callback_that_is_not_a_status_report_is_refused(
    hooks: Hooks, params: list[tuple[str, str]], message: str
) -> None:
    await hooks.claimed("k1", provider_message_id="SM1", channel="sms")
    response = await hooks.twilio(params)
    assert response.status_code == 400, response.text
    assert message in response.json()["message"]
    assert await hooks.events() == 0


async def test_a_json_body_is_not_a_status_callback(hooks: Hooks) -> None:
    response = await hooks.http.post(
        "/webhooks/twilio", json={"MessageSid": "SM1", "MessageStatus": "sent"}
    )
    assert response.status_code == 400
    assert "form-encoded" in response.json()["message"]


async def test_a_callback_before_the_ledger_knows_the_sid_waits_for_it(hooks: Hooks) -> None:
    await hooks.claimed("k1", status="sending", channel="sms")
    early = await hooks.twilio(callback("SM9", "delivered"))
    assert early.json() == {"duplicate": False, "matched": False, "status": None}
    async with hooks.pool.acquire() as conn, conn.transaction():
        await finish_send(conn, send_key="k1", status="sent", provider_message_id="SM9")
        assert await attach_waiting_events(conn, send_key="k1", provider_message_id="SM9") == 1
    assert (await hooks.delivery("k1"))["status"] == "delivered"


# --- configuration -------------------------------------------------------------------------------


async def test_a_provider_that_is_not_configured_answers_503(api: Any) -> None:
    sendgrid = await api.http.post("/webhooks/sendgrid", content=b"[]")
    twilio = await api.http.post("/webhooks/twilio", data={"MessageSid": "SM1"})
    assert (sendgrid.status_code, sendgrid.json()["error"]) == (503, "not_configured")
    assert "SendGrid webhooks are not configured" in sendgrid.json()["message"]
    assert twilio.status_code == 503
    assert "Twilio webhooks are not configured" in twilio.json()["message"]


def test_twilio_needs_the_public_url_it_calls() -> None:
    with pytest.raises(ValueError, match="public URL"):
        install_provider_webhooks(
            FastAPI(), ProviderWebhookKeys(twilio_auth_token=SecretStr(TWILIO_TOKEN))
        )


async def test_a_body_over_the_limit_is_refused_before_it_is_read(hooks: Hooks) -> None:
    install_provider_webhooks(
        hooks.app,
        ProviderWebhookKeys(
            sendgrid_public_key=SG_EXAMPLE_KEY,
            max_body_bytes=1024,
        ),
    )
    body = b"[" + b" " * 2000 + b"]"
    response = await hooks.http.post(
        "/webhooks/sendgrid", content=body, headers=hooks.sendgrid_headers(body)
    )
    assert response.status_code == 413
