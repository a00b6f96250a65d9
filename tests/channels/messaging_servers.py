"""Local twins of Twilio, FCM (with Google's token endpoint) and a webhook receiver.

Each is a Starlette app under uvicorn on a free loopback port, in the test's event loop. They
check every request against the provider's documented shape (path, authentication, content
type, the exact form fields or JSON members) and answer a wrong one the way the provider
does, with its own error format, so a provider that drifts from the documented request fails
its tests. Every request is recorded. ``answer_next`` and ``hang_next`` script the answer to
the next valid request, for the failure modes (429 with ``Retry-After``, 5xx, no answer).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import hmac
import json
import re
import secrets
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Self
from urllib.parse import parse_qsl

import httpx
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from journeyman.channels import parse_status_callback, verify_signature, verify_status_callback
from journeyman.channels.twilio import StatusUpdate

E164 = re.compile(r"\+[1-9][0-9]{6,14}")
JWT_BEARER_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
FCM_SCOPE = "https://www.googleapis.com/auth/firebase.messaging"
FCM_ERROR = "type.googleapis.com/google.firebase.fcm.v1.FcmError"
BAD_REQUEST = "type.googleapis.com/google.rpc.BadRequest"


class _Uvicorn(uvicorn.Server):
    """uvicorn without its own signal handlers: the test decides when it stops."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@dataclass(frozen=True)
class Recorded:
    """One request as the server received it."""

    method: str
    path: str
    query: str
    headers: dict[str, str]  # lower-cased names
    body: bytes

    def form(self) -> list[tuple[str, str]]:
        return parse_qsl(self.body.decode(), keep_blank_values=True, strict_parsing=False)

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class _Scripted:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    hang: bool = False


def unused_port() -> int:
    """A loopback port nothing listens on (for "connection refused")."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


class LocalServer:
    """A Starlette app on a free loopback port; subclasses give the routes."""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.port = 0
        self._script: deque[_Scripted] = deque()
        self._released: asyncio.Event | None = None
        self._server: _Uvicorn | None = None
        self._task: asyncio.Task[None] | None = None
        # (certificate, key) PEM files: serve https instead of plain http.
        self.tls_files: tuple[str, str] | None = None

    def routes(self) -> list[Route]:
        raise NotImplementedError

    @property
    def url(self) -> str:
        scheme = "https" if self.tls_files else "http"
        return f"{scheme}://127.0.0.1:{self.port}"

    def answer_next(
        self, status: int, body: Any = None, *, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next valid request with ``status`` and JSON ``body``."""
        self._script.append(_Scripted(status=status, body=body, headers=headers or {}))

    def hang_next(self) -> None:
        """Never answer the next valid request (until the server stops)."""
        self._script.append(_Scripted(hang=True))

    async def record(self, request: Request) -> Recorded:
        recorded = Recorded(
            method=request.method,
            path=request.url.path,
            query=request.url.query,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=await request.body(),
        )
        self.requests.append(recorded)
        return recorded

    async def scripted(self) -> Response | None:
        """The scripted answer for this request, if one is queued."""
        if not self._script:
            return None
        step = self._script.popleft()
        if step.hang:
            assert self._released is not None
            await self._released.wait()
            return Response(status_code=504)
        if step.body is None:
            return Response(status_code=step.status, headers=step.headers)
        return JSONResponse(step.body, status_code=step.status, headers=step.headers)

    async def __aenter__(self) -> Self:
        self._released = asyncio.Event()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = int(sock.getsockname()[1])
        config = uvicorn.Config(
            Starlette(routes=self.routes()),
            log_level="warning",
            access_log=False,
            ws="none",
            lifespan="off",
            timeout_graceful_shutdown=2,
            ssl_certfile=self.tls_files[0] if self.tls_files else None,
            ssl_keyfile=self.tls_files[1] if self.tls_files else None,
        )
        self._server = server = _Uvicorn(config)
        self._task = task = asyncio.create_task(server.serve(sockets=[sock]))
        deadline = time.monotonic() + 15
        while not server.started:
            if task.done() or time.monotonic() > deadline:
                sock.close()
                raise RuntimeError(f"uvicorn did not start on {self.url}")
            await asyncio.sleep(0.01)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._released is not None and self._server is not None and self._task
        self._released.set()  # let hanging handlers finish, so shutdown is prompt
        self._server.should_exit = True
        await self._task


