"""Every route of the app is authenticated, except an explicit, justified allow-list.

The routes are read from ``app.routes``, so a route added later is checked without anyone
remembering to: it must refuse a request without credentials and one with wrong credentials
(401/403 for the API, the sign-in redirect for dashboard pages), or be added to ``PUBLIC``
below with the reason it may be reached without the admin token. An entry of ``PUBLIC`` that
no longer names a route fails too, so the list stays true.

Write keys only write: a write key, however it is sent, opens no ``/api`` route and no
dashboard page; and the admin token is not a write key.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute, iter_route_contexts
from starlette.routing import Route

from journeyman.orchestrator.dashboard.session import COOKIE_NAME

from .conftest import ADMIN_TOKEN, WRITE_KEY, Stack, basic, bearer

# (method, path template) -> how the route authenticates instead of the admin token.
PUBLIC: dict[tuple[str, str], str] = {
    ("GET", "/healthz"): "health checks are anonymous; they say only up or down",
    ("GET", "/metrics"): "Prometheus scrapes anonymously; no customer data (docs/metrics.md)",
    ("GET", "/openapi.json"): "the API's description, no data",
    ("GET", "/docs"): "the API's description, no data",
    ("GET", "/docs/oauth2-redirect"): "part of the API's description pages",
    ("GET", "/redoc"): "the API's description, no data",
    ("GET", "/js/journeyman.js"): "the browser snippet, loaded by any site",
    ("GET", "/demo/shop"): "a static page; its write key comes from its address",
    ("GET", "/t/o/{token}.gif"): "a signed link token is the only authority",
    ("GET", "/t/c/{token}"): "a signed link token is the only authority",
    ("GET", "/u/{token}"): "a signed link token is the only authority",
    ("POST", "/u/{token}"): "a signed link token is the only authority",
    ("POST", "/u/{token}/preferences"): "a signed link token is the only authority",
    ("POST", "/webhooks/sendgrid"): "signed by SendGrid (ECDSA), checked per request",
    ("POST", "/webhooks/twilio"): "signed by Twilio (HMAC with the Auth Token)",
    ("GET", "/dashboard/sign-in"): "the sign-in page itself",
    ("POST", "/dashboard/sign-in"): "checks the typed admin token",
    ("POST", "/dashboard/sign-out"): "only forgets this browser's cookie",
    ("GET", "/dashboard/static/dashboard.css"): "the sign-in page's stylesheet",
}
# Routes that take a write key (and, for in-app, a customer token) instead of the admin token.
WRITE_KEY_ROUTES = re.compile(r"^/v1/")
DASHBOARD = "/dashboard"
SIGN_IN = "/dashboard/sign-in"


def endpoints(app: FastAPI) -> Iterator[tuple[str, str]]:
    """(method, path template) of every route the app answers."""
    # Through included routers, with their prefixes: each route as the app serves it.
    for context in iter_route_contexts(app.routes):
        route = context.original_route
        # A mount, a websocket or anything else new must be classified here first.
        assert isinstance(route, APIRoute | Route), f"unexpected route type {route!r}"
        assert context.path is not None, route
        for method in sorted(context.methods or ()):
            if method != "HEAD":  # answered as GET
                yield method, context.path


def concrete(template: str) -> str:
    """A path for the template: every parameter (``{id}``, ``{id:path}``) is ``1``."""
    return re.sub(r"\{[^}]+\}", "1", template)


async def call(
    http: httpx.AsyncClient,
    method: str,
    path: str,
    headers: dict[str, str],
    *,
    cookie: str | None = None,
) -> httpx.Response:
    cookies = {COOKIE_NAME: cookie} if cookie is not None else None
    request = http.build_request(method, concrete(path), headers=headers, cookies=cookies)
    return await http.send(request)


def refused(path: str, response: httpx.Response) -> bool:
    """Refused as the route's kind refuses: 401/403, or (dashboard pages) the sign-in page."""
    if response.status_code in (401, 403):
        return True
    location = response.headers.get("location", "")
    return (
        path.startswith(DASHBOARD) and response.status_code == 303 and location.startswith(SIGN_IN)
    )


WRONG_CREDENTIALS = {
    "no credentials": {},
    "a wrong admin token": bearer("adm_wrong_token"),
    "the admin token with a changed character": bearer(ADMIN_TOKEN[:-1] + "x"),
    "the write key as HTTP Basic": basic(WRITE_KEY),
    "the write key as a bearer token": bearer(WRITE_KEY),
    "an empty bearer token": {"Authorization": "Bearer "},
    "a malformed header": {"Authorization": "Bearer"},
}


