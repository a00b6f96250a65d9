"""Public link routes: the open pixel, tracked clicks, one-click unsubscribe, preferences.

No credentials: the signed token in the path is the only authority, so forms need no other
CSRF protection and a tampered, truncated or foreign token gets 404 with nothing recorded.

- ``GET /t/o/{token}.gif``: a 1x1 GIF, never cached; records ``Email Opened``.
- ``GET /t/c/{token}``: records ``Link Clicked`` and redirects (302) to the URL signed into
  the token, never to any other.
- ``GET /u/{token}``: the preference page (reading it changes nothing, so link scanners that
  fetch every URL in a message cannot unsubscribe anyone).
- ``POST /u/{token}`` with ``List-Unsubscribe=One-Click``: unsubscribes at once (RFC 8058).
- ``POST /u/{token}/preferences``: saves the page's choices.

A customer's navigation never waits on bookkeeping: when an open or a click cannot be
recorded (overload, database away), the pixel and the redirect are served all the same.
Unsubscribes are never dropped: they answer 503 until they are recorded (mail providers
retry).

``install_tracking`` attaches the configuration; until it is called these routes answer 503.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass
from functools import cache
from typing import Final
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse

from journeyman.orchestrator.tracking import (
    DEFAULT_GROUPS,
    InvalidToken,
    LinkToken,
    Preference,
    SubscriptionGroup,
    SubscriptionGroups,
    TrackingConfig,
    tracking_config,
)
from journeyman.orchestrator.tracking.consent import UnknownGroupError, preferences
from journeyman.orchestrator.tracking.forms import FormError, form_fields
from journeyman.orchestrator.tracking.links import Kind
from journeyman.orchestrator.tracking.recording import (
    change_subscription,
    delivery,
    record_click,
    record_open,
)
from journeyman.orchestrator.tracking.rewrite import DEFAULT_GROUP

from ..backpressure import DATABASE_RETRY_AFTER, DATABASE_UNAVAILABLE
from ..errors import ApiError
from ..services import Services

log = logging.getLogger(__name__)

router = APIRouter(tags=["tracking"], include_in_schema=False)

# A transparent 1x1 GIF (43 bytes, its image data complete up to the end code).
PIXEL: Final = base64.b64decode("R0lGODlhAQABAIAAAP///wAAACH5BAEAAAAALAAAAAABAAEAAAICRAEAOw==")
NO_CACHE: Final = {
    "Cache-Control": "no-store, no-cache, must-revalidate, private, max-age=0",
    "Pragma": "no-cache",
    "Expires": "0",
}
# The page's own address holds the token: it must not leak through a Referer, be framed,
# cached or indexed.
PAGE_HEADERS: Final = {
    **NO_CACHE,
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "X-Robots-Tag": "noindex, nofollow",
}


def install_tracking(
    app: FastAPI,
    *,
    secret: str | None,
    public_url: str | None,
    development: bool = False,
    groups: SubscriptionGroups = DEFAULT_GROUPS,
) -> TrackingConfig:
    """Check the link settings and serve the link routes with them.

    Raises ``TrackingConfigError`` (a ``ConfigError``) for a missing secret outside
    development, a short secret, or a public URL that is missing or, outside development,
    not HTTPS: call it at start-up so the process refuses to start.
    """
    config = tracking_config(
        secret=secret, public_url=public_url, development=development, groups=groups
    )
    app.state.tracking = config
    return config


@dataclass(frozen=True)
class _Context:
    config: TrackingConfig
    services: Services


def _context(request: Request) -> _Context:
    config: TrackingConfig | None = getattr(request.app.state, "tracking", None)
    if config is None:
        raise ApiError(503, "unavailable", "links are not configured on this server")
    services: Services = request.app.state.services
    return _Context(config, services)


def _verify(context: _Context, token: str, kind: Kind) -> LinkToken | None:
    try:
        return context.config.signer.verify(token, kind=kind)
    except InvalidToken:
        return None


def _not_found() -> Response:
    return Response(
        "This link is not valid.\n", status_code=404, media_type="text/plain", headers=NO_CACHE
    )


def _location(url: str) -> str:
    # Headers are Latin-1: characters outside printable ASCII travel percent-encoded.
    return "".join(ch if 0x21 <= ord(ch) <= 0x7E else quote(ch, safe="") for ch in url)


@router.get("/t/o/{token}.gif")
async def open_pixel(token: str, request: Request) -> Response:
    """The open pixel: 404 for a token that is not ours (email clients show nothing)."""
    context = _context(request)
    found = _verify(context, token, "open")
    if found is None:
        return _not_found()
    await _record_activity(context, found)
    return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)


@router.get("/t/c/{token}")
async def click(token: str, request: Request) -> Response:
    """A tracked link: redirects to the URL that was in the message."""
    context = _context(request)
    found = _verify(context, token, "click")
    if found is None or found.url is None:
        return _not_found()
    await _record_activity(context, found)
    return RedirectResponse(
        _location(found.url),
        status_code=302,
        headers={**NO_CACHE, "Referrer-Policy": "no-referrer"},
    )


# Overloaded (the ingest limiter's 503) or the database is away.
_BUSY: Final[tuple[type[BaseException], ...]] = (ApiError, *DATABASE_UNAVAILABLE)


async def _record_activity(context: _Context, token: LinkToken) -> None:
    services = context.services
    record = record_click if token.kind == "click" else record_open
    try:
        async with services.ingest_limiter.slot():
            await record(
                services.pool,
                token,
                index=services.index,
                settings=services.customer_settings,
            )
    except _BUSY as exc:
        # Overloaded or the database is away: the customer gets their image or page anyway.
        log.warning("could not record a %s now: %s", token.kind, type(exc).__name__)
    except Exception:
        log.exception("could not record a %s", token.kind)


# --- unsubscribe and preferences ---------------------------------------------------------


@cache
def _templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("journeyman.orchestrator.api", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def _group(config: TrackingConfig, key: str | None) -> SubscriptionGroup:
    """The token's group; one no longer configured is still honoured (leaving must work)."""
    key = key or DEFAULT_GROUP
    try:
        return config.groups.get(key)
    except UnknownGroupError:
        pass
    channel, _, name = key.partition(":")
    try:
        return SubscriptionGroup(channel, name, label=key)
    except ValueError:  # signed, so never malformed unless signed by a bug: stay on the safe side
        return SubscriptionGroup("email", "marketing", label=DEFAULT_GROUP)


