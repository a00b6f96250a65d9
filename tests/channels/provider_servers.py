"""Local twins of the SendGrid and Postmark HTTP APIs that check requests as documented.

Each twin is a real HTTP/1.1 server (the standard library's ``http.server`` in a thread,
optionally behind TLS) on a free loopback port. It checks every request the way the provider
documents its send endpoint: path and method, the authentication header, the content type,
every required field and its type, and the documented limits. A request that breaks a rule is
refused with the provider's own status code and error format, so a provider that builds a
wrong body fails its tests instead of passing against a stub that accepts anything. The twins
are stricter than the real services in one way: a field the provider does not document is
refused, which catches misspelt keys.

Tests script what comes after a valid request with ``then``: an error ``Reply`` (429 with
``Retry-After``, 500, ...), a ``Delay`` before the normal answer, a ``Hang`` that never answers,
or a ``Drop`` that closes the connection. ``Hang`` and ``Drop`` keep the message, as a provider
that queued it but whose answer was lost would.
"""

from __future__ import annotations

import json
import re
import socket
import ssl
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Self

# Loose on purpose, as the providers are: one "@", no spaces, a dot in the domain.
_EMAIL = re.compile(r"[^@\s<>,]+@[^@\s<>,]+\.[^@\s<>,]+")
# "Name <address>" or a bare address, as Postmark's From and To take them.
_NAMED = re.compile(r'(?:(?P<name>"(?:[^"\\]|\\.)*"|[^<>"]*?)\s*<(?P<angle>[^<>]+)>|(?P<bare>\S+))')


@dataclass(frozen=True)
class Reply:
    """An HTTP answer; ``body`` is sent as JSON unless it is ``bytes``."""

    status: int
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Delay:
    """Wait ``seconds``, then answer as the provider does for an accepted message."""

    seconds: float


@dataclass(frozen=True)
class Hang:
    """Keep the message and never answer (until the twin stops)."""


@dataclass(frozen=True)
class Drop:
    """Keep the message, then close the connection without answering."""


Outcome = Reply | Delay | Hang | Drop


