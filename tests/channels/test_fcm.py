"""The FCM push provider against a local twin of FCM HTTP v1 and Google's token endpoint."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from journeyman.channels import (
    DeliveryError,
    DeviceTokenUnregistered,
    FcmPush,
    PermanentDeliveryError,
    PushMessage,
    RetryableDeliveryError,
    ServiceAccountTokenSource,
    StaticTokenSource,
    idempotency_key_for,
)
from journeyman.channels.http import shared_client

from .messaging_servers import FcmServer, unused_port

PROJECT = "journeyman-test"
CLIENT_EMAIL = "push-sender@journeyman-test.iam.gserviceaccount.com"
KEY_ID = "0f1e2d3c4b5a69788796a5b4c3d2e1f0a1b2c3d4"
DEVICE = "fDg7x2:APA91bH_device-token-for-ada"
STATIC_TOKEN = "ya29.static-access-token-for-tests"


@dataclass(frozen=True)
class RsaKey:
    private_pem: str
    public_pem: bytes


def _rsa_key() -> RsaKey:
    crypto = pytest.importorskip("cryptography.hazmat.primitives.asymmetric.rsa")
    serialization = pytest.importorskip("cryptography.hazmat.primitives.serialization")
    key = crypto.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return RsaKey(private_pem=private, public_pem=public)


@pytest.fixture(scope="module")
def rsa_key() -> RsaKey:
    return _rsa_key()


@pytest.fixture(scope="module")
def other_rsa_key() -> RsaKey:
    return _rsa_key()


def push(**overrides: Any) -> PushMessage:
    fields: dict[str, Any] = {
        "device_token": DEVICE,
        "title": "Your points expire Friday",
        "body": "You have 1,200 points: use them before they go.",
        "data": {"journey": "loyalty", "deep_link": "app://wallet"},
        "idempotency_key": idempotency_key_for("journey-2/customer-7/points-reminder/0"),
    }
    fields.update(overrides)
    return PushMessage(**fields)


@pytest.fixture
async def fcm(rsa_key: RsaKey) -> AsyncIterator[FcmServer]:
    server = FcmServer(
        project_id=PROJECT,
        client_email=CLIENT_EMAIL,
        public_key_pem=rsa_key.public_pem,
        key_id=KEY_ID,
    )
    server.static_tokens.add(STATIC_TOKEN)
    async with server:
        yield server


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shared_client() as running:
        yield running


def key_info(server: FcmServer, key: RsaKey) -> dict[str, str]:
    """A service account key file's content, as Google issues it."""
    return {
        "type": "service_account",
        "project_id": PROJECT,
        "private_key_id": KEY_ID,
        "private_key": key.private_pem,
        "client_email": CLIENT_EMAIL,
        "client_id": "104729384756102938475",
        "auth_uri": "https://accounts.google.com/o/oauth2/auth",
        "token_uri": server.token_uri,
    }


def service_account(
    client: httpx.AsyncClient, server: FcmServer, key: RsaKey, **options: Any
) -> ServiceAccountTokenSource:
    return ServiceAccountTokenSource.from_service_account_info(
        client, key_info(server, key), **options
    )


def provider(client: httpx.AsyncClient, server: FcmServer, source: Any = None) -> FcmPush:
    return FcmPush(
        client,
        project_id=PROJECT,
        token_source=source or StaticTokenSource(STATIC_TOKEN),
        base_url=server.url,
    )


def jwt_part(token: str, index: int) -> dict[str, Any]:
    part = token.split(".")[index]
    decoded: dict[str, Any] = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    return decoded


