"""The dashboard: server-rendered pages over the KPIs, behind the admin token.

- ``GET /dashboard``: the journeys; ``GET /dashboard/journeys/{id}``: one journey's map,
  charts and sections; ``GET /dashboard/journeys/{id}/live``: its numbers as server-sent
  events; ``GET /dashboard/journeys/{id}/compare?a=&b=``: two of its versions side by side;
  ``GET /dashboard/customers?q=`` and ``/dashboard/customers/{id}``: one customer.
- ``GET|POST /dashboard/sign-in``, ``POST /dashboard/sign-out``: the session cookie
  (``orchestrator.dashboard.session``), which proves the admin token without holding it. A
  request with ``Authorization: Bearer <admin token>`` needs no cookie.
- ``GET /dashboard/static/dashboard.css``: the one stylesheet, public.

A NUL (U+0000) anywhere in a dashboard path or query is refused with a 400 before any page
reads the database, which cannot hold it (``errors.NulGuard``, as for the API).

Pages need no script: the inline one only applies live numbers. Every page forbids framing
and caching, and its Content-Security-Policy allows only that script (by nonce) and the
dashboard's own stylesheet and event stream.
"""

from __future__ import annotations

import hashlib
import secrets
from functools import cache
from importlib import resources
from typing import Any, Final
from urllib.parse import quote, urlencode, urlsplit

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse, StreamingResponse

from journeyman.orchestrator.dashboard import (
    Feeds,
    JourneyReader,
    SameVersion,
    UnknownJourney,
    compare_page,
    customer_exists,
    customer_page,
    formatting,
    has_version,
    journey_page,
    journeys_list,
    session,
    stream,
)
from journeyman.orchestrator.tracking.forms import MAX_FORM_BYTES, FormError, form_fields

from ..auth import ServicesDep
from ..errors import NulGuard
from ..services import Services

router = APIRouter(tags=["dashboard"], include_in_schema=False, dependencies=[NulGuard])

PREFIX: Final = "/dashboard"
SIGN_IN: Final = f"{PREFIX}/sign-in"
STYLESHEET: Final = f"{PREFIX}/static/dashboard.css"
NO_STORE: Final = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "X-Robots-Tag": "noindex, nofollow",
}


# --- templates and responses ----------------------------------------------------------------


def _quote(value: str) -> str:
    """A path segment: ``/`` and everything else outside the unreserved set escaped."""
    return quote(value, safe="")


