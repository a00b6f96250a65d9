"""Who may see the dashboard: the admin token, typed once for a cookie or sent as a bearer."""

from __future__ import annotations

from http.cookies import SimpleCookie
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from journeyman.orchestrator.dashboard import session

from .conftest import ADMIN_TOKEN, Dash


def set_cookie(response: httpx.Response) -> SimpleCookie:
    jar: SimpleCookie = SimpleCookie()
    for header in response.headers.get_list("set-cookie"):
        jar.load(header)
    return jar


@pytest.mark.parametrize(
    "path",
    [
        "/dashboard",
        "/dashboard/journeys/spring?version=abc&bucket=hour",
        "/dashboard/customers?q=c1",
        "/dashboard/customers/c1",
    ],
)
async def test_pages_without_a_session_lead_to_the_sign_in_page(dash: Dash, path: str) -> None:
    response = await dash.http.get(path)
    assert response.status_code == 303
    location = urlsplit(response.headers["location"])
    assert location.path == "/dashboard/sign-in"
    assert parse_qs(location.query) == {"next": [path]}
    assert response.headers["cache-control"] == "no-store"


async def test_the_live_stream_without_a_session_is_refused(dash: Dash) -> None:
    response = await dash.http.get("/dashboard/journeys/spring/live")
    assert response.status_code == 401
    assert response.text == "sign in to the dashboard first\n"


async def test_the_sign_in_page_is_a_form_for_the_token(dash: Dash) -> None:
    response = await dash.http.get("/dashboard/sign-in", params={"next": "/dashboard/customers"})
    assert response.status_code == 200
    page = response.text
    assert '<form method="post" action="/dashboard/sign-in"' in page
    assert '<input id="token" name="token" type="password"' in page
    assert '<input type="hidden" name="next" value="/dashboard/customers">' in page
    assert '<link rel="stylesheet" href="/dashboard/static/dashboard.css">' in page
    assert "Sign out" not in page
    assert response.headers["x-frame-options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    assert response.cookies == {} and "set-cookie" not in response.headers


async def test_a_wrong_token_is_refused_with_a_clear_message_and_no_cookie(dash: Dash) -> None:
    typed = "adm_dashboard_test_guess"
    response = await dash.http.post(
        "/dashboard/sign-in", data={"token": typed, "next": "/dashboard/customers"}
    )
    assert response.status_code == 401
    assert "set-cookie" not in response.headers
    assert "That is not the admin token." in response.text
    assert 'role="alert"' in response.text
    assert typed not in response.text  # a mistyped secret is never shown back
    # The page still goes where the visitor was heading once they get it right.
    assert 'name="next" value="/dashboard/customers"' in response.text
    assert (await dash.http.get("/dashboard")).status_code == 303


async def test_an_empty_token_or_a_body_that_is_no_form_is_a_400(dash: Dash) -> None:
    empty = await dash.http.post("/dashboard/sign-in", data={"token": "  "})
    assert empty.status_code == 400
    assert "Type the admin token to sign in." in empty.text
    not_a_form = await dash.http.post("/dashboard/sign-in", json={"token": ADMIN_TOKEN})
    assert not_a_form.status_code == 400
    assert "could not be read" in not_a_form.text
    huge = await dash.http.post("/dashboard/sign-in", data={"token": "x" * 70_000})
    assert huge.status_code == 400
    for response in (empty, not_a_form, huge):
        assert "set-cookie" not in response.headers


async def test_the_right_token_sets_a_session_cookie_that_is_not_the_token(dash: Dash) -> None:
    response = await dash.http.post(
        "/dashboard/sign-in", data={"token": f" {ADMIN_TOKEN} ", "next": "/dashboard/customers"}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/customers"
    [header] = response.headers.get_list("set-cookie")
    cookie = set_cookie(response)[session.COOKIE_NAME]
    assert ADMIN_TOKEN not in header
    assert session.valid(cookie.value, ADMIN_TOKEN)
    assert cookie["httponly"] is True
    assert cookie["samesite"] == "strict"
    assert cookie["path"] == "/dashboard"
    assert cookie["max-age"] == str(session.LIFETIME_SECONDS)
    assert cookie["secure"] == ""  # plain http here; see the https test
    page = await dash.http.get("/dashboard")
    assert page.status_code == 200
    assert "<h1>Journeys</h1>" in page.text
    # Signed in, the sign-in page moves straight on.
    again = await dash.http.get("/dashboard/sign-in", params={"next": "/dashboard/customers"})
    assert again.status_code == 303 and again.headers["location"] == "/dashboard/customers"


async def test_over_https_the_cookie_is_secure(dash: Dash) -> None:
    transport = httpx.ASGITransport(app=dash.app)
    async with httpx.AsyncClient(transport=transport, base_url="https://journeyman.test") as http:
        response = await http.post("/dashboard/sign-in", data={"token": ADMIN_TOKEN})
    assert response.status_code == 303
    assert set_cookie(response)[session.COOKIE_NAME]["secure"] is True


@pytest.mark.parametrize(
    "target",
    ["https://evil.example/dashboard", "//evil.example/dashboard", "/api/journeys",
     "/dashboardx/../api", "/dashboard\\..\\api", "/dashboard/sign-in", ""],
)  # fmt: skip
async def test_signing_in_never_leads_off_the_dashboard(dash: Dash, target: str) -> None:
    response = await dash.http.post(
        "/dashboard/sign-in", data={"token": ADMIN_TOKEN, "next": target}
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard"


async def test_forged_copied_or_stale_cookies_are_refused(dash: Dash) -> None:
    for value in (
        session.issue("adm_some_other_token"),
        ADMIN_TOKEN,
        session.issue(ADMIN_TOKEN, now=0),
    ):
        dash.http.cookies.set(session.COOKIE_NAME, value, domain="journeyman.test")
        response = await dash.http.get("/dashboard")
        assert response.status_code == 303, value


async def test_the_admin_token_as_a_bearer_needs_no_cookie(dash: Dash) -> None:
    assert (await dash.http.get("/dashboard", headers=dash.admin)).status_code == 200
    wrong = await dash.http.get("/dashboard", headers={"Authorization": "Bearer adm_wrong"})
    assert wrong.status_code == 303
    other_scheme = await dash.http.get(
        "/dashboard", headers={"Authorization": f"Basic {ADMIN_TOKEN}"}
    )
    assert other_scheme.status_code == 303


async def test_signing_out_forgets_the_session(dash: Dash) -> None:
    await dash.sign_in()
    assert (await dash.http.get("/dashboard")).status_code == 200
    response = await dash.http.post("/dashboard/sign-out")
    assert response.status_code == 303
    assert response.headers["location"] == "/dashboard/sign-in"
    cleared = set_cookie(response)[session.COOKIE_NAME]
    assert cleared.value == "" and cleared["max-age"] == "0"
    assert cleared["path"] == "/dashboard"
    assert (await dash.http.get("/dashboard")).status_code == 303


async def test_the_stylesheet_is_public_and_revalidated_by_etag(dash: Dash) -> None:
    response = await dash.http.get("/dashboard/static/dashboard.css")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert ".status-paused" in response.text
    again = await dash.http.get(
        "/dashboard/static/dashboard.css", headers={"If-None-Match": response.headers["etag"]}
    )
    assert again.status_code == 304 and again.content == b""