async def test_sends_the_documented_message_with_a_service_account_token(
    client: httpx.AsyncClient, fcm: FcmServer, rsa_key: RsaKey
) -> None:
    sender = provider(client, fcm, service_account(client, fcm, rsa_key))
    receipt = await sender.send_push(push())

    [token_request, send_request] = fcm.requests
    assert token_request.path == "/token"
    form = dict(token_request.form())
    assert form["grant_type"] == "urn:ietf:params:oauth:grant-type:jwt-bearer"
    header, claims = jwt_part(form["assertion"], 0), jwt_part(form["assertion"], 1)
    assert header == {"alg": "RS256", "typ": "JWT", "kid": KEY_ID}
    assert claims["iss"] == CLIENT_EMAIL
    assert claims["scope"] == "https://www.googleapis.com/auth/firebase.messaging"
    assert claims["aud"] == fcm.token_uri
    assert claims["exp"] - claims["iat"] == 3600
    assert abs(claims["iat"] - time.time()) < 60

    assert send_request.method == "POST"
    assert send_request.path == f"/v1/projects/{PROJECT}/messages:send"
    [issued] = fcm.issued
    assert send_request.headers["authorization"] == f"Bearer {issued}"
    assert send_request.headers["content-type"] == "application/json"
    assert send_request.json() == {
        "message": {
            "token": DEVICE,
            "notification": {
                "title": "Your points expire Friday",
                "body": "You have 1,200 points: use them before they go.",
            },
            "data": {"journey": "loyalty", "deep_link": "app://wallet"},
        }
    }
    assert receipt.provider == "fcm"
    assert receipt.provider_message_id.startswith(f"projects/{PROJECT}/messages/")


async def test_a_message_without_title_or_body_is_a_data_message(
    client: httpx.AsyncClient, fcm: FcmServer
) -> None:
    await provider(client, fcm).send_push(push(title="", body="", data={"sync": "wallet"}))
    assert fcm.sent == [{"token": DEVICE, "data": {"sync": "wallet"}}]


async def test_no_data_member_without_data(client: httpx.AsyncClient, fcm: FcmServer) -> None:
    await provider(client, fcm).send_push(push(data={}))
    assert "data" not in fcm.sent[0]


async def test_access_token_is_cached_until_near_expiry(
    client: httpx.AsyncClient, fcm: FcmServer, rsa_key: RsaKey
) -> None:
    now = [time.time()]
    source = service_account(client, fcm, rsa_key, clock=lambda: now[0])
    sender = provider(client, fcm, source)
    await sender.send_push(push())
    now[0] += 3000  # 3599 s lifetime, replaced 300 s early: still good
    await sender.send_push(push())
    assert len(fcm.token_requests) == 1
    now[0] += 300
    await sender.send_push(push())
    assert len(fcm.token_requests) == 2
    first, second = (jwt_part(dict(r.form())["assertion"], 1) for r in fcm.token_requests)
    assert second["iat"] - first["iat"] == 3300
    assert len(fcm.sent) == 3


async def test_concurrent_sends_share_one_token_exchange(
    client: httpx.AsyncClient, fcm: FcmServer, rsa_key: RsaKey
) -> None:
    sender = provider(client, fcm, service_account(client, fcm, rsa_key))
    await asyncio.gather(*(sender.send_push(push()) for _ in range(5)))
    assert len(fcm.token_requests) == 1
    assert len(fcm.sent) == 5


async def test_revoked_token_is_renewed_once(
    client: httpx.AsyncClient, fcm: FcmServer, rsa_key: RsaKey
) -> None:
    sender = provider(client, fcm, service_account(client, fcm, rsa_key))
    await sender.send_push(push())
    fcm.revoke_access_tokens()
    await sender.send_push(push())
    paths = [r.path for r in fcm.requests]
    assert paths == ["/token", *[f"/v1/projects/{PROJECT}/messages:send"] * 2, "/token", paths[-1]]
    assert len(fcm.sent) == 2


async def test_refused_token_is_permanent_after_one_retry(
    client: httpx.AsyncClient, fcm: FcmServer
) -> None:
    sender = provider(client, fcm, StaticTokenSource("ya29.revoked"))
    with pytest.raises(PermanentDeliveryError) as caught:
        await sender.send_push(push())
    assert caught.value.code == 401
    assert "UNAUTHENTICATED" in str(caught.value)
    assert len(fcm.requests) == 2


async def test_unregistered_device_token(client: httpx.AsyncClient, fcm: FcmServer) -> None:
    fcm.unregistered.add(DEVICE)
    with pytest.raises(DeviceTokenUnregistered) as caught:
        await provider(client, fcm).send_push(push())
    assert caught.value.code == 404
    assert "UNREGISTERED" in str(caught.value)


async def test_reserved_data_key_is_an_invalid_argument(
    client: httpx.AsyncClient, fcm: FcmServer
) -> None:
    with pytest.raises(PermanentDeliveryError) as caught:
        await provider(client, fcm).send_push(push(data={"google.campaign": "x"}))
    assert caught.value.code == 400
    assert "INVALID_ARGUMENT" in str(caught.value)
    assert not isinstance(caught.value, DeviceTokenUnregistered)