# --- Twilio ------------------------------------------------------------------------------------


def twilio_error(status: int, code: int, message: str) -> JSONResponse:
    """Twilio's REST error body."""
    return JSONResponse(
        {
            "code": code,
            "message": message,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": status,
        },
        status_code=status,
    )


def twilio_signature(url: str, params: list[tuple[str, str]], auth_token: str) -> str:
    """X-Twilio-Signature as Twilio computes it (written here independently of the provider)."""
    data = url + "".join(k + v for k, v in sorted(params))
    return base64.b64encode(hmac.new(auth_token.encode(), data.encode(), "sha1").digest()).decode()


class TwilioServer(LocalServer):
    """The Messages API of one account: ``POST /2010-04-01/Accounts/{sid}/Messages.json``.

    Numbers in ``unsubscribed`` answer 21610, numbers in ``landlines`` 21614.
    """

    FIELDS = frozenset({"To", "From", "Body", "StatusCallback"})

    def __init__(self, *, account_sid: str, auth_token: str) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.unsubscribed: set[str] = set()
        self.landlines: set[str] = set()
        self.created: list[dict[str, str]] = []

    def routes(self) -> list[Route]:
        return [
            Route("/2010-04-01/Accounts/{sid}/Messages.json", self.create_message, methods=["POST"])
        ]

    async def create_message(self, request: Request) -> Response:
        recorded = await self.record(request)
        expected = base64.b64encode(f"{self.account_sid}:{self.auth_token}".encode()).decode()
        if recorded.headers.get("authorization") != f"Basic {expected}":
            return twilio_error(401, 20003, "Authenticate")
        if request.path_params["sid"] != self.account_sid:
            return twilio_error(404, 20404, "The requested resource was not found")
        content_type = recorded.headers.get("content-type", "")
        if not content_type.startswith("application/x-www-form-urlencoded"):
            return twilio_error(400, 20001, f"expected a form-encoded body, got {content_type!r}")
        pairs = recorded.form()
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names) or not set(names) <= self.FIELDS:
            return twilio_error(400, 20001, f"unexpected parameters {sorted(names)}")
        form = dict(pairs)
        if not form.get("To"):
            return twilio_error(400, 21604, "A 'To' phone number is required.")
        if not form.get("From"):
            return twilio_error(400, 21603, "A 'From' phone number is required.")
        if not form.get("Body"):
            return twilio_error(400, 21602, "Message body is required.")
        if len(form["Body"]) > 1600:
            return twilio_error(400, 21617, "The concatenated message body exceeds the limit.")
        if not E164.fullmatch(form["To"]):
            return twilio_error(
                400, 21211, f"The 'To' number {form['To']} is not a valid phone number."
            )
        callback = form.get("StatusCallback")
        if callback is not None and not re.fullmatch(r"https?://[^\s/]+(/\S*)?", callback):
            return twilio_error(400, 21609, "Invalid StatusCallback url")
        if form["To"] in self.unsubscribed:
            return twilio_error(400, 21610, "Attempt to send to unsubscribed recipient")
        if form["To"] in self.landlines:
            return twilio_error(400, 21614, "'To' number is not a valid mobile number")
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        sid = "SM" + secrets.token_hex(16)
        self.created.append({**form, "sid": sid})
        return JSONResponse(
            {
                "sid": sid,
                "account_sid": self.account_sid,
                "to": form["To"],
                "from": form["From"],
                "body": form["Body"],
                "status": "queued",
                "num_segments": "1",
                "direction": "outbound-api",
                "error_code": None,
                "error_message": None,
                "api_version": "2010-04-01",
                "uri": f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}.json",
            },
            status_code=201,
        )

    async def report_status(
        self, sid: str, status: str, *, error_code: str | None = None, tamper: bool = False
    ) -> httpx.Response:
        """POST a signed status callback for message ``sid`` to its StatusCallback, as Twilio
        does; ``tamper`` alters the body after signing."""
        [message] = [m for m in self.created if m["sid"] == sid]
        params = [
            ("AccountSid", self.account_sid),
            ("ApiVersion", "2010-04-01"),
            ("From", message["From"]),
            ("MessageSid", sid),
            ("MessageStatus", status),
            ("SmsSid", sid),
            ("SmsStatus", status),
            ("To", message["To"]),
        ]
        if error_code is not None:
            params.append(("ErrorCode", error_code))
        url = message["StatusCallback"]
        signature = twilio_signature(url, params, self.auth_token)
        if tamper:
            params = [(k, "delivered" if k == "MessageStatus" else v) for k, v in params]
        async with httpx.AsyncClient() as client:
            return await client.post(
                url,
                data=dict(params),
                headers={"X-Twilio-Signature": signature, "User-Agent": "TwilioProxy/1.1"},
            )


