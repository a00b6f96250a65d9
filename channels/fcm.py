"""Send push notifications through Firebase Cloud Messaging's HTTP v1 API.

A send is one ``POST /v1/projects/{project_id}/messages:send`` with a JSON body
``{"message": {"token", "notification": {"title", "body"}, "data": {...}}}`` and an OAuth 2.0
bearer token. The token comes from an ``AccessTokenSource``:

- ``ServiceAccountTokenSource`` signs the documented JWT (RS256) with a service account's key
  and exchanges it at the token URI, caching the access token until shortly before it expires
  (it needs the ``cryptography`` package);
- ``StaticTokenSource`` hands out a token obtained elsewhere (``gcloud auth print-access-token``,
  a metadata server, a secret manager).

Failures map onto ``journeyman.channels.errors``: 400 ``INVALID_ARGUMENT``, 403 and 404 are
permanent (404 ``UNREGISTERED`` raises ``DeviceTokenUnregistered``, the signal to forget the
device token); 429 and 503 are retryable with ``Retry-After``; other 5xx are retryable and may
have been delivered. A 401 gets one fresh access token and one more try, then is permanent.
FCM takes no idempotency key, so a retry after an unclear failure can deliver twice: callers
read ``maybe_delivered``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import httpx
from pydantic import SecretStr

from .base import DeliveryReceipt, PushMessage
from .errors import DeliveryError, PermanentDeliveryError, RetryableDeliveryError
from .http import certificate_error, detail, exchange, json_object, retry_after_seconds

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey

PROVIDER = "fcm"
DEFAULT_BASE_URL = "https://fcm.googleapis.com"
DEFAULT_TOKEN_URI = "https://oauth2.googleapis.com/token"
MESSAGING_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
_FCM_ERROR_TYPE = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
# Google caps an assertion's life at one hour.
_ASSERTION_SECONDS = 3600
# A cached access token is replaced this long before it expires, so no send carries a token
# that dies in flight.
_REFRESH_MARGIN = 300.0
_LOOPBACK = frozenset({"127.0.0.1", "localhost", "::1"})


class DeviceTokenUnregistered(PermanentDeliveryError):
    """FCM no longer knows the device token (``UNREGISTERED``): the app was removed or the
    token rotated. Stop sending to it."""


class AccessTokenSource(Protocol):
    """Where ``FcmPush`` gets its OAuth 2.0 access tokens."""

    async def access_token(self, *, rejected: str | None = None) -> str:
        """A valid access token. ``rejected`` is a token FCM just refused: the source returns
        a different one if it can (and the same one otherwise)."""
        ...


class StaticTokenSource:
    """Always the same access token, obtained outside Journeyman (they last about an hour)."""

    def __init__(self, token: SecretStr | str) -> None:
        self._token = SecretStr(token) if isinstance(token, str) else token
        if not self._token.get_secret_value():
            raise ValueError("token is required")

    def __repr__(self) -> str:
        return "StaticTokenSource(token=**********)"

    async def access_token(self, *, rejected: str | None = None) -> str:
        return self._token.get_secret_value()


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _checked_url(url: str, *, name: str) -> str:
    """``url`` without its trailing slash; https, or plain http to a loopback address."""
    parsed = httpx.URL(url)
    if not parsed.host or not (
        parsed.scheme == "https" or (parsed.scheme == "http" and parsed.host in _LOOPBACK)
    ):
        raise ValueError(
            f"{name} must be https://HOST (plain http:// only to a loopback test server), "
            f"not {url!r}"
        )
    return url.rstrip("/")


def _transport_error(exc: httpx.TransportError, *, what: str) -> DeliveryError:
    refused = certificate_error(exc)
    if refused is not None:
        return PermanentDeliveryError(
            f"{what}: TLS certificate refused: {refused.verify_message}", provider=PROVIDER
        )
    # Before the connection exists the request cannot have arrived; after, it may have.
    sent = not isinstance(exc, httpx.ConnectError | httpx.ConnectTimeout | httpx.PoolTimeout)
    reason = str(exc) or type(exc).__name__
    return RetryableDeliveryError(
        f"{what} failed ({type(exc).__name__}): {reason}",
        provider=PROVIDER,
        maybe_delivered=sent,
    )


def _load_rsa_key(pem: str) -> RSAPrivateKey:
    try:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric.rsa import RSAPrivateKey
    except ImportError:
        raise RuntimeError(
            "ServiceAccountTokenSource needs the 'cryptography' package to sign its JWT; "
            "install it, or use StaticTokenSource"
        ) from None
    try:
        key = serialization.load_pem_private_key(pem.encode(), password=None)
    except (ValueError, TypeError):
        # No chaining: the parser's message adds nothing and the key must stay out of logs.
        raise ValueError("private_key is not an unencrypted PEM private key") from None
    if not isinstance(key, RSAPrivateKey):
        raise ValueError("private_key must be an RSA key (service account keys are)")
    return key


class ServiceAccountTokenSource:
    """Access tokens for a Google service account, by the OAuth 2.0 JWT bearer grant.

    Build it from the service account's JSON key (``from_service_account_info`` or
    ``from_service_account_file``). Each exchange sends a JWT signed with RS256 whose claims are
    ``iss`` (the account's email), ``scope``, ``aud`` (the token URI), ``iat`` and ``exp`` (one
    hour later); the answer's ``access_token`` is cached until ``_REFRESH_MARGIN`` seconds
    before its ``expires_in`` runs out. ``token_uri`` and ``clock`` change only for tests.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        client_email: str,
        private_key: SecretStr | str,
        private_key_id: str | None = None,
        token_uri: str = DEFAULT_TOKEN_URI,
        scope: str = MESSAGING_SCOPE,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not client_email:
            raise ValueError("client_email is required")
        pem = private_key.get_secret_value() if isinstance(private_key, SecretStr) else private_key
        self._key = _load_rsa_key(pem)
        self._client = client
        self.client_email = client_email
        self.private_key_id = private_key_id
        self.token_uri = _checked_url(token_uri, name="token_uri")
        self.scope = scope
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        # One exchange at a time: a burst of sends after expiry shares a single new token.
        self._lock = asyncio.Lock()

    @classmethod
    def from_service_account_info(
        cls,
        client: httpx.AsyncClient,
        info: Mapping[str, Any],
        *,
        token_uri: str | None = None,
        scope: str = MESSAGING_SCOPE,
        clock: Callable[[], float] = time.time,
    ) -> ServiceAccountTokenSource:
        """From the parsed JSON key file that Google issues for a service account."""
        if info.get("type") != "service_account":
            raise ValueError("credentials must be a service account key (type service_account)")
        missing = [k for k in ("client_email", "private_key") if not info.get(k)]
        if missing:
            raise ValueError(f"service account key lacks {', '.join(missing)}")
        return cls(
            client,
            client_email=str(info["client_email"]),
            private_key=str(info["private_key"]),
            private_key_id=str(info["private_key_id"]) if info.get("private_key_id") else None,
            token_uri=token_uri or str(info.get("token_uri") or DEFAULT_TOKEN_URI),
            scope=scope,
            clock=clock,
        )

    @classmethod
    def from_service_account_file(
        cls,
        client: httpx.AsyncClient,
        path: str | Path,
        *,
        token_uri: str | None = None,
        scope: str = MESSAGING_SCOPE,
        clock: Callable[[], float] = time.time,
    ) -> ServiceAccountTokenSource:
        """From a service account's JSON key file on disk."""
        try:
            info = json.loads(Path(path).read_text())
        except (OSError, ValueError) as exc:
            raise ValueError(f"cannot read service account key {path}: {exc}") from None
        if not isinstance(info, dict):
            raise ValueError(f"{path} is not a service account key")
        return cls.from_service_account_info(
            client, info, token_uri=token_uri, scope=scope, clock=clock
        )

    def __repr__(self) -> str:
        return f"ServiceAccountTokenSource(client_email={self.client_email!r})"

    def assertion(self, now: float) -> str:
        """The signed JWT that asks for an access token at time ``now``."""
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import padding

        header: dict[str, str] = {"alg": "RS256", "typ": "JWT"}
        if self.private_key_id:
            header["kid"] = self.private_key_id
        issued = int(now)
        claims = {
            "iss": self.client_email,
            "scope": self.scope,
            "aud": self.token_uri,
            "iat": issued,
            "exp": issued + _ASSERTION_SECONDS,
        }
        signing_input = ".".join(
            _b64url(json.dumps(part, separators=(",", ":")).encode()) for part in (header, claims)
        )
        signature = self._key.sign(signing_input.encode(), padding.PKCS1v15(), hashes.SHA256())
        return f"{signing_input}.{_b64url(signature)}"

    async def access_token(self, *, rejected: str | None = None) -> str:
        async with self._lock:
            now = self._clock()
            fresh = self._token is not None and now < self._expires_at - _REFRESH_MARGIN
            if self._token is not None and fresh and self._token != rejected:
                return self._token
            self._token, lifetime = await self._exchange(now)
            self._expires_at = now + lifetime
            return self._token

    async def _exchange(self, now: float) -> tuple[str, float]:
        """Trade a fresh assertion for an access token and its lifetime in seconds."""
        what = "FCM access token request"
        try:
            response = await exchange(
                self._client,
                "POST",
                self.token_uri,
                data={"grant_type": JWT_BEARER_GRANT, "assertion": self.assertion(now)},
                headers={"Accept": "application/json"},
            )
        except httpx.TransportError as exc:
            # No push was sent yet, whatever happened to the token request.
            if certificate_error(exc) is not None:
                raise _transport_error(exc, what=what) from None
            raise RetryableDeliveryError(
                f"{what} failed ({type(exc).__name__}): {str(exc) or type(exc).__name__}",
                provider=PROVIDER,
                maybe_delivered=False,
            ) from None
        body = json_object(response)
        if not response.is_success:
            text = f"{what} answered HTTP {response.status_code}"
            if isinstance(body.get("error"), str):
                text += f": {body['error']}"
            if isinstance(body.get("error_description"), str):
                text += f": {detail(body['error_description'])}"
            if response.status_code == 429 or response.status_code >= 500:
                raise RetryableDeliveryError(
                    text,
                    provider=PROVIDER,
                    code=response.status_code,
                    maybe_delivered=False,
                    retry_after=retry_after_seconds(response),
                )
            raise PermanentDeliveryError(text, provider=PROVIDER, code=response.status_code)
        token = body.get("access_token")
        if not isinstance(token, str) or not token:
            raise RetryableDeliveryError(
                f"{what}: the answer has no access_token", provider=PROVIDER, maybe_delivered=False
            )
        expires_in = body.get("expires_in")
        lifetime = float(expires_in) if isinstance(expires_in, int | float) else 3600.0
        return token, lifetime


