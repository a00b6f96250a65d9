"""The emotion curve: survey answers sent through the ingest API, read back per stage and per
touchpoint, checked against averages computed here; and over a real journey run on the
time-skipping server."""

from __future__ import annotations

import asyncio
import csv
import io
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.temporal_client import connect_temporal
from journeyman.workflows.journey import JourneyWorkflow

from ...workflows.conftest import event, running_harness
from .conftest import WRITE_KEY, Api

AUTH = (WRITE_KEY, "")
H = timedelta(hours=1)

SURVEY = """
id: care
name: Care survey
entry: {event: Order Delivered}
stages:
  - name: survey
    touchpoints:
      - send: {id: ask, subject: "How was it?", body: "From 1 to 10?"}
      - send: {id: remind, subject: "Reminder", body: "From 1 to 10?"}
  - name: follow_up
    touchpoints:
      - send: {id: thanks, subject: "Thank you", body: "Thanks"}
  - name: loyalty
    goal: {event: Order Completed}
"""

# Each measure's range, for the common 0-10 scale: low end 0, high end 10.
RANGES = {"csat": (1, 5), "nps": (0, 10), "score": (1, 10)}


def track(user: str, name: str, **properties: Any) -> dict[str, Any]:
    return {
        "type": "track",
        "userId": user,
        "event": name,
        "properties": properties,
        "messageId": str(uuid.uuid4()),
    }


async def run(api: Api, customer: str, version: str, stage: str) -> str:
    workflow_id = f"journey/care/{customer}"
    await api.pool.execute(
        "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, stage, status)"
        " VALUES ('care', $1, $2, $3, $4, 'active')",
        customer,
        version,
        workflow_id,
        stage,
    )
    return workflow_id


async def sent(api: Api, workflow_id: str, customer: str, step: str, ago: timedelta) -> None:
    await api.pool.execute(
        "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id, channel,"
        " status, created_at) VALUES ($1, 'care', 'v', $2, $3, 'email', 'delivered', $4)",
        f"{workflow_id}@r1/stage/{step}/0",
        customer,
        step,
        datetime.now(UTC) - ago,
    )


