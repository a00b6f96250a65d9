"""The one outbound HTTP client a worker shares across every HTTP provider.

One ``httpx.AsyncClient`` per worker keeps connections pooled and bounded: a slow provider
cannot open unlimited sockets, and every request has a timeout. Providers take the client as
an argument, so tests pass one pointed at local servers and the worker closes it on shutdown.
"""

from __future__ import annotations

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
