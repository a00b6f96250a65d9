"""Journey administration over HTTP: deploy, versions, funnel, and the admin token."""

from __future__ import annotations

from journeyman.orchestrator.storage import record_transition

from .conftest import LIFECYCLE, Api


async def test_every_api_route_needs_the_admin_token(api: Api) -> None:
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": "Basic eDp5"}):
        response = await api.http.get("/api/journeys", headers=headers)
        assert response.status_code == 401
        assert response.json()["error"] == "unauthorized"


async def test_deploy_creates_versions_and_keeps_the_old_ones(api: Api) -> None:
    first = await api.deploy()
    same = await api.deploy(LIFECYCLE + "\n# a comment changes nothing\n")
    changed = await api.deploy(LIFECYCLE.replace("Welcome", "Welcome aboard"))
    assert (first["created"], first["activated"]) == (True, True)
    assert (same["created"], same["activated"], same["version"]) == (False, False, first["version"])
    assert changed["version"] != first["version"] and changed["activated"] is True
    [journey] = (await api.http.get("/api/journeys", headers=api.admin)).json()
    assert journey["id"] == "lifecycle"
    assert journey["active_version"] == changed["version"]
    assert journey["versions"] == [first["version"], changed["version"]]


async def test_invalid_journey_is_400_with_its_line_and_changes_nothing(api: Api) -> None:
    broken = LIFECYCLE.replace(
        "goal: {event: Checkout Started}", "goal: {event: Checkout Started, when: 3}"
    )
    response = await api.http.post("/api/journeys", content=broken, headers=api.admin)
    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "invalid_journey"
    assert any(f["line"] == 11 and "when" in f["field"] for f in body["fields"]), body
    assert await api.count("journey_versions") == 0


async def test_funnel_counts_per_stage(api: Api) -> None:
    deployed = await api.deploy()
    version = str(deployed["version"])
    async with api.pool.acquire() as conn:
        for i, outcomes in enumerate(
            [["entered", "converted"], ["entered"], ["entered", "converted"]]
        ):
            moves = [(None, "awareness"), ("awareness", "consideration")]
            for seq, (outcome, (src, dst)) in enumerate(zip(outcomes, moves, strict=False), 1):
                await record_transition(
                    conn,
                    run_key=f"r{i}",
                    seq=seq,
                    journey_id="lifecycle",
                    version=version,
                    customer_id=f"c{i}",
                    workflow_id=f"w{i}",
                    from_stage=src,
                    to_stage=dst,
                    outcome=outcome,  # type: ignore[arg-type]
                )
        # A repeated transition (an activity retry) is not counted twice.
        await record_transition(
            conn,
            run_key="r0",
            seq=2,
            journey_id="lifecycle",
            version=version,
            customer_id="c0",
            workflow_id="w0",
            from_stage="awareness",
            to_stage="consideration",
            outcome="converted",
        )
    response = await api.http.get("/api/journeys/lifecycle/funnel", headers=api.admin)
    assert response.status_code == 200
    stages = {s["stage"]: s for s in response.json()["stages"]}
    assert list(stages) == ["awareness", "consideration"]
    assert stages["awareness"] == {
        "stage": "awareness",
        "entered": 3,
        "current": 1,
        "converted": 2,
        "conversion_rate": 0.6667,
        "moved_on": 0,
        "exited": 0,
        "goal": 0,
        "migrated": 0,
        "exits_by_reason": {},
    }
    assert (stages["consideration"]["entered"], stages["consideration"]["current"]) == (2, 2)
    missing = await api.http.get("/api/journeys/nope/funnel", headers=api.admin)
    assert missing.status_code == 404