def fcm_payload(message: PushMessage) -> dict[str, Any]:
    """The ``messages:send`` body for ``message``; a message without title and body is a data
    message (no ``notification``)."""
    target: dict[str, Any] = {"token": message.device_token}
    notification = {k: v for k, v in (("title", message.title), ("body", message.body)) if v}
    if notification:
        target["notification"] = notification
    if message.data:
        target["data"] = dict(message.data)
    return {"message": target}


def _fcm_error(response: httpx.Response, secret: str) -> tuple[str, str | None]:
    """A readable text for an FCM error answer, and FCM's own ``errorCode`` if present."""
    error = json_object(response).get("error")
    text = f"FCM answered HTTP {response.status_code}"
    if not isinstance(error, dict):
        return text, None
    status = error.get("status")
    error_code: str | None = None
    for part in error.get("details") or []:
        if isinstance(part, dict) and part.get("@type") == _FCM_ERROR_TYPE:
            code = part.get("errorCode")
            error_code = code if isinstance(code, str) else None
    label = error_code or (status if isinstance(status, str) else None)
    if label:
        text += f" {label}"
    if isinstance(error.get("message"), str) and error["message"]:
        text += f": {detail(error['message'], secret)}"
    return text, error_code


def _refusal(response: httpx.Response, secret: str) -> DeliveryError:
    status = response.status_code
    text, error_code = _fcm_error(response, secret)
    if status == 429 or status >= 500:
        # 429 (QUOTA_EXCEEDED) and 503 (UNAVAILABLE) say "not now"; other 5xx leave it unknown.
        return RetryableDeliveryError(
            text,
            provider=PROVIDER,
            code=status,
            maybe_delivered=status not in (429, 503),
            retry_after=retry_after_seconds(response),
        )
    if error_code == "UNREGISTERED":
        return DeviceTokenUnregistered(text, provider=PROVIDER, code=status)
    if status == 401:
        text += " (refused again with a renewed token: check the credentials and their roles)"
    return PermanentDeliveryError(text, provider=PROVIDER, code=status)