@dataclass(frozen=True)
class Received:
    """One request as the twin read it; header names are lower case."""

    method: str
    path: str
    headers: Mapping[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


class _Server(ThreadingHTTPServer):
    # Joined on close, so no handler thread outlives its test.
    daemon_threads = False
    block_on_close = True

    def __init__(self, twin: ProviderTwin, tls_context: ssl.SSLContext | None) -> None:
        self.twin = twin
        super().__init__(("127.0.0.1", 0), _Handler)
        if tls_context is not None:
            self.socket = tls_context.wrap_socket(self.socket, server_side=True)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that gives up (a timeout, a refused certificate) is expected; anything
        # else is a bug in the twin and fails the test that owns it.
        error = sys.exc_info()[1]
        if not isinstance(error, ConnectionError | ssl.SSLError | TimeoutError):
            self.twin.server_errors.append(repr(error))


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # An idle keep-alive connection is dropped after this long, so stopping never waits more.
    timeout = 2.0
    server: _Server

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        request = Received(
            method=self.command,
            path=self.path,
            headers={name.lower(): value for name, value in self.headers.items()},
            body=body,
        )
        answer = self.server.twin._answer(request)
        if isinstance(answer, Hang | Drop):
            if isinstance(answer, Hang):
                self.server.twin._released.wait(timeout=60)
            self.close_connection = True
            return
        self.send_response(answer.status)
        if isinstance(answer.body, bytes):
            payload = answer.body
        elif answer.body is None:
            payload = b""
        else:
            payload = json.dumps(answer.body).encode()
            self.send_header("Content-Type", "application/json; charset=utf-8")
        for name, value in answer.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_PUT = do_PATCH = do_DELETE = do_POST

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: the tests read ``received`` instead."""


class ProviderTwin:
    """A running local HTTP server that validates one provider's send requests.

    Subclasses implement ``refuse`` (the documented checks) and ``accept`` (the documented
    success answer). ``received`` holds every request; ``accepted`` the JSON bodies taken.
    """

    def __init__(self, *, tls_context: ssl.SSLContext | None = None) -> None:
        self._tls_context = tls_context
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._script: deque[Outcome] = deque()
        self._released = threading.Event()
        self._received: list[Received] = []
        self._accepted: list[dict[str, Any]] = []
        self.server_errors: list[str] = []

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> Self:
        server = _Server(self, self._tls_context)
        self._server = server
        # A short poll interval keeps ``stop`` (shutdown waits for one poll) quick.
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.02}, name=type(self).__name__
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        """Release hung requests, stop serving and join every thread."""
        self._released.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join()
        self._server = self._thread = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        if self._server is None:
            raise RuntimeError("the twin is not running")
        scheme = "https" if self._tls_context is not None else "http"
        return f"{scheme}://127.0.0.1:{self._server.server_address[1]}"

    # --- what tests use ----------------------------------------------------------------

    def then(self, *outcomes: Outcome) -> None:
        """Answer the next valid requests with ``outcomes``, in order, then normally again."""
        with self._lock:
            self._script.extend(outcomes)

    @property
    def received(self) -> list[Received]:
        with self._lock:
            return list(self._received)

    @property
    def accepted(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._accepted)

    # --- the provider's rules ----------------------------------------------------------

    def refuse(self, request: Received) -> Reply | None:
        """The documented refusal for ``request``, or None when it is valid."""
        raise NotImplementedError

    def accept(self, request: Received) -> Reply:
        """The documented answer to a valid request."""
        raise NotImplementedError

    def _answer(self, request: Received) -> Reply | Hang | Drop:
        with self._lock:
            self._received.append(request)
        refusal = self.refuse(request)
        if refusal is not None:
            return refusal
        with self._lock:
            outcome = self._script.popleft() if self._script else None
        if isinstance(outcome, Reply):
            return outcome
        if isinstance(outcome, Delay):
            time.sleep(outcome.seconds)
        answer = self.accept(request)
        with self._lock:
            self._accepted.append(request.json())
        return outcome if isinstance(outcome, Hang | Drop) else answer


def unused_port() -> int:
    """A loopback port nothing listens on (for connection-refused cases)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _json_body(request: Received) -> tuple[Any, str | None]:
    try:
        return json.loads(request.body), None
    except (ValueError, UnicodeDecodeError) as exc:
        return None, f"the body is not valid JSON: {exc}"


def _is_json(content_type: str | None) -> bool:
    return (content_type or "").split(";")[0].strip().lower() == "application/json"


# --- SendGrid v3 Mail Send --------------------------------------------------------------------

SENDGRID_RESERVED_HEADERS = frozenset(
    {
        "x-sg-id",
        "x-sg-eid",
        "received",
        "dkim-signature",
        "content-type",
        "content-transfer-encoding",
        "to",
        "from",
        "subject",
        "reply-to",
        "cc",
        "bcc",
    }
)
_SENDGRID_FIELDS = frozenset(
    {
        "personalizations",
        "from",
        "reply_to",
        "reply_to_list",
        "subject",
        "content",
        "attachments",
        "template_id",
        "headers",
        "categories",
        "custom_args",
        "send_at",
        "batch_id",
        "asm",
        "ip_pool_name",
        "mail_settings",
        "tracking_settings",
    }
)
_PERSONALIZATION_FIELDS = frozenset(
    {
        "to",
        "cc",
        "bcc",
        "from",
        "subject",
        "headers",
        "substitutions",
        "dynamic_template_data",
        "custom_args",
        "send_at",
    }
)


def _sendgrid_errors(*errors: tuple[str | None, str]) -> dict[str, Any]:
    return {"errors": [{"field": name, "message": text, "help": None} for name, text in errors]}


class SendGridTwin(ProviderTwin):
    """``POST /v3/mail/send`` as SendGrid documents it.

    Authorization is ``Bearer <api_key>``; keys in ``forbidden_keys`` lack the mail.send
    scope (403). Bodies over ``max_body_bytes`` get 413 (SendGrid's limit is 30 MB; tests set
    it small). Success is 202 with an empty body and an ``X-Message-Id`` header.
    """

    def __init__(
        self,
        *,
        api_key: str,
        forbidden_keys: frozenset[str] = frozenset(),
        max_body_bytes: int = 30 * 1024 * 1024,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(tls_context=tls_context)
        self.api_key = api_key
        self.forbidden_keys = forbidden_keys
        self.max_body_bytes = max_body_bytes
        self.message_ids: list[str] = []

    def refuse(self, request: Received) -> Reply | None:
        if request.path != "/v3/mail/send":
            return Reply(404, _sendgrid_errors((None, "not found")))
        if request.method != "POST":
            return Reply(405, _sendgrid_errors((None, "method not allowed")))
        authorization = request.headers.get("authorization")
        if not authorization:
            return Reply(401, _sendgrid_errors((None, "authorization required")))
        scheme, _, key = authorization.partition(" ")
        if scheme != "Bearer" or key not in {self.api_key, *self.forbidden_keys}:
            grant = "The provided authorization grant is invalid, expired, or revoked"
            return Reply(401, _sendgrid_errors((None, grant)))
        if key in self.forbidden_keys:
            return Reply(403, _sendgrid_errors((None, "access forbidden")))
        if not _is_json(request.headers.get("content-type")):
            return Reply(415, _sendgrid_errors((None, "Content-Type should be application/json.")))
        if len(request.body) > self.max_body_bytes:
            return Reply(413, _sendgrid_errors((None, "payload too large")))
        body, invalid = _json_body(request)
        if invalid is not None:
            return Reply(400, _sendgrid_errors((None, invalid)))
        errors = self._check(body)
        return Reply(400, _sendgrid_errors(*errors)) if errors else None

    def accept(self, request: Received) -> Reply:
        message_id = uuid.uuid4().hex[:22]
        with self._lock:
            self.message_ids.append(message_id)
        return Reply(202, b"", {"X-Message-Id": message_id})

    def _check(self, body: Any) -> list[tuple[str | None, str]]:
        if not isinstance(body, dict):
            return [(None, "The request body must be a JSON object.")]
        errors: list[tuple[str | None, str]] = [
            (name, f"{name} is not a documented Mail Send parameter.")
            for name in sorted(set(body) - _SENDGRID_FIELDS)
        ]
        errors += self._check_personalizations(body.get("personalizations"))
        errors += self._check_address("from", body.get("from"), required=True)
        if "reply_to" in body:
            errors += self._check_address("reply_to", body["reply_to"], required=True)
        personal_subjects = isinstance(body.get("personalizations"), list) and all(
            isinstance(p, dict) and p.get("subject") for p in body["personalizations"]
        )
        subject = body.get("subject")
        if subject is not None and not isinstance(subject, str):
            errors.append(("subject", "The subject must be a string."))
        elif not subject and not personal_subjects and "template_id" not in body:
            errors.append(("subject", "The subject is required."))
        if "template_id" not in body:
            errors += self._check_content(body.get("content"))
        errors += self._check_headers("headers", body.get("headers", {}))
        errors += self._check_custom_args(body.get("custom_args", {}))
        return errors

    def _check_personalizations(self, value: Any) -> list[tuple[str | None, str]]:
        if not isinstance(value, list) or not value:
            return [("personalizations", "You must have at least one personalization.")]
        if len(value) > 1000:
            return [("personalizations", "The personalization block is limited to 1000.")]
        errors: list[tuple[str | None, str]] = []
        for index, item in enumerate(value):
            where = f"personalizations.{index}"
            if not isinstance(item, dict):
                errors.append((where, "Each personalization must be an object."))
                continue
            errors += [
                (f"{where}.{name}", f"{name} is not a documented personalization parameter.")
                for name in sorted(set(item) - _PERSONALIZATION_FIELDS)
            ]
            to = item.get("to")
            if not isinstance(to, list) or not to:
                errors.append((f"{where}.to", "The to parameter is required."))
                continue
            for number, recipient in enumerate(to):
                errors += self._check_address(f"{where}.to.{number}", recipient, required=True)
            errors += self._check_headers(f"{where}.headers", item.get("headers", {}))
        return errors

    @staticmethod
    def _check_address(where: str, value: Any, *, required: bool) -> list[tuple[str | None, str]]:
        if value is None and not required:
            return []
        if not isinstance(value, dict) or set(value) - {"email", "name"}:
            return [(where, "Must be an object with an email and, optionally, a name.")]
        email = value.get("email")
        if not isinstance(email, str) or not _EMAIL.fullmatch(email):
            return [(f"{where}.email", "Does not contain a valid address.")]
        if "name" in value and not isinstance(value["name"], str):
            return [(f"{where}.name", "The name must be a string.")]
        return []

    @staticmethod
    def _check_content(value: Any) -> list[tuple[str | None, str]]:
        if not isinstance(value, list) or not value:
            return [("content", "Unless a valid template_id is provided, content is required.")]
        errors: list[tuple[str | None, str]] = []
        types: list[str] = []
        for index, part in enumerate(value):
            where = f"content.{index}"
            if not isinstance(part, dict) or set(part) != {"type", "value"}:
                errors.append((where, "Each content part must have a type and a value."))
                continue
            if not isinstance(part["type"], str) or not part["type"]:
                errors.append((f"{where}.type", "The content type must be a string."))
            if not isinstance(part["value"], str) or not part["value"]:
                errors.append(
                    (f"{where}.value", "The content value must be at least one character.")
                )
            types.append(part["type"] if isinstance(part["type"], str) else "")
        expected = [kind for kind in ("text/plain", "text/html") if kind in types]
        if types[: len(expected)] != expected:
            errors.append(("content", "text/plain must come first, then text/html."))
        return errors

    @staticmethod
    def _check_headers(where: str, value: Any) -> list[tuple[str | None, str]]:
        if not isinstance(value, dict):
            return [(where, "The headers parameter must be an object.")]
        errors: list[tuple[str | None, str]] = []
        for name, header in value.items():
            if name.lower() in SENDGRID_RESERVED_HEADERS:
                errors.append((where, f"The header {name} is reserved and cannot be set."))
            elif not isinstance(header, str):
                errors.append((where, f"The value of header {name} must be a string."))
        return errors

    @staticmethod
    def _check_custom_args(value: Any) -> list[tuple[str | None, str]]:
        if not isinstance(value, dict):
            return [("custom_args", "Invalid type. Expected: object.")]
        if not all(isinstance(item, str) for item in value.values()):
            return [("custom_args", "Custom argument values must be strings.")]
        if len(json.dumps(value).encode()) > 10_000:
            return [("custom_args", "Custom arguments may not exceed 10,000 bytes.")]
        return []


# --- Postmark /email --------------------------------------------------------------------------

# Postmark's API error codes that this twin answers with (HTTP 422 unless noted).
POSTMARK_BAD_TOKEN = 10  # HTTP 401
POSTMARK_INVALID_EMAIL_REQUEST = 300
POSTMARK_INVALID_JSON = 402
POSTMARK_INCOMPATIBLE_JSON = 403
POSTMARK_INACTIVE_RECIPIENT = 406
POSTMARK_JSON_REQUIRED = 409
POSTMARK_STREAM_NOT_FOUND = 1235

_POSTMARK_FIELDS = frozenset(
    {
        "From",
        "To",
        "Cc",
        "Bcc",
        "Subject",
        "Tag",
        "HtmlBody",
        "TextBody",
        "ReplyTo",
        "Headers",
        "TrackOpens",
        "TrackLinks",
        "Metadata",
        "Attachments",
        "MessageStream",
    }
)


def _postmark_error(code: int, text: str, status: int = 422) -> Reply:
    return Reply(status, {"ErrorCode": code, "Message": text})


def _addresses(value: str) -> list[str] | None:
    """The addresses in a Postmark address list ("A <a@x.org>, b@y.org"), or None if bad."""
    found: list[str] = []
    rest = value.strip()
    while rest:
        match = _NAMED.match(rest)
        if match is None:
            return None
        address = (match.group("angle") or match.group("bare") or "").strip()
        if not _EMAIL.fullmatch(address):
            return None
        found.append(address.lower())
        rest = rest[match.end() :].strip()
        if rest.startswith(","):
            rest = rest[1:].strip()
        elif rest:
            return None
    return found


class PostmarkTwin(ProviderTwin):
    """``POST /email`` as Postmark documents it.

    The server token goes in ``X-Postmark-Server-Token``; ``Accept`` and ``Content-Type``
    must be ``application/json``. Addresses in ``inactive`` are refused with ErrorCode 406
    (Postmark suppresses recipients that bounced or complained). ``streams`` are the
    server's message streams. Success is 200 with ``To``, ``SubmittedAt``, ``MessageID``,
    ``ErrorCode`` 0 and ``Message`` "OK".
    """

    def __init__(
        self,
        *,
        server_token: str,
        inactive: frozenset[str] = frozenset(),
        streams: frozenset[str] = frozenset({"outbound", "broadcast"}),
        max_body_bytes: int = 10 * 1024 * 1024,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        super().__init__(tls_context=tls_context)
        self.server_token = server_token
        self.inactive = frozenset(address.lower() for address in inactive)
        self.streams = streams
        self.max_body_bytes = max_body_bytes
        self.message_ids: list[str] = []

    def refuse(self, request: Received) -> Reply | None:
        if request.path != "/email":
            return Reply(404, {"ErrorCode": 0, "Message": "Not found"})
        if request.method != "POST":
            return Reply(405, {"ErrorCode": 0, "Message": "Method not allowed"})
        token = request.headers.get("x-postmark-server-token")
        if token != self.server_token:
            text = (
                "No Account or Server API tokens were supplied in the HTTP headers."
                if token is None
                else "The Server Token you provided in the X-Postmark-Server-Token request "
                "header was invalid. Please verify that you are using a valid token."
            )
            return _postmark_error(POSTMARK_BAD_TOKEN, text, status=401)
        accept = request.headers.get("accept", "")
        if not _is_json(request.headers.get("content-type")) or "application/json" not in accept:
            return _postmark_error(
                POSTMARK_JSON_REQUIRED, "Accept and Content-Type must be application/json."
            )
        if len(request.body) > self.max_body_bytes:
            return _postmark_error(0, "Request is larger than the Email API limit.", status=413)
        body, invalid = _json_body(request)
        if invalid is not None:
            return _postmark_error(POSTMARK_INVALID_JSON, f"Invalid JSON: {invalid}")
        if not isinstance(body, dict):
            return _postmark_error(POSTMARK_INVALID_JSON, "The body must be a JSON object.")
        return self._check(body)

    def accept(self, request: Received) -> Reply:
        body = request.json()
        message_id = str(uuid.uuid4())
        with self._lock:
            self.message_ids.append(message_id)
        submitted = datetime.now(UTC).isoformat(timespec="milliseconds")
        return Reply(
            200,
            {
                "To": body["To"],
                "SubmittedAt": submitted,
                "MessageID": message_id,
                "ErrorCode": 0,
                "Message": "OK",
            },
        )

    def _check(self, body: dict[str, Any]) -> Reply | None:
        unknown = sorted(set(body) - _POSTMARK_FIELDS)
        if unknown:
            return _postmark_error(
                POSTMARK_INCOMPATIBLE_JSON, f"Unknown fields in the message: {', '.join(unknown)}"
            )
        for name in ("From", "To", "Cc", "Bcc", "ReplyTo", "Subject", "Tag", "MessageStream"):
            if name in body and not isinstance(body[name], str):
                return _postmark_error(POSTMARK_INVALID_EMAIL_REQUEST, f"'{name}' must be text.")
        sender = _addresses(body.get("From") or "")
        if not sender or len(sender) != 1:
            return _postmark_error(POSTMARK_INVALID_EMAIL_REQUEST, "Invalid 'From' address.")
        if not body.get("To"):
            return _postmark_error(POSTMARK_INVALID_EMAIL_REQUEST, "Zero recipients specified")
        recipients = _addresses(body["To"])
        if recipients is None or len(recipients) > 50:
            return _postmark_error(
                POSTMARK_INVALID_EMAIL_REQUEST, f"Invalid 'To' address: '{body['To']}'."
            )
        if "ReplyTo" in body and _addresses(body["ReplyTo"]) is None:
            return _postmark_error(POSTMARK_INVALID_EMAIL_REQUEST, "Invalid 'ReplyTo' address.")
        text, html = body.get("TextBody"), body.get("HtmlBody")
        if not (isinstance(text, str) and text) and not (isinstance(html, str) and html):
            return _postmark_error(
                POSTMARK_INVALID_EMAIL_REQUEST, "Provide either email TextBody or HtmlBody or both."
            )
        for name in ("TextBody", "HtmlBody"):
            if name in body and not isinstance(body[name], str):
                return _postmark_error(POSTMARK_INVALID_EMAIL_REQUEST, f"'{name}' must be text.")
        refusal = self._check_headers(body.get("Headers", [])) or self._check_metadata(
            body.get("Metadata", {})
        )
        if refusal is not None:
            return refusal
        stream = body.get("MessageStream", "outbound")
        if stream not in self.streams:
            return _postmark_error(
                POSTMARK_STREAM_NOT_FOUND, f"The message stream '{stream}' was not found."
            )
        if self.inactive.intersection(recipients):
            return _postmark_error(
                POSTMARK_INACTIVE_RECIPIENT,
                "You tried to send to recipient(s) that have been marked as inactive. "
                "Found inactive addresses: " + ", ".join(sorted(self.inactive & set(recipients))),
            )
        return None

    @staticmethod
    def _check_headers(value: Any) -> Reply | None:
        well_formed = isinstance(value, list) and all(
            isinstance(item, dict)
            and set(item) == {"Name", "Value"}
            and isinstance(item["Name"], str)
            and item["Name"]
            and isinstance(item["Value"], str)
            for item in value
        )
        if not well_formed:
            return _postmark_error(
                POSTMARK_INVALID_EMAIL_REQUEST,
                "Headers must be a list of objects with a Name and a Value.",
            )
        return None

    @staticmethod
    def _check_metadata(value: Any) -> Reply | None:
        # Postmark's documented limits: 10 fields, names up to 20 and values up to 80
        # characters, no two names differing only by case.
        if not isinstance(value, dict):
            return _postmark_error(POSTMARK_INVALID_EMAIL_REQUEST, "Metadata must be an object.")
        names = [name.lower() for name in value]
        if (
            len(value) > 10
            or len(set(names)) != len(names)
            or any(len(name) > 20 for name in value)
            or any(not isinstance(item, str) or len(item) > 80 for item in value.values())
        ):
            return _postmark_error(
                POSTMARK_INVALID_EMAIL_REQUEST,
                "Metadata allows 10 fields, names up to 20 and text values up to 80 characters.",
            )
        return None