async def test_invalid_registration_token_is_permanent(
    client: httpx.AsyncClient, fcm: FcmServer
) -> None:
    fcm.answer_next(
        400,
        {
            "error": {
                "code": 400,
                "message": "The registration token is not a valid FCM registration token",
                "status": "INVALID_ARGUMENT",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": "INVALID_ARGUMENT",
                    }
                ],
            }
        },
    )
    with pytest.raises(PermanentDeliveryError, match="not a valid FCM registration token"):
        await provider(client, fcm).send_push(push())


async def test_unknown_project_is_permanent_but_not_an_unregistered_device(
    client: httpx.AsyncClient, fcm: FcmServer
) -> None:
    sender = FcmPush(
        client,
        project_id="someone-else",
        token_source=StaticTokenSource(STATIC_TOKEN),
        base_url=fcm.url,
    )
    with pytest.raises(PermanentDeliveryError) as caught:
        await sender.send_push(push())
    assert caught.value.code == 404
    assert not isinstance(caught.value, DeviceTokenUnregistered)


@pytest.mark.parametrize(
    ("status", "grpc", "maybe_delivered"),
    [(429, "RESOURCE_EXHAUSTED", False), (503, "UNAVAILABLE", False), (500, "INTERNAL", True)],
)
async def test_overload_and_outage_are_retryable(
    client: httpx.AsyncClient, fcm: FcmServer, status: int, grpc: str, maybe_delivered: bool
) -> None:
    fcm_code = {429: "QUOTA_EXCEEDED", 503: "UNAVAILABLE", 500: "INTERNAL"}[status]
    fcm.answer_next(
        status,
        {
            "error": {
                "code": status,
                "message": "try later",
                "status": grpc,
                "details": [
                    {
                        "@type": "type.googleapis.com/google.firebase.fcm.v1.FcmError",
                        "errorCode": fcm_code,
                    }
                ],
            }
        },
        headers={"Retry-After": "30"},
    )
    with pytest.raises(RetryableDeliveryError) as caught:
        await provider(client, fcm).send_push(push())
    assert caught.value.retry_after == 30.0
    assert caught.value.maybe_delivered is maybe_delivered
    assert fcm_code in str(caught.value)


async def test_no_answer_within_the_timeout_may_have_been_delivered(fcm: FcmServer) -> None:
    fcm.hang_next()
    async with shared_client(timeout=httpx.Timeout(0.3, connect=2.0)) as client:
        with pytest.raises(RetryableDeliveryError) as caught:
            await provider(client, fcm).send_push(push())
    assert caught.value.maybe_delivered is True


async def test_connection_refused_was_not_delivered(client: httpx.AsyncClient) -> None:
    sender = FcmPush(
        client,
        project_id=PROJECT,
        token_source=StaticTokenSource(STATIC_TOKEN),
        base_url=f"http://127.0.0.1:{unused_port()}",
    )
    with pytest.raises(RetryableDeliveryError) as caught:
        await sender.send_push(push())
    assert caught.value.maybe_delivered is False


async def test_token_endpoint_refusing_the_key_is_permanent(
    client: httpx.AsyncClient, fcm: FcmServer, other_rsa_key: RsaKey
) -> None:
    sender = provider(client, fcm, service_account(client, fcm, other_rsa_key))
    with pytest.raises(PermanentDeliveryError) as caught:
        await sender.send_push(push())
    assert "invalid_grant: Invalid JWT Signature." in str(caught.value)
    assert [r.path for r in fcm.requests] == ["/token"]


async def test_token_endpoint_outage_is_retryable_and_nothing_was_sent(
    client: httpx.AsyncClient, fcm: FcmServer, rsa_key: RsaKey
) -> None:
    fcm.answer_next(503, {"error": "temporarily_unavailable"}, headers={"Retry-After": "5"})
    sender = provider(client, fcm, service_account(client, fcm, rsa_key))
    with pytest.raises(RetryableDeliveryError) as caught:
        await sender.send_push(push())
    assert caught.value.maybe_delivered is False
    assert caught.value.retry_after == 5.0
    source = service_account(
        client, fcm, rsa_key, token_uri=f"http://127.0.0.1:{unused_port()}/token"
    )
    with pytest.raises(RetryableDeliveryError) as unreachable:
        await provider(client, fcm, source).send_push(push())
    assert unreachable.value.maybe_delivered is False
    assert fcm.sent == []