class StatusCallbackReceiver(LocalServer):
    """An app's endpoint for Twilio status callbacks, built on the provider's helpers."""

    def __init__(self, *, auth_token: str) -> None:
        super().__init__()
        self.auth_token = auth_token
        self.updates: list[StatusUpdate] = []

    @property
    def callback_url(self) -> str:
        return f"{self.url}/twilio/status?journey=welcome"

    def routes(self) -> list[Route]:
        return [Route("/twilio/status", self.status, methods=["POST"])]

    async def status(self, request: Request) -> Response:
        recorded = await self.record(request)
        params = recorded.form()
        signature = recorded.headers.get("x-twilio-signature")
        if not verify_status_callback(str(request.url), params, signature, self.auth_token):
            return Response("bad signature", status_code=403)
        try:
            update = parse_status_callback(dict(params))
        except ValueError as exc:
            return Response(str(exc), status_code=400)
        self.updates.append(update)
        return Response(status_code=204)


# --- FCM and Google's token endpoint --------------------------------------------------------


def google_error(
    status: int, grpc_status: str, message: str, details: list[dict[str, Any]] | None = None
) -> JSONResponse:
    """A google.rpc.Status error body, as FCM HTTP v1 answers."""
    error: dict[str, Any] = {"code": status, "message": message, "status": grpc_status}
    if details is not None:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status)