@cache
def _templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("journeyman.orchestrator.api", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["segment"] = _quote
    env.globals["fmt"] = formatting
    env.globals["stylesheet"] = STYLESHEET
    return env


def _page(name: str, *, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A template rendered with a fresh nonce, which its policy lets run its inline script."""
    nonce = secrets.token_urlsafe(16)
    html = _templates().get_template(f"dashboard/{name}").render(nonce=nonce, **context)
    policy = (
        "default-src 'none'; style-src 'self'; img-src 'self' data:;"
        f" script-src 'nonce-{nonce}'; connect-src 'self'; form-action 'self';"
        " frame-ancestors 'none'; base-uri 'none'"
    )
    return HTMLResponse(
        html,
        status_code=status_code,
        headers={**NO_STORE, "Content-Security-Policy": policy},
    )


def _plain(status_code: int, message: str) -> Response:
    return Response(
        message + "\n", status_code=status_code, media_type="text/plain", headers=NO_STORE
    )


def _problem(status_code: int, title: str, message: str) -> Response:
    """A signed-in visitor's page that says what was wrong with the request."""
    return _page(
        "problem.html", status_code=status_code, title=title, message=message, signed_in=True
    )


# --- who may look -----------------------------------------------------------------------------


def _signed_in(request: Request, services: Services) -> bool:
    """A valid session cookie, or the admin token as a bearer token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() == "bearer" and token:
        return session.token_matches(token, services.admin_token)
    return session.valid(request.cookies.get(session.COOKIE_NAME), services.admin_token)


def _safe_next(target: str | None) -> str:
    """Where to go after signing in: a dashboard path of this site, never another site."""
    if not target or "\\" in target or any(ord(c) < 32 for c in target):
        return PREFIX
    parts = urlsplit(target)
    inside = parts.path == PREFIX or parts.path.startswith(PREFIX + "/")
    if parts.scheme or parts.netloc or not inside or ".." in parts.path.split("/"):
        return PREFIX
    if parts.path == SIGN_IN:
        return PREFIX
    return target


def _to_sign_in(request: Request) -> RedirectResponse:
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return RedirectResponse(
        f"{SIGN_IN}?{urlencode({'next': here})}", status_code=303, headers=NO_STORE
    )


# --- stylesheet -----------------------------------------------------------------------------


@cache
def _stylesheet() -> tuple[bytes, str]:
    content = (
        resources.files("journeyman.orchestrator.api") / "static" / "dashboard.css"
    ).read_bytes()
    return content, f'"{hashlib.sha256(content).hexdigest()[:32]}"'


@router.get(STYLESHEET)
async def stylesheet(request: Request) -> Response:
    """The dashboard's stylesheet: public (the sign-in page needs it), revalidated by ETag."""
    content, etag = _stylesheet()
    headers = {
        "Cache-Control": "public, max-age=300",
        "ETag": etag,
        "X-Content-Type-Options": "nosniff",
    }
    if etag in (tag.strip() for tag in request.headers.get("if-none-match", "").split(",")):
        return Response(status_code=304, headers=headers)
    return Response(content, media_type="text/css; charset=utf-8", headers=headers)


# --- signing in and out -----------------------------------------------------------------------


@router.get(SIGN_IN)
async def sign_in_page(
    request: Request, services: ServicesDep, next: str | None = None
) -> Response:
    target = _safe_next(next)
    if _signed_in(request, services):
        return RedirectResponse(target, status_code=303, headers=NO_STORE)
    return _page("sign_in.html", next=target, error=None, signed_in=False)


async def _form(request: Request) -> dict[str, str] | None:
    """The posted form's fields (the first value of each), or None when it is not a form."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    try:
        fields = form_fields(body, request.headers.get("content-type"))
    except FormError:
        return None
    found: dict[str, str] = {}
    for name, value in fields:
        found.setdefault(name, value)
    return found


def _refused(status_code: int, target: str, error: str) -> Response:
    return _page("sign_in.html", status_code=status_code, next=target, error=error, signed_in=False)


@router.post(SIGN_IN)
async def sign_in(request: Request, services: ServicesDep) -> Response:
    """Check the typed admin token; on success set the session cookie and go on."""
    fields = await _form(request)
    if fields is None:
        return _refused(400, PREFIX, "The sign-in form could not be read; reload and try again.")
    target = _safe_next(fields.get("next"))
    token = fields.get("token", "")
    if not token.strip():
        return _refused(400, target, "Type the admin token to sign in.")
    if not session.token_matches(token, services.admin_token):
        # The typed text is never echoed or logged: it may be a real secret mistyped.
        return _refused(
            401,
            target,
            "That is not the admin token. Check .journeyman/credentials.json or "
            "JOURNEYMAN_ADMIN_TOKEN and try again.",
        )
    response = RedirectResponse(target, status_code=303, headers=NO_STORE)
    response.set_cookie(
        session.COOKIE_NAME,
        session.issue(services.admin_token),
        max_age=session.LIFETIME_SECONDS,
        path=session.COOKIE_PATH,
        secure=request.url.scheme == "https",
        httponly=True,
        samesite="strict",
    )
    return response


@router.post(f"{PREFIX}/sign-out")
async def sign_out() -> Response:
    """Forget the session cookie in this browser."""
    response = RedirectResponse(SIGN_IN, status_code=303, headers=NO_STORE)
    response.delete_cookie(
        session.COOKIE_NAME, path=session.COOKIE_PATH, httponly=True, samesite="strict"
    )
    return response


# --- pages ------------------------------------------------------------------------------------


@router.get(PREFIX)
async def journeys(request: Request, services: ServicesDep) -> Response:
    """Every journey: status, active version, who is inside, entries and conversion."""
    if not _signed_in(request, services):
        return _to_sign_in(request)
    rows = await journeys_list(services.pool)
    return _page("journeys.html", rows=rows, signed_in=True)


@router.get(PREFIX + "/journeys/{journey_id}")
async def journey(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    version: str | None = None,
    bucket: str = "day",
) -> Response:
    """One journey: the metro map, the funnel, trends and time to convert, live."""
    if not _signed_in(request, services):
        return _to_sign_in(request)
    if bucket not in ("day", "hour"):
        return _problem(400, "Unknown trend bucket", "bucket must be 'day' or 'hour'.")
    try:
        page = await journey_page(
            services.pool,
            journey_id,
            version=version or None,
            bucket="hour" if bucket == "hour" else "day",
        )
    except UnknownJourney as exc:
        return _problem(404, "Not found", f"{str(exc).capitalize()}.")
    live = f"{PREFIX}/journeys/{_quote(journey_id)}/live"
    if page.version is not None:
        live += f"?{urlencode({'version': page.version})}"
    return _page("journey.html", page=page, live_source=live, signed_in=True)


@router.get(PREFIX + "/journeys/{journey_id}/compare")
async def journey_compare(
    journey_id: str,
    request: Request,
    services: ServicesDep,
    a: str | None = None,
    b: str | None = None,
) -> Response:
    """Two versions of a journey side by side: conversion, exits by reason, time to convert."""
    if not _signed_in(request, services):
        return _to_sign_in(request)
    if not a or not b:
        return _problem(
            400,
            "Choose two versions",
            "Name the two versions to compare as a and b: ?a=VERSION&b=VERSION.",
        )
    try:
        page = await compare_page(services.pool, journey_id, a=a, b=b)
    except SameVersion as exc:
        return _problem(400, "Choose two versions", f"{str(exc).capitalize()}.")
    except UnknownJourney as exc:
        return _problem(404, "Not found", f"{str(exc).capitalize()}.")
    return _page("compare.html", page=page, signed_in=True)


def _feeds(request: Request) -> Feeds:
    # One set of feeds per app, made on first use: app.py knows nothing of them.
    feeds: Feeds | None = getattr(request.app.state, "dashboard_feeds", None)
    if feeds is None:
        feeds = request.app.state.dashboard_feeds = Feeds()
    return feeds


@router.get(PREFIX + "/journeys/{journey_id}/live")
async def journey_live(
    journey_id: str, request: Request, services: ServicesDep, version: str | None = None
) -> Response:
    """The journey page's numbers as server-sent events, sent when they change."""
    if not _signed_in(request, services):
        return _plain(401, "sign in to the dashboard first")
    if not await has_version(services.pool, journey_id, version or None):
        message = f"no journey {journey_id!r}" + (f" with version {version!r}" if version else "")
        return _plain(404, message)
    key = (journey_id, version or None)
    events = stream(
        _feeds(request),
        key,
        JourneyReader(services.pool, journey_id, version or None),
        disconnected=request.is_disconnected,
    )
    return StreamingResponse(
        events,
        media_type="text/event-stream",
        headers={**NO_STORE, "X-Accel-Buffering": "no"},  # nginx: pass events on at once
    )


@router.get(PREFIX + "/customers")
async def customer_search(
    request: Request, services: ServicesDep, q: str | None = None
) -> Response:
    """Find a customer by any id they were seen under; straight to their page when found."""
    if not _signed_in(request, services):
        return _to_sign_in(request)
    wanted = (q or "").strip()
    if not wanted:
        return _page("customer_search.html", query="", message=None, signed_in=True)
    if not await customer_exists(services.pool, wanted):
        return _page(
            "customer_search.html",
            status_code=404,
            query=wanted,
            message=f"No customer was seen under the id {wanted!r}.",
            signed_in=True,
        )
    return RedirectResponse(
        f"{PREFIX}/customers/{_quote(wanted)}", status_code=303, headers=NO_STORE
    )


@router.get(PREFIX + "/customers/{customer_id:path}")
async def customer(customer_id: str, request: Request, services: ServicesDep) -> Response:
    """One customer: profile, traits, segments, and where they are in each journey."""
    if not _signed_in(request, services):
        return _to_sign_in(request)
    view = await customer_page(services.pool, customer_id, temporal=services.temporal_client)
    if view is None:
        return _page(
            "customer_search.html",
            status_code=404,
            query=customer_id,
            message=f"No customer was seen under the id {customer_id!r}.",
            signed_in=True,
        )
    return _page("customer.html", customer=view, signed_in=True)