async def test_service_account_from_a_key_file(
    client: httpx.AsyncClient, fcm: FcmServer, rsa_key: RsaKey, tmp_path: Path
) -> None:
    path = tmp_path / "service-account.json"
    path.write_text(json.dumps(key_info(fcm, rsa_key)))
    source = ServiceAccountTokenSource.from_service_account_file(client, path)
    await provider(client, fcm, source).send_push(push())
    assert len(fcm.sent) == 1


def test_plain_http_is_refused_except_to_loopback(
    client: httpx.AsyncClient, rsa_key: RsaKey
) -> None:
    with pytest.raises(ValueError, match="base_url must be https://HOST"):
        FcmPush(
            client,
            project_id=PROJECT,
            token_source=StaticTokenSource(STATIC_TOKEN),
            base_url="http://fcm.googleapis.com",
        )
    with pytest.raises(ValueError, match="token_uri must be https://HOST"):
        ServiceAccountTokenSource(
            client,
            client_email=CLIENT_EMAIL,
            private_key=rsa_key.private_pem,
            token_uri="http://oauth2.googleapis.com/token",
        )


def test_bad_credentials_are_refused_without_echoing_them(
    client: httpx.AsyncClient, rsa_key: RsaKey, tmp_path: Path
) -> None:
    info = {"type": "service_account", "client_email": CLIENT_EMAIL, "private_key": "x"}
    with pytest.raises(ValueError, match="service_account"):
        ServiceAccountTokenSource.from_service_account_info(client, {**info, "type": "user"})
    with pytest.raises(ValueError, match="lacks private_key"):
        ServiceAccountTokenSource.from_service_account_info(client, {**info, "private_key": ""})
    secret_looking = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0LWtleS1tYXRlcmlhbA==\n"
    with pytest.raises(ValueError) as caught:
        ServiceAccountTokenSource.from_service_account_info(
            client, {**info, "private_key": secret_looking}
        )
    assert "c2VjcmV0LWtleS1tYXRlcmlhbA" not in str(caught.value)
    assert caught.value.__suppress_context__  # the parser's own error is not chained
    with pytest.raises(ValueError, match="cannot read service account key"):
        ServiceAccountTokenSource.from_service_account_file(client, tmp_path / "missing.json")


async def test_no_secret_in_errors_reprs_or_logs(
    client: httpx.AsyncClient,
    fcm: FcmServer,
    rsa_key: RsaKey,
    other_rsa_key: RsaKey,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    # Named too: a process whose logging was configured quiets httpx below WARNING.
    caplog.set_level(logging.DEBUG, logger="httpx")
    source = service_account(client, fcm, rsa_key)
    sender = provider(client, fcm, source)
    texts = [repr(source), repr(sender), repr(StaticTokenSource(STATIC_TOKEN))]
    await sender.send_push(push())
    fcm.revoke_access_tokens()
    fcm.answer_next(500, {"error": {"code": 500, "message": "x", "status": "INTERNAL"}})
    errors: list[DeliveryError] = []
    for failing in (
        provider(client, fcm, source),
        provider(client, fcm, StaticTokenSource("ya29.revoked-one")),
        provider(client, fcm, service_account(client, fcm, other_rsa_key)),
    ):
        with pytest.raises(DeliveryError) as caught:
            await failing.send_push(push())
        errors.append(caught.value)
    # A service that repeats the credential in its error text gets it redacted.
    fcm.answer_next(400, {"error": {"code": 400, "message": f"bad {STATIC_TOKEN}"}})
    with pytest.raises(PermanentDeliveryError, match=r"bad \[redacted\]") as echoed:
        await provider(client, fcm).send_push(push())
    errors.append(echoed.value)
    texts += [str(e) for e in errors]
    assert "HTTP Request: POST" in caplog.text  # the client's own logging was captured
    secrets = [
        STATIC_TOKEN,
        "ya29.revoked-one",
        *[
            r.headers["authorization"].removeprefix("Bearer ")
            for r in fcm.requests
            if "authorization" in r.headers
        ],
        *rsa_key.private_pem.splitlines()[1:-1],
        *[dict(r.form())["assertion"] for r in fcm.token_requests],
    ]
    for text in [*texts, caplog.text]:
        for secret in secrets:
            assert secret not in text
