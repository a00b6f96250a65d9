"""`GET /healthz` reports each dependency, without credentials, and 503 when one is down."""

from __future__ import annotations

from .conftest import Api


async def test_health_reports_dependencies(api: Api) -> None:
    response = await api.http.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ok",
        "dependencies": {"postgres": "ok", "temporal": "not configured"},
    }


async def test_health_is_503_when_postgres_is_unreachable(api: Api) -> None:
    await api.pool.close()
    response = await api.http.get("/healthz")
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["dependencies"]["postgres"].startswith("down")


async def test_health_is_503_while_temporal_is_unreachable(api: Api) -> None:
    # Configured, but nothing listens there (started while Temporal was down).
    api.services.temporal_address = "127.0.0.1:1"
    response = await api.http.get("/healthz")
    assert response.status_code == 503
    assert response.json()["dependencies"]["temporal"].startswith("down")
    assert response.json()["dependencies"]["postgres"] == "ok"