class FcmPush:
    """Sends each ``PushMessage`` to one device through FCM HTTP v1."""

    name = PROVIDER

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        project_id: str,
        token_source: AccessTokenSource,
        base_url: str = DEFAULT_BASE_URL,
    ) -> None:
        if not project_id or "/" in project_id:
            raise ValueError("project_id must be a Firebase project id")
        self._client = client
        self.project_id = project_id
        self._tokens = token_source
        self.base_url = _checked_url(base_url, name="base_url")

    def __repr__(self) -> str:
        return f"FcmPush(project_id={self.project_id!r})"

    @property
    def send_url(self) -> str:
        return f"{self.base_url}/v1/projects/{self.project_id}/messages:send"

    async def send_push(self, message: PushMessage) -> DeliveryReceipt:
        """Send ``message``; raise ``PermanentDeliveryError`` or ``RetryableDeliveryError``."""
        payload = fcm_payload(message)
        token = await self._tokens.access_token()
        response = await self._post(payload, token)
        if response.status_code == 401:
            # The token may have been revoked or expired early: one fresh token, one more try.
            token = await self._tokens.access_token(rejected=token)
            response = await self._post(payload, token)
        if not response.is_success:
            raise _refusal(response, token)
        name = json_object(response).get("name")
        if not isinstance(name, str) or not name:
            raise RetryableDeliveryError(
                f"FCM answered HTTP {response.status_code} without a message name",
                provider=PROVIDER,
                maybe_delivered=True,
            )
        return DeliveryReceipt(
            provider=PROVIDER, provider_message_id=name, accepted_at=datetime.now(UTC)
        )

    async def _post(self, payload: dict[str, Any], token: str) -> httpx.Response:
        try:
            return await exchange(
                self._client,
                "POST",
                self.send_url,
                json=payload,
                headers={"Authorization": f"Bearer {token}"},
            )
        except httpx.TransportError as exc:
            raise _transport_error(exc, what="FCM send") from None
