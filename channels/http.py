"""The one outbound HTTP client a worker shares across every HTTP provider.

One ``httpx.AsyncClient`` per worker keeps connections pooled and bounded: a slow provider
cannot open unlimited sockets, and every request has a timeout. Providers take the client as
an argument, so tests pass one pointed at local servers and the worker closes it on shutdown.

Providers make their requests through ``exchange``, which bounds the whole of each one (httpx's
timeouts bound each read or write on its own: an answer trickling in a byte at a time would
never time out) and how much of the answer is read.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
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


# The most of an answer a provider reads. Providers answer a send with a few hundred bytes of
# JSON; what comes after this is not the provider's API speaking, and not worth a worker's
# memory: it is left unread (the status and headers still count).
MAX_ANSWER_BYTES = 1024 * 1024


def _longest(timeout: httpx.Timeout) -> float | None:
    values = [v for v in (timeout.connect, timeout.read, timeout.write, timeout.pool) if v]
    return max(values) if values else None


async def exchange(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    timeouts: httpx.Timeout | None = None,
    auth: tuple[str, str] | None = None,
    read_answer: bool = True,
    **request: Any,
) -> httpx.Response:
    """One request, answer included, within the longest of its ``timeouts``.

    ``timeouts`` defaults to the client's (``DEFAULT_TIMEOUT``: the whole request within 10 s,
    connecting within 5). ``request`` holds ``client.build_request``'s options (``json``,
    ``data``, ``content``, ``headers``). The answer's body is read up to ``MAX_ANSWER_BYTES``
    and cut there (a cut JSON body reads as not JSON), or not at all with
    ``read_answer=False``, for a caller that needs only the status and headers.

    Running out of time raises ``httpx.ConnectTimeout`` when no byte of the request was sent
    yet (the server cannot have it), else ``httpx.ReadTimeout``: the distinction providers
    already draw between "not delivered" and "may be delivered".
    """
    limits = timeouts if timeouts is not None else client.timeout
    budget = _longest(limits)
    sent = False

    async def trace(event: str, info: Mapping[str, Any]) -> None:
        nonlocal sent
        if event.endswith("send_request_headers.started"):
            sent = True

    built = client.build_request(
        method, url, timeout=limits, extensions={"trace": trace}, **request
    )
    deadline = asyncio.timeout(budget)
    try:
        async with deadline:
            response = await client.send(
                built, stream=True, auth=httpx.USE_CLIENT_DEFAULT if auth is None else auth
            )
            try:
                if not read_answer:
                    return response
                answer = await _read_answer(response)
            finally:
                await response.aclose()
    except TimeoutError:
        if not deadline.expired():
            raise
        late = httpx.ReadTimeout if sent else httpx.ConnectTimeout
        raise late(f"no complete answer within {budget:g} s", request=built) from None
    return answer


async def _read_answer(response: httpx.Response) -> httpx.Response:
    """The streamed ``response`` read (decoded) into a plain one, cut at the size limit."""
    body = bytearray()
    async for chunk in response.aiter_bytes():
        body += chunk[: MAX_ANSWER_BYTES - len(body)]
        if len(body) >= MAX_ANSWER_BYTES:
            break
    framing = ("content-encoding", "content-length", "transfer-encoding")
    headers = [(k, v) for k, v in response.headers.multi_items() if k.lower() not in framing]
    return httpx.Response(
        response.status_code,
        headers=headers,
        content=bytes(body),
        request=response.request,
        extensions={
            key: response.extensions[key]
            for key in ("http_version", "reason_phrase")
            if key in response.extensions
        },
    )


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