def _b64url_decode(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


class FcmServer(LocalServer):
    """``POST /v1/projects/{project}/messages:send`` and an OAuth 2.0 token endpoint ``/token``.

    The token endpoint accepts the JWT bearer grant for one service account (its public key in
    PEM), checking the RS256 signature and the documented claims; it issues access tokens
    valid for ``token_lifetime`` seconds. The send endpoint accepts those tokens and any in
    ``static_tokens``. Device tokens in ``unregistered`` answer 404 UNREGISTERED.
    """

    MESSAGE_FIELDS = frozenset(
        {"token", "topic", "condition", "notification", "data", "android", "apns", "webpush"}
    )

    def __init__(
        self,
        *,
        project_id: str,
        client_email: str | None = None,
        public_key_pem: bytes | None = None,
        key_id: str | None = None,
        token_lifetime: int = 3599,
    ) -> None:
        super().__init__()
        self.project_id = project_id
        self.client_email = client_email
        self.public_key_pem = public_key_pem
        self.key_id = key_id
        self.token_lifetime = token_lifetime
        self.static_tokens: set[str] = set()
        self.unregistered: set[str] = set()
        self.issued: dict[str, float] = {}  # access token -> expiry (time.time())
        self.assertions: list[tuple[dict[str, Any], dict[str, Any]]] = []  # JWT header, claims
        self.sent: list[dict[str, Any]] = []

    @property
    def token_uri(self) -> str:
        return f"{self.url}/token"

    def routes(self) -> list[Route]:
        return [
            Route("/token", self.token, methods=["POST"]),
            Route("/v1/projects/{project}/messages:send", self.send, methods=["POST"]),
        ]

    def revoke_access_tokens(self) -> None:
        self.issued.clear()

    @property
    def token_requests(self) -> list[Recorded]:
        return [r for r in self.requests if r.path == "/token"]

    async def token(self, request: Request) -> Response:
        recorded = await self.record(request)

        def refuse(description: str, error: str = "invalid_grant") -> JSONResponse:
            return JSONResponse({"error": error, "error_description": description}, 400)

        if not recorded.headers.get("content-type", "").startswith(
            "application/x-www-form-urlencoded"
        ):
            return refuse("expected a form-encoded body", "invalid_request")
        form = dict(recorded.form())
        if form.get("grant_type") != JWT_BEARER_GRANT or set(form) != {"grant_type", "assertion"}:
            return refuse(f"unsupported request {sorted(form)}", "unsupported_grant_type")
        verdict = self._check_assertion(form["assertion"])
        if verdict is not None:
            return refuse(verdict)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        access_token = "ya29." + secrets.token_urlsafe(24)
        self.issued[access_token] = time.time() + self.token_lifetime
        return JSONResponse(
            {
                "access_token": access_token,
                "expires_in": self.token_lifetime,
                "token_type": "Bearer",
            }
        )

    def _check_assertion(self, assertion: str) -> str | None:
        """Why the JWT is refused, or None when it is a valid one for the account."""
        from cryptography.exceptions import InvalidSignature
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import padding, rsa

        parts = assertion.split(".")
        if len(parts) != 3:
            return "Invalid JWT: not three parts"
        try:
            header = json.loads(_b64url_decode(parts[0]))
            claims = json.loads(_b64url_decode(parts[1]))
            signature = _b64url_decode(parts[2])
        except ValueError:
            return "Invalid JWT: undecodable"
        self.assertions.append((header, claims))
        if header.get("alg") != "RS256" or header.get("typ") != "JWT":
            return "Invalid JWT: header must be RS256 JWT"
        if self.key_id is not None and header.get("kid") != self.key_id:
            return "Invalid JWT: unknown kid"
        assert self.public_key_pem is not None, "this FcmServer takes static tokens only"
        key = serialization.load_pem_public_key(self.public_key_pem)
        assert isinstance(key, rsa.RSAPublicKey)
        try:
            key.verify(
                signature,
                f"{parts[0]}.{parts[1]}".encode(),
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except InvalidSignature:
            return "Invalid JWT Signature."
        if claims.get("iss") != self.client_email:
            return "Invalid JWT: iss is not the service account"
        if FCM_SCOPE not in str(claims.get("scope", "")).split():
            return "Invalid JWT: scope lacks firebase.messaging"
        if claims.get("aud") != self.token_uri:
            return f"Invalid JWT: aud must be {self.token_uri}"
        iat, exp = claims.get("iat"), claims.get("exp")
        if not isinstance(iat, int) or not isinstance(exp, int):
            return "Invalid JWT: iat and exp must be integers"
        if not 0 < exp - iat <= 3600:
            return "Invalid JWT: Token must be a short-lived token (60 minutes)"
        return None

    async def send(self, request: Request) -> Response:
        recorded = await self.record(request)
        bearer = recorded.headers.get("authorization", "")
        token = bearer.removeprefix("Bearer ") if bearer.startswith("Bearer ") else None
        valid = token in self.static_tokens or (
            token is not None and self.issued.get(token, 0.0) > time.time()
        )
        if not valid:
            return google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token.",
            )
        if request.path_params["project"] != self.project_id:
            return google_error(404, "NOT_FOUND", "Requested entity was not found.")
        if not recorded.headers.get("content-type", "").startswith("application/json"):
            return google_error(400, "INVALID_ARGUMENT", "expected a JSON body")
        problem = self._check_payload(recorded)
        if problem is not None:
            return google_error(
                400,
                "INVALID_ARGUMENT",
                problem,
                [{"@type": BAD_REQUEST, "fieldViolations": [{"description": problem}]}],
            )
        message = recorded.json()["message"]
        if message["token"] in self.unregistered:
            return google_error(
                404,
                "NOT_FOUND",
                "Requested entity was not found.",
                [{"@type": FCM_ERROR, "errorCode": "UNREGISTERED"}],
            )
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        self.sent.append(message)
        name = f"projects/{self.project_id}/messages/0:{time.time_ns()}%{secrets.token_hex(8)}"
        return JSONResponse({"name": name})

    def _check_payload(self, recorded: Recorded) -> str | None:
        """Why the messages:send body is invalid, or None."""
        try:
            body = recorded.json()
        except ValueError:
            return "Invalid JSON payload received."
        if not isinstance(body, dict) or not set(body) <= {"message", "validate_only"}:
            return "Invalid JSON payload received. Unknown name at top level."
        message = body.get("message")
        if not isinstance(message, dict):
            return "message is required"
        if not set(message) <= self.MESSAGE_FIELDS:
            return f"Unknown name(s) in message: {sorted(set(message) - self.MESSAGE_FIELDS)}"
        if [k for k in ("token", "topic", "condition") if k in message] != ["token"]:
            return "this twin takes device-token messages only"
        if not isinstance(message["token"], str) or not message["token"]:
            return "The registration token is not a valid FCM registration token"
        notification = message.get("notification", {})
        if not isinstance(notification, dict) or not set(notification) <= {
            "title",
            "body",
            "image",
        }:
            return "Invalid notification"
        if not all(isinstance(v, str) for v in notification.values()):
            return "notification values must be strings"
        data = message.get("data", {})
        if not isinstance(data, dict):
            return "data must be a map"
        for key, value in data.items():
            if not isinstance(value, str):
                return f"Invalid value at 'message.data[{key}]' (TYPE_STRING)"
            if key in {"from", "notification", "message_type"} or key.startswith(("google", "gcm")):
                return f"Invalid data payload key: {key}"
        return None


# --- a webhook receiver ----------------------------------------------------------------------


class WebhookReceiver(LocalServer):
    """Any method on any path; checks ``Journeyman-Signature`` with ``verify_signature`` and
    drops repeats by ``Idempotency-Key``, as the documentation tells receivers to."""

    def __init__(self, *, secret: str) -> None:
        super().__init__()
        self.secret = secret
        self.accepted: list[Recorded] = []
        self.duplicates = 0
        self._seen_keys: set[str] = set()

    def routes(self) -> list[Route]:
        methods = ["GET", "POST", "PUT", "PATCH", "DELETE"]
        return [Route("/{path:path}", self.receive, methods=methods)]

    async def receive(self, request: Request) -> Response:
        recorded = await self.record(request)
        ok = verify_signature(
            self.secret,
            recorded.headers.get("journeyman-timestamp"),
            recorded.body,
            recorded.headers.get("journeyman-signature"),
        )
        if not ok:
            return JSONResponse({"error": "bad signature"}, status_code=401)
        key = recorded.headers.get("idempotency-key")
        if not key:
            return JSONResponse({"error": "Idempotency-Key is required"}, status_code=400)
        scripted = await self.scripted()
        if scripted is not None:
            return scripted
        if key in self._seen_keys:
            self.duplicates += 1
            return JSONResponse({"ok": True, "duplicate": True})
        self._seen_keys.add(key)
        self.accepted.append(recorded)
        return JSONResponse({"ok": True})


def hex_hmac_sha256(secret: str, data: bytes) -> str:
    return hmac.new(secret.encode(), data, hashlib.sha256).hexdigest()