async def emotions(api: Api, **params: Any) -> dict[str, Any]:
    response = await api.http.get("/api/journeys/care/emotions", params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def expected_point(answers: list[tuple[str, float]]) -> dict[str, Any]:
    """What a stage or touchpoint should show for these (measure, value) answers."""
    values = {m: [v for measure, v in answers if measure == m] for m in RANGES}

    def mean(items: list[float]) -> float | None:
        return sum(items) / len(items) if items else None

    common = [(v - RANGES[m][0]) * 10 / (RANGES[m][1] - RANGES[m][0]) for m, v in answers]
    nps = values["nps"]
    promoters = sum(v >= 9 for v in nps)
    detractors = sum(v <= 6 for v in nps)
    return {
        "answers": len(answers),
        "average": mean(common),
        "csat_answers": len(values["csat"]),
        "csat_average": mean(values["csat"]),
        "nps_answers": len(nps),
        "nps_average": mean(nps),
        "nps": (promoters - detractors) * 100 / len(nps) if nps else None,
        "promoters": promoters,
        "passives": len(nps) - promoters - detractors,
        "detractors": detractors,
        "score_answers": len(values["score"]),
        "score_average": mean(values["score"]),
    }


def assert_point(found: dict[str, Any], answers: list[tuple[str, float]]) -> None:
    for key, value in expected_point(answers).items():
        assert found[key] == (pytest.approx(value) if value is not None else None), key


async def test_the_curve_per_stage_and_per_touchpoint(api: Api) -> None:
    version = str((await api.deploy(SURVEY))["version"])
    # Where each customer's run is, and what it was sent how long ago.
    layout = {
        "c1": ("survey", [("ask", 2 * H)]),
        "c2": ("survey", [("ask", 3 * H), ("remind", H)]),
        "c3": ("follow_up", [("ask", 5 * H), ("thanks", H)]),
        "c4": ("follow_up", []),  # moved on before any message went out
    }
    for customer, (stage, messages) in layout.items():
        workflow_id = await run(api, customer, version, stage)
        for step, ago in messages:
            await sent(api, workflow_id, customer, step, ago)
    given: list[tuple[str, str, dict[str, Any]]] = [
        ("c1", "Survey Answered", {"score": 9}),
        ("c1", "Chat Closed", {"csat": 4}),
        ("c2", "Survey Answered", {"score": 4, "nps": 3}),
        ("c2", "NPS Answered", {"nps": 10}),
        ("c3", "Survey Answered", {"score": "8"}),
        ("c3", "NPS Answered", {"nps": 7}),
        ("c4", "Chat Closed", {"csat": 2}),
        ("c4", "Game Over", {"score": 2}),  # a score on another event is no answer
        ("c1", "Survey Answered", {"score": 42}),  # out of range: rejected
        ("c3", "Chat Closed", {"csat": "great"}),  # not a number: rejected
        ("stranger", "Survey Answered", {"score": 1}),  # in no journey
    ]
    response = await api.http.post(
        "/v1/batch", json={"batch": [track(c, n, **p) for c, n, p in given]}, auth=AUTH
    )
    assert response.status_code == 200
    assert response.json()["accepted"] == len(given)

    body = await emotions(api)
    assert (body["journey_id"], body["version"]) == ("care", None)
    assert [s["stage"] for s in body["stages"]] == ["survey", "follow_up", "loyalty"]
    survey, follow_up, loyalty = body["stages"]
    assert_point(survey, [("score", 9), ("csat", 4), ("score", 4), ("nps", 3), ("nps", 10)])
    assert survey["rejected"] == 1
    assert_point(follow_up, [("score", 8), ("nps", 7), ("csat", 2)])
    assert follow_up["rejected"] == 1
    assert_point(loyalty, [])
    assert loyalty["average"] is None and loyalty["step_id"] is None

    assert [(t["step_id"], t["stage"]) for t in body["touchpoints"]] == [
        ("ask", "survey"),
        ("remind", "survey"),
        ("thanks", "follow_up"),
    ]
    ask, remind, thanks = body["touchpoints"]
    assert_point(ask, [("score", 9), ("csat", 4)])
    assert_point(remind, [("score", 4), ("nps", 3), ("nps", 10)])
    assert_point(thanks, [("score", 8), ("nps", 7)])
    assert (ask["rejected"], thanks["rejected"]) == (1, 1)
    assert remind["nps"] == pytest.approx(0)  # one promoter, one detractor


async def test_versions_and_steps_only_an_older_version_had(api: Api) -> None:
    old = str((await api.deploy(SURVEY.replace("Care survey", "Care")))["version"])
    new = str((await api.deploy(SURVEY))["version"])
    # Answers counted while the older version had a stage and a message the new one lacks.
    await api.pool.execute(
        "INSERT INTO satisfaction_kpis (journey_id, version, stage, step_id, measure, answers,"
        " score_sum) VALUES ('care', $1, 'welcome', 'hello', 'csat', 2, 9),"
        " ('care', $1, 'survey', 'ask', 'score', 1, 10)",
        old,
    )
    workflow_id = await run(api, "c1", new, "survey")
    await sent(api, workflow_id, "c1", "ask", H)
    await api.http.post("/v1/track", json=track("c1", "Survey Answered", score=6), auth=AUTH)

    every = await emotions(api)
    assert [s["stage"] for s in every["stages"]] == ["survey", "follow_up", "loyalty", "welcome"]
    assert_point(every["stages"][0], [("score", 10), ("score", 6)])
    assert_point(every["stages"][3], [("csat", 4.5), ("csat", 4.5)])
    assert [t["step_id"] for t in every["touchpoints"]] == ["ask", "remind", "thanks", "hello"]
    assert every["touchpoints"][3]["stage"] is None
    newest = await emotions(api, version=new)
    assert newest["version"] == new
    assert [s["stage"] for s in newest["stages"]] == ["survey", "follow_up", "loyalty"]
    assert_point(newest["stages"][0], [("score", 6)])
    oldest = await emotions(api, version=old)
    assert_point(oldest["stages"][0], [("score", 10)])


async def test_csv_has_a_row_per_stage_then_per_touchpoint(api: Api) -> None:
    version = str((await api.deploy(SURVEY))["version"])
    workflow_id = await run(api, "c1", version, "survey")
    await sent(api, workflow_id, "c1", "ask", H)
    await api.http.post("/v1/track", json=track("c1", "NPS Answered", nps=9), auth=AUTH)
    response = await api.http.get(
        "/api/journeys/care/emotions", params={"format": "csv"}, headers=api.admin
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="care-emotions.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["level"], r["stage"], r["step_id"]) for r in rows] == [
        ("stage", "survey", ""),
        ("stage", "follow_up", ""),
        ("stage", "loyalty", ""),
        ("touchpoint", "survey", "ask"),
        ("touchpoint", "survey", "remind"),
        ("touchpoint", "follow_up", "thanks"),
    ]
    assert (rows[0]["nps"], rows[0]["promoters"], rows[0]["average"]) == ("100.0", "1", "9.0")
    assert rows[1]["average"] == ""
    json_fields = list((await emotions(api))["stages"][0])
    assert list(rows[0]) == ["level", *json_fields]


@pytest.mark.parametrize(
    ("path", "params", "status"),
    [
        ("/api/journeys/nope/emotions", {}, 404),
        ("/api/journeys/care/emotions", {"version": "nope"}, 404),
        ("/api/journeys/care/emotions", {"format": "xlsx"}, 400),
    ],
)
async def test_unknown_journeys_versions_and_formats(
    api: Api, path: str, params: dict[str, str], status: int
) -> None:
    await api.deploy(SURVEY)
    response = await api.http.get(path, params=params, headers=api.admin)
    assert response.status_code == status
    assert response.json()["message"]


async def test_the_emotion_curve_needs_the_admin_token(api: Api) -> None:
    await api.deploy(SURVEY)
    assert (await api.http.get("/api/journeys/care/emotions")).status_code == 401


LIVE = """
id: live-survey
name: Live survey
entry: {event: Order Delivered}
stages:
  - name: survey
    goal: {event: Survey Answered}
    touchpoints:
      - send: {id: ask, subject: "How was it?", body: "From 1 to 10?"}
      - wait: 3d
  - name: follow_up
    touchpoints:
      - send: {id: thanks, subject: "Thank you", body: "Thanks"}
      - wait: 7d
"""


async def until(check: Callable[[], Any], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_answers_follow_a_real_run_through_its_stages(
    api: Api, temporal_dev_server: TemporalDevServer, database_url: str
) -> None:
    # On real time: on the time-skipping server shared with other tests, the three-day wait
    # could pass while the answer is on its way, moving the run on before its goal arrives.
    client = await connect_temporal(temporal_dev_server.address)
    async with running_harness(WorkflowEnvironment.from_client(client), database_url) as harness:
        plan = await harness.deploy(LIVE)
        await harness.profile("m1", email="m1@example.com")
        handle = await harness.enter(plan, "m1")

        async def sent(step: str, stage: str) -> bool:
            return bool(
                await harness.pool.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM deliveries d JOIN journey_runs r"
                    "  ON r.customer_id = d.customer_id WHERE d.customer_id = 'm1'"
                    "  AND d.step_id = $1 AND d.status = 'sent' AND r.stage = $2)",
                    step,
                    stage,
                )
            )

        await until(lambda: sent("ask", "survey"), "the survey to go out")
        answer = track("m1", "Survey Answered", score=9)
        assert (await api.http.post("/v1/track", json=answer, auth=AUTH)).status_code == 200
        # The dispatcher's part: the answer reaches the run, whose stage goal it is.
        await handle.signal(JourneyWorkflow.on_event, event("Survey Answered", score=9))
        await until(lambda: sent("thanks", "follow_up"), "the thank-you to go out")
        chat = track("m1", "Chat Closed", csat=2)
        assert (await api.http.post("/v1/track", json=chat, auth=AUTH)).status_code == 200

        response = await api.http.get("/api/journeys/live-survey/emotions", headers=api.admin)
        assert response.status_code == 200
        body = response.json()
        survey, follow_up = body["stages"]
        assert (survey["stage"], survey["answers"], survey["score_average"]) == ("survey", 1, 9)
        assert survey["average"] == pytest.approx(80 / 9)
        assert (follow_up["answers"], follow_up["csat_average"]) == (1, 2)
        assert follow_up["average"] == pytest.approx(2.5)
        ask, thanks = body["touchpoints"]
        assert (ask["step_id"], ask["answers"], ask["score_answers"]) == ("ask", 1, 1)
        assert (thanks["step_id"], thanks["answers"], thanks["csat_answers"]) == ("thanks", 1, 1)