CHANNEL_HEADINGS: Final = {"email": "Email", "sms": "Text messages", "push": "Notifications"}


def _sections(standings: list[Preference]) -> list[tuple[str, list[Preference]]]:
    """The groups under a heading per channel, in the configured order."""
    by_channel: dict[str, list[Preference]] = {}
    for standing in standings:
        by_channel.setdefault(standing.group.channel, []).append(standing)
    return [
        (CHANNEL_HEADINGS.get(channel, channel.replace("_", " ").capitalize()), items)
        for channel, items in by_channel.items()
    ]


def _masked(address: str | None) -> str | None:
    """Enough of the address to recognise it, not enough to harvest it from a forwarded mail."""
    if not address or "@" not in address:
        return None
    local, _, domain = address.rpartition("@")
    return f"{local[:1]}***@{domain}"


async def _page(
    context: _Context,
    token: LinkToken,
    text: str,
    *,
    notice: str | None = None,
    status_code: int = 200,
) -> HTMLResponse:
    pool = context.services.pool
    group = _group(context.config, token.group)
    async with pool.acquire() as conn:
        sent = await delivery(conn, token.send_key)
        standings = await preferences(
            conn, customer_id=token.customer_id, groups=context.config.groups
        )
    base = context.config.public_url
    origin = "{0.scheme}://{0.netloc}".format(urlsplit(base))
    html = (
        _templates()
        .get_template("preferences.html")
        .render(
            group=group,
            sections=_sections(standings),
            address=_masked(sent.recipient),
            notice=notice,
            unsubscribe_action=f"{base}/u/{text}",
            preferences_action=f"{base}/u/{text}/preferences",
        )
    )
    headers = {
        **PAGE_HEADERS,
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline';"
        f" form-action 'self' {origin}; frame-ancestors 'none'; base-uri 'none'",
    }
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _bad_request(message: str) -> Response:
    return Response(message + "\n", status_code=400, media_type="text/plain", headers=NO_CACHE)


def _unavailable(exc: BaseException) -> ApiError:
    log.warning("could not record a subscription change: %s", type(exc).__name__)
    return ApiError(
        503,
        "unavailable",
        "the change could not be recorded now; try again shortly",
        headers={"Retry-After": str(DATABASE_RETRY_AFTER)},
    )


@router.get("/u/{token}")
async def preference_page(token: str, request: Request) -> Response:
    """The preference page: every group with a checkbox, and a one-button unsubscribe."""
    context = _context(request)
    found = _verify(context, token, "unsubscribe")
    if found is None:
        return _not_found()
    return await _page(context, found, token)


@router.post("/u/{token}")
async def one_click_unsubscribe(token: str, request: Request) -> Response:
    """RFC 8058 one-click unsubscribe from the message's group (the body must say so)."""
    context = _context(request)
    found = _verify(context, token, "unsubscribe")
    if found is None:
        return _not_found()
    try:
        fields = form_fields(await request.body(), request.headers.get("content-type"))
    except FormError as exc:
        return _bad_request(str(exc))
    if ("List-Unsubscribe", "One-Click") not in fields:
        return _bad_request("expected the form field List-Unsubscribe=One-Click (RFC 8058)")
    group = _group(context.config, found.group)
    services = context.services
    try:
        await change_subscription(
            services.pool,
            found,
            group=group,
            subscribed=False,
            source="one_click",
            index=services.index,
            settings=services.customer_settings,
        )
    except DATABASE_UNAVAILABLE as exc:
        raise _unavailable(exc) from None
    return await _page(context, found, token, notice="unsubscribed")


@router.post("/u/{token}/preferences")
async def save_preferences(token: str, request: Request) -> Response:
    """Save the preference page: a checked group is joined, an unchecked one left."""
    context = _context(request)
    found = _verify(context, token, "unsubscribe")
    if found is None:
        return _not_found()
    try:
        fields = form_fields(await request.body(), request.headers.get("content-type"))
    except FormError as exc:
        return _bad_request(str(exc))
    # The page always sends `save`: an empty post from anything else must not read as
    # "unsubscribe me from everything".
    if ("save", "1") not in fields:
        return _bad_request("expected the preference page's form (field save=1)")
    groups = context.config.groups
    chosen = {value for name, value in fields if name == "group"}
    unknown = sorted(key for key in chosen if key not in {group.key for group in groups})
    if unknown:
        return _bad_request(f"unknown subscription group {unknown[0]!r}")
    services = context.services
    try:
        for group in groups:
            await change_subscription(
                services.pool,
                found,
                group=group,
                subscribed=group.key in chosen,
                source="preference_page",
                index=services.index,
                settings=services.customer_settings,
            )
    except DATABASE_UNAVAILABLE as exc:
        raise _unavailable(exc) from None
    return await _page(context, found, token, notice="saved")
