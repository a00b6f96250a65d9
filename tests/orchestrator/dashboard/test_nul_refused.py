"""A NUL (U+0000) in a dashboard path or query is a 400, never a database error."""

from __future__ import annotations

import pytest

from .conftest import Dash

NUL_URLS = [
    "/dashboard/customers/a%00b",
    "/dashboard/customers?q=a%00b",
    "/dashboard/journeys/spr%00ing",
    "/dashboard/journeys/spring?version=v%001",
    "/dashboard/journeys/spring/compare?a=x%00&b=y",
    "/dashboard/journeys/spring/live",
    "/dashboard?unused=%00",
]


@pytest.mark.parametrize("url", NUL_URLS)
async def test_a_nul_in_a_dashboard_url_is_a_400_that_names_it(dash: Dash, url: str) -> None:
    await dash.seeded()
    if url.endswith("/live"):
        url += "?version=%00"  # the event stream too, whose 404 would otherwise query first
    response = await dash.http.get(url, headers=dash.admin)
    assert response.status_code == 400, response.text
    assert "U+0000" in response.json()["message"]


async def test_the_dashboard_still_answers_after_refusing_a_nul(dash: Dash) -> None:
    version = await dash.seeded()
    refused = await dash.http.get("/dashboard/customers/a%00b", headers=dash.admin)
    assert refused.status_code == 400
    page = await dash.http.get(f"/dashboard/journeys/spring?version={version}", headers=dash.admin)
    assert page.status_code == 200, page.text
    missing = await dash.http.get("/dashboard/customers/nobody", headers=dash.admin)
    assert missing.status_code == 404


async def test_a_signed_out_visitor_with_a_nul_gets_the_400_and_no_page(dash: Dash) -> None:
    response = await dash.http.get("/dashboard/customers/a%00b")
    assert response.status_code == 400
    assert "<html" not in response.text.lower()