async def unrefused(app: FastAPI, http: httpx.AsyncClient, headers: dict[str, str]) -> list[str]:
    """The routes outside the allow-lists that answer a request with ``headers``."""
    found = []
    for method, path in endpoints(app):
        if (method, path) in PUBLIC or WRITE_KEY_ROUTES.match(path):
            continue
        response = await call(http, method, path, headers)
        if not refused(path, response):
            found.append(f"{method} {path}: {response.status_code}")
    return found


async def test_the_allow_list_names_only_existing_routes(stack: Stack) -> None:
    existing = set(endpoints(stack.app))
    assert set(PUBLIC) - existing == set(), "PUBLIC names routes that no longer exist"


@pytest.mark.parametrize("credentials", sorted(WRONG_CREDENTIALS))
async def test_every_other_route_refuses_without_the_admin_token(
    stack: Stack, credentials: str
) -> None:
    found = await unrefused(stack.app, stack.http, WRONG_CREDENTIALS[credentials])
    assert found == [], f"answered with {credentials}"


async def test_a_route_added_without_authentication_is_caught() -> None:
    # What the tests above do when someone forgets the admin dependency on a new router.
    app = FastAPI()
    forgotten = APIRouter(prefix="/api/reports")

    @forgotten.get("/{journey_id}/everything")
    async def everything(journey_id: str) -> dict[str, str]:
        return {"journey_id": journey_id}

    app.include_router(forgotten)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
        found = await unrefused(app, http, {})
    assert found == ["GET /api/reports/{journey_id}/everything: 200"]


async def test_a_forged_session_cookie_opens_no_dashboard_page(stack: Stack) -> None:
    checked = 0
    for method, path in endpoints(stack.app):
        if (method, path) in PUBLIC or not path.startswith(DASHBOARD):
            continue
        for cookie in ("forged", ADMIN_TOKEN, "1." + "0" * 64):
            response = await call(stack.http, method, path, {}, cookie=cookie)
            assert refused(path, response), (method, path, cookie, response.status_code)
        checked += 1
    assert checked >= 5  # the journeys, journey, compare, live and customer pages at least


async def test_write_key_routes_refuse_without_a_write_key(stack: Stack) -> None:
    checked = 0
    for method, path in endpoints(stack.app):
        if not WRITE_KEY_ROUTES.match(path):
            continue
        # A body the route accepts from a writer, so only the credentials are wrong.
        body = {"userId": "u1"} if path.startswith("/v1/in-app") else {"userId": "u", "event": "E"}
        for headers in ({}, basic("wk_unknown"), bearer(ADMIN_TOKEN), basic(ADMIN_TOKEN)):
            response = await stack.http.request(method, concrete(path), headers=headers, json=body)
            # The admin token is no write key: each credential opens only its own door.
            assert response.status_code == 401, (method, path, headers, response.text)
        checked += 1
    assert checked >= 14  # the seven ingest calls and their short forms, at least


async def test_the_right_admin_token_opens_the_admin_routes(stack: Stack) -> None:
    # The other side of the tests above: the refusals were about the credentials.
    for method, path in endpoints(stack.app):
        if method != "GET" or (method, path) in PUBLIC or WRITE_KEY_ROUTES.match(path):
            continue
        response = await call(stack.http, method, path, stack.admin)
        assert response.status_code not in (401, 403), (path, response.text)
        assert not response.headers.get("location", "").startswith(SIGN_IN), path


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("POST", "/webhooks/sendgrid", 403),
        ("POST", "/webhooks/twilio", 403),
        ("GET", "/t/o/{token}.gif", 404),
        ("GET", "/t/c/{token}", 404),
        ("GET", "/u/{token}", 404),
        ("POST", "/u/{token}", 404),
        ("POST", "/u/{token}/preferences", 404),
    ],
)
async def test_signed_routes_refuse_unsigned_requests(
    stack: Stack, method: str, path: str, expected: int
) -> None:
    # Even with the admin token: these routes trust only their own signatures.
    headers = {**stack.admin, "Content-Type": "application/x-www-form-urlencoded"}
    response = await stack.http.request(
        method, concrete(path), headers=headers, content=b"List-Unsubscribe=One-Click&save=1"
    )
    assert response.status_code == expected, response.text
