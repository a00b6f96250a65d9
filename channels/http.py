"""The one outbound HTTP client a worker shares across every HTTP provider.

One ``httpx.AsyncClient`` per worker keeps connections pooled and bounded: a slow provider
cannot open unlimited sockets, and every request has a timeout. Providers take the client as
an argument, so tests pass one pointed at local servers and the worker closes it on shutdown.
"""

from __future__ import annotations

import ssl
from typing import Any

import httpx

# Sends are small requests; a provider that has not answered in this long is treated as down
# (the send is retried by Temporal, and the idempotency key keeps it single).
DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
DEFAULT_LIMITS = httpx.Limits(max_connections=100, max_keepalive_connections=20)


def shared_client(
    *,
    timeout: httpx.Timeout = DEFAULT_TIMEOUT,
    limits: httpx.Limits = DEFAULT_LIMITS,
) -> httpx.AsyncClient:
    """A client for every provider of one worker; the caller closes it (``aclose``)."""
    return httpx.AsyncClient(timeout=timeout, limits=limits, follow_redirects=False)


def retry_after_seconds(response: httpx.Response) -> float | None:
    """``Retry-After`` in seconds (delta-seconds form only), when the provider sent it."""
    value = response.headers.get("retry-after", "").strip()
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


# Provider text quoted in an error is cut to this, on one line.
MAX_DETAIL = 300


def detail(text: str, secret: str | None = None) -> str:
    """A provider's words for an error message: one line, cut short, ``secret`` redacted."""
    if secret:
        text = text.replace(secret, "[redacted]")
    text = " ".join(text.split())
    return text if len(text) <= MAX_DETAIL else text[: MAX_DETAIL - 1] + "…"


def certificate_error(exc: BaseException) -> ssl.SSLCertVerificationError | None:
    """The refused TLS certificate behind a transport error, if that is what it was: a
    permanent failure, unlike the network trouble transport errors usually are."""
    cause: BaseException | None = exc
    for _ in range(10):  # the chain is short; the bound only guards against a cycle
        if cause is None or isinstance(cause, ssl.SSLCertVerificationError):
            return cause
        cause = cause.__cause__ or cause.__context__
    return None


def json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object, or an empty one for anything else."""
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}
