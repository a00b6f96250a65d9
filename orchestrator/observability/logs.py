"""Log output: the human format or one JSON object per line, with the ids of the work at hand.

``log_context(journey_id=..., customer_id=...)`` binds ids for the code it wraps
(``bind_log_context`` for the rest of the current task). It is a context variable, so every
activity and every dispatcher delivery keeps its own; inside a Temporal activity the workflow
and run ids come from the activity's info as well.

``configure_logging`` installs one handler on the root logger. Both of its formats mask what
must never reach a log, wherever a library put it (an SMTP reply quoting the recipient, an
exception carrying a URL): e-mail addresses, phone numbers in international format,
passwords in URLs, ``Bearer``/``Basic`` credentials, and every secret the process was given.
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
from collections.abc import Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType, TracebackType
from typing import Any, Literal, TextIO

from temporalio import activity

LogFormat = Literal["text", "json"]

# The ids a log line may carry, in the order the JSON object lists them.
CONTEXT_FIELDS = (
    "journey_id",
    "version",
    "customer_id",
    "workflow_id",
    "run_id",
    "step_id",
    "send_key",
)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# Libraries speak only when something is wrong; the engine's own level is the setting's.
QUIET_LOGGERS = ("temporalio", "mail.log", "uvicorn", "httpx", "opentelemetry")

# Secrets shorter than this are not masked by value: masking "abc" would garble every line
# that happens to contain those letters. The patterns below still apply to them.
MIN_MASKED_SECRET = 6

_EMPTY: Mapping[str, str] = MappingProxyType({})
_context: ContextVar[Mapping[str, str]] = ContextVar("journeyman_log_context", default=_EMPTY)

_EMAIL = re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# E.164 with optional separators (+886 912 345 678); a leading "+" is required so that ids,
# ports and timestamps are left alone.
_PHONE = re.compile(r"(?<![\w+])\+[1-9](?:[ .-]?[0-9]){6,14}(?![0-9])")
_URL_PASSWORD = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]+@")
_AUTHORIZATION = re.compile(r"(?i)\b(?P<kind>bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}")


@contextlib.contextmanager
def log_context(**ids: str | None) -> Iterator[None]:
    """Log lines written inside carry these ids (``None`` values are left out)."""
    token = _context.set(_merged(ids))
    try:
        yield
    finally:
        _context.reset(token)


def bind_log_context(**ids: str | None) -> None:
    """Log lines written from now on in this context (an asyncio task's own, say) carry
    these ids; for code that cannot wrap what it binds for, as the context ends with it."""
    _context.set(_merged(ids))


def _merged(ids: Mapping[str, str | None]) -> Mapping[str, str]:
    unknown = set(ids) - set(CONTEXT_FIELDS)
    if unknown:
        raise ValueError(f"not a log context field: {sorted(unknown)}; use {CONTEXT_FIELDS}")
    merged = dict(_context.get())
    merged.update({key: value for key, value in ids.items() if value is not None})
    return MappingProxyType(merged)


def context_ids(record: logging.LogRecord | None = None) -> dict[str, str]:
    """The ids known for a log line written now (and, given, from its record)."""
    found = dict(_context.get())
    if activity.in_activity():
        info = activity.info()
        if info.workflow_id:
            found.setdefault("workflow_id", info.workflow_id)
        if info.workflow_run_id:
            found.setdefault("run_id", info.workflow_run_id)
    if record is not None:
        # Temporal's workflow logger adds these; a workflow's lines are written in its
        # sandbox, where no activity is running.
        workflow = getattr(record, "temporal_workflow", None)
        if isinstance(workflow, Mapping):
            for field, key in (("workflow_id", "workflow_id"), ("run_id", "run_id")):
                if isinstance(workflow.get(key), str):
                    found.setdefault(field, workflow[key])
        for field in CONTEXT_FIELDS:  # explicit `extra={...}` wins
            value = getattr(record, field, None)
            if isinstance(value, str):
                found[field] = value
    return {field: found[field] for field in CONTEXT_FIELDS if found.get(field)}


class Redactor:
    """Masks personal data and secrets in text bound for a log."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self.add(*secrets)

    def add(self, *secrets: str) -> None:
        """Mask these values too from now on (too short ones are skipped, see above)."""
        self._secrets.update(s for s in secrets if len(s) >= MIN_MASKED_SECRET)
        # Longest first, so that a secret containing another is masked whole.
        ordered = sorted(self._secrets, key=len, reverse=True)
        self._pattern = re.compile("|".join(map(re.escape, ordered))) if ordered else None

    def redact(self, text: str) -> str:
        if self._pattern is not None:
            text = self._pattern.sub("<secret>", text)
        text = _URL_PASSWORD.sub(r"\g<scheme>\g<user>:<secret>@", text)
        text = _AUTHORIZATION.sub(r"\g<kind> <secret>", text)
        text = _EMAIL.sub("<email>", text)
        return _PHONE.sub("<phone>", text)


class TextFormatter(logging.Formatter):
    """The human format: ``time LEVEL logger: message``, masked."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__(TEXT_FORMAT)
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        return self.redactor.redact(super().format(record))


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the known ids, and any
    exception's traceback; masked."""

    def __init__(self, redactor: Redactor) -> None:
        super().__init__()
        self.redactor = redactor

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": self.redactor.redact(record.getMessage()),
        }
        # Ids are masked as well: a customer id may be an e-mail address.
        entry.update({k: self.redactor.redact(v) for k, v in context_ids(record).items()})
        if record.exc_info:
            entry["exception"] = self.redactor.redact(self.formatException(record.exc_info))
        if record.stack_info:
            entry["stack"] = self.redactor.redact(self.formatStack(record.stack_info))
        return json.dumps(entry, ensure_ascii=False)


class _Handler(logging.StreamHandler[TextIO]):
    """The handler ``configure_logging`` installs, told apart from others by its type."""


_redactor = Redactor()


def mask_secrets(*values: str) -> None:
    """Mask these values in every log line from now on (credentials made at start-up)."""
    _redactor.add(*values)


def formatter_for(log_format: LogFormat) -> logging.Formatter:
    """The formatter of ``log_format``, masking with the process's secrets."""
    return JsonFormatter(_redactor) if log_format == "json" else TextFormatter(_redactor)


def log_uncaught(
    kind: type[BaseException], exc: BaseException, traceback: TracebackType | None
) -> None:
    """``sys.excepthook``: an error that ends the process is a log line like any other (so a
    JSON log stays JSON, and the traceback is masked)."""
    if issubclass(kind, KeyboardInterrupt):
        sys.__excepthook__(kind, exc, traceback)
        return
    logging.getLogger("journeyman").critical(
        "stopped by an uncaught error", exc_info=(kind, exc, traceback)
    )


def configure_logging(
    *,
    level: str = "INFO",
    log_format: LogFormat = "text",
    secrets: Iterable[str] = (),
    stream: TextIO | None = None,
    uncaught: bool = False,
) -> logging.Handler:
    """Send every log record to ``stream`` (stderr) in ``log_format``; returns the handler.

    ``uncaught``: an error that ends the process is logged too (``log_uncaught``), for a
    process's entry point. Calling it again replaces the handler it installed before.
    """
    if uncaught:
        sys.excepthook = log_uncaught
    _redactor.add(*secrets)
    handler = _Handler(stream if stream is not None else sys.stderr)
    handler.setFormatter(formatter_for(log_format))
    root = logging.getLogger()
    for previous in [h for h in root.handlers if isinstance(h, _Handler)]:
        root.removeHandler(previous)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    return handler
