"""Exit reasons, cohorts by entry week and the comparison of two versions, over HTTP: JSON and
CSV, the errors, the funnel's exits by reason and how the CLI prints them, and the engine's own
exits (a merge, an erasure) through the real ingest, dispatcher and workflow."""

from __future__ import annotations

import csv
import io
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

import pytest

from journeyman.orchestrator.client_commands import format_funnel
from journeyman.orchestrator.proportions import difference_interval, wilson
from journeyman.orchestrator.storage import record_transition
from journeyman.orchestrator.storage.cohorts import cohort_week

from .conftest import LIFECYCLE, Api
from .test_customers import Live, checkout, eventually, journey_id, live, message, send, track

__all__ = ["live"]  # the fixture, shared with the customer view tests

AWARE, CONSIDER = "awareness", "consideration"


@dataclass
class Runs:
    """Records transitions as the workflow does, one run per customer."""

    api: Api
    version: str
    journey: str = "lifecycle"
    seqs: dict[str, int] = field(default_factory=dict)

    async def move(
        self,
        customer: str,
        from_stage: str | None,
        to_stage: str | None,
        outcome: str,
        **more: Any,
    ) -> None:
        self.seqs[customer] = self.seqs.get(customer, 0) + 1
        async with self.api.pool.acquire() as conn:
            await record_transition(
                conn,
                run_key=f"journey/{self.journey}/{customer}@{self.version}",
                seq=self.seqs[customer],
                journey_id=self.journey,
                version=self.version,
                customer_id=customer,
                workflow_id=f"journey/{self.journey}/{customer}",
                from_stage=from_stage,
                to_stage=to_stage,
                outcome=outcome,  # type: ignore[arg-type]
                **more,
            )

    async def enter(self, customer: str, **more: Any) -> None:
        await self.move(customer, None, AWARE, "entered", **more)


def rows_of(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


async def get(api: Api, url: str, **params: Any) -> Any:
    response = await api.http.get(url, params=params, headers=api.admin)
    assert response.status_code == 200, response.text
    return response.json() if "json" in response.headers["content-type"] else response.text


async def seed_exits(api: Api) -> str:
    version = str((await api.deploy())["version"])
    runs = Runs(api, version)
    for n in range(3):
        await runs.enter(f"t{n}")
        await runs.move(f"t{n}", AWARE, None, "exited", reason="timeout")
    await runs.enter("held", holdout=True)
    await runs.move("held", AWARE, None, "exited", reason="timeout", holdout=True)
    await runs.enter("quiet")
    await runs.move("quiet", AWARE, CONSIDER, "converted")
    await runs.move(
        "quiet", CONSIDER, None, "exited", reason="exit_step", reason_detail="not interested"
    )
    await runs.enter("unsub")
    await runs.move(
        "unsub", AWARE, None, "exited", reason="exit_rule", reason_detail="Unsubscribed"
    )
    return version


async def test_exits_by_stage_and_reason_with_held_out_customers_apart(api: Api) -> None:
    version = await seed_exits(api)
    body = await get(api, "/api/journeys/lifecycle/exits")
    assert body["journey_id"] == "lifecycle" and body["version"] is None
    assert body["exits"] == [
        {
            "stage": AWARE,
            "outcome": "exited",
            "reason": "timeout",
            "detail": None,
            "treated": 3,
            "holdout": 1,
            "total": 4,
        },
        {
            "stage": AWARE,
            "outcome": "exited",
            "reason": "exit_rule",
            "detail": "Unsubscribed",
            "treated": 1,
            "holdout": 0,
            "total": 1,
        },
        {
            "stage": CONSIDER,
            "outcome": "exited",
            "reason": "exit_step",
            "detail": "not interested",
            "treated": 1,
            "holdout": 0,
            "total": 1,
        },
    ]
    same = await get(api, "/api/journeys/lifecycle/exits", version=version)
    assert same["exits"] == body["exits"] and same["version"] == version

    text = await get(api, "/api/journeys/lifecycle/exits", format="csv")
    assert text.splitlines()[0] == "stage,outcome,reason,detail,treated,holdout,total"
    assert rows_of(text)[0] == {
        "stage": AWARE,
        "outcome": "exited",
        "reason": "timeout",
        "detail": "",
        "treated": "3",
        "holdout": "1",
        "total": "4",
    }
    response = await api.http.get(
        "/api/journeys/lifecycle/exits", headers={**api.admin, "Accept": "text/csv"}
    )
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="lifecycle-exits.csv"' in response.headers["content-disposition"]


async def test_the_funnel_splits_exits_by_reason_and_the_cli_prints_them(api: Api) -> None:
    await seed_exits(api)
    body = await get(api, "/api/journeys/lifecycle/funnel")
    stages = {s["stage"]: s for s in body["stages"]}
    assert stages[AWARE]["exits_by_reason"] == {"timeout": 3, "exit_rule": 1, "holdout": 1}
    assert stages[AWARE]["exited"] == sum(stages[AWARE]["exits_by_reason"].values())
    assert stages[CONSIDER]["exits_by_reason"] == {"exit_step": 1}
    printed = format_funnel(body).splitlines()
    assert printed[-3:] == [
        "Left without converting, by reason",
        "awareness      timeout 3, exit_rule 1, holdout 1",
        "consideration  exit_step 1",
    ]
    # A funnel with no exits prints the table alone, as before.
    quiet = {**body, "stages": [{**s, "exits_by_reason": {}} for s in body["stages"]]}
    assert "by reason" not in format_funnel(quiet)


@pytest.mark.parametrize(
    ("url", "status", "message"),
    [
        ("/api/journeys/nope/exits", 404, "no journey 'nope'"),
        ("/api/journeys/lifecycle/exits?version=old", 404, "has no version 'old'"),
        ("/api/journeys/lifecycle/exits?format=xml", 400, "format must be"),
        ("/api/journeys/lifecycle/cohorts?weeks=0", 400, "weeks must be from 1 to 104"),
        ("/api/journeys/lifecycle/cohorts?weeks=105", 400, "weeks must be from 1 to 104"),
        ("/api/journeys/lifecycle/cohorts?weeks=many", 400, "request is not valid"),
        ("/api/journeys/lifecycle/cohorts?until=yesterday", 400, "request is not valid"),
        ("/api/journeys/nope/cohorts", 404, "no journey 'nope'"),
        ("/api/journeys/lifecycle/compare?a=old&b=new", 404, "has no version"),
        ("/api/journeys/lifecycle/compare?a=same&b=same", 400, "two different versions"),
        ("/api/journeys/lifecycle/compare?a=x", 400, "request is not valid"),
        ("/api/journeys/lifecycle/compare?a=x&b=y&table=all", 400, "table must be"),
    ],
)
async def test_bad_report_requests_say_why(api: Api, url: str, status: int, message: str) -> None:
    await api.deploy()
    response = await api.http.get(url, headers=api.admin)
    assert response.status_code == status, response.text
    assert message in response.json()["message"]
    assert (await api.http.get(url)).status_code == 401  # admin only


async def test_cohorts_by_entry_week(api: Api) -> None:
    version = str((await api.deploy())["version"])
    runs = Runs(api, version)
    this_week = cohort_week(datetime.now(UTC))
    monday = datetime.combine(this_week, datetime.min.time(), UTC)
    for n, (entered, ends) in enumerate(
        [
            (monday, ["converted", "goal"]),
            (monday + timedelta(hours=1), ["exited"]),
            (monday - timedelta(weeks=2), ["converted", "converted"]),  # out of the last stage
            (monday - timedelta(weeks=2, seconds=1), []),  # Sunday: three weeks ago
            (monday - timedelta(weeks=20), ["exited"]),  # older than the default 12 weeks
        ]
    ):
        customer = f"c{n}"
        await runs.enter(customer, entered_at=entered)
        stage = AWARE
        for outcome in ends:
            following = CONSIDER if outcome == "converted" and stage == AWARE else None
            extra = {"reason": "timeout"} if outcome == "exited" else {}
            await runs.move(customer, stage, following, outcome, entered_at=entered, **extra)
            stage = following or stage

    body = await get(api, "/api/journeys/lifecycle/cohorts")
    assert body["weeks"] == 12 and body["stages"] == [AWARE, CONSIDER]
    weeks = body["cohorts"]
    assert len(weeks) == 12
    assert weeks[-1]["week"] == this_week.isoformat()
    assert weeks[0]["week"] == (this_week - timedelta(weeks=11)).isoformat()
    by_week = {w["week"]: w for w in weeks}
    assert by_week[this_week.isoformat()] == {
        "week": this_week.isoformat(),
        "entered": 2,
        "reached": {AWARE: 2, CONSIDER: 1},
        "converted": 1,
        "exited": 1,
        "completed": 0,
        "active": 0,
        "conversion_rate": 0.5,
    }
    two_ago = by_week[(this_week - timedelta(weeks=2)).isoformat()]
    assert (two_ago["entered"], two_ago["converted"], two_ago["active"]) == (1, 1, 0)
    three_ago = by_week[(this_week - timedelta(weeks=3)).isoformat()]
    assert (three_ago["entered"], three_ago["reached"][AWARE], three_ago["active"]) == (1, 1, 1)
    assert sum(w["entered"] for w in weeks) == 4  # the run 20 weeks ago is outside

    old = this_week - timedelta(weeks=20)
    [week] = (await get(api, "/api/journeys/lifecycle/cohorts", weeks=1, until=old.isoformat()))[
        "cohorts"
    ]
    assert (week["week"], week["entered"], week["exited"]) == (old.isoformat(), 1, 1)

    text = await get(api, "/api/journeys/lifecycle/cohorts", weeks=3, format="csv")
    assert text.splitlines()[0] == (
        "week,entered,reached_awareness,reached_consideration,converted,exited,completed,"
        "active,conversion_rate"
    )
    assert rows_of(text)[-1] == {
        "week": this_week.isoformat(),
        "entered": "2",
        "reached_awareness": "2",
        "reached_consideration": "1",
        "converted": "1",
        "exited": "1",
        "completed": "0",
        "active": "0",
        "conversion_rate": "0.5",
    }
    assert len(rows_of(text)) == 3


def p_value(ca: int, na: int, cb: int, nb: int) -> float:
    """The pooled two-proportion z-test, written out here."""
    pooled = (ca + cb) / (na + nb)
    z = (cb / nb - ca / na) / math.sqrt(pooled * (1 - pooled) * (1 / na + 1 / nb))
    return 2 * (1 - NormalDist().cdf(abs(z)))


async def test_two_versions_side_by_side(api: Api) -> None:
    a = str((await api.deploy())["version"])
    b = str((await api.deploy(LIFECYCLE.replace("Welcome", "Welcome back")))["version"])
    old, new = Runs(api, a), Runs(api, b)
    # a: 40 entered awareness, 8 converted by its goal, 2 by the journey's goal, 25 timed out,
    # 5 still in it. b: 40 entered, 22 converted, 10 exited by the exit rule, 8 still in it.
    for n in range(40):
        await old.enter(f"a{n}")
        if n < 8:
            await old.move(f"a{n}", AWARE, CONSIDER, "converted")
        elif n < 10:
            await old.move(f"a{n}", AWARE, None, "goal")
        elif n < 35:
            await old.move(f"a{n}", AWARE, None, "exited", reason="timeout", holdout=n < 12)
        await new.enter(f"b{n}")
        if n < 22:
            await new.move(f"b{n}", AWARE, CONSIDER, "converted")
        elif n < 32:
            await new.move(f"b{n}", AWARE, None, "exited", reason="exit_rule")
    # Time to convert: a's conversions took 1h and 3h (the rest are instant), b's 2h.
    for customer, hours in (("a0", 1), ("a1", 3), ("b0", 2)):
        await api.pool.execute(
            "UPDATE stage_transitions SET at = at + $2 WHERE customer_id = $1 AND seq = 2",
            customer,
            timedelta(hours=hours),
        )

    body = await get(api, "/api/journeys/lifecycle/compare", a=a, b=b)
    assert (body["a"], body["b"], body["confidence"]) == (a, b, 0.95)
    aware = body["stages"][0]
    assert aware["stage"] == AWARE and [s["stage"] for s in body["stages"]] == [AWARE, CONSIDER]
    assert (aware["a_entered"], aware["a_converted"], aware["a_still_in"]) == (40, 10, 5)
    assert (aware["b_entered"], aware["b_converted"], aware["b_still_in"]) == (40, 22, 8)
    assert (aware["a_rate"], aware["b_rate"], aware["difference"]) == (0.25, 0.55, 0.3)
    wa, wb = wilson(10, 40), wilson(22, 40)
    assert (aware["a_rate_low"], aware["a_rate_high"]) == (round(wa.low, 4), round(wa.high, 4))
    assert (aware["b_rate_low"], aware["b_rate_high"]) == (round(wb.low, 4), round(wb.high, 4))
    diff = difference_interval(10, 40, 22, 40)
    assert (aware["difference_low"], aware["difference_high"]) == (
        round(diff.low, 4),
        round(diff.high, 4),
    )
    assert 0 < aware["difference_low"] < 0.3 < aware["difference_high"]
    assert aware["p_value"] == pytest.approx(p_value(10, 40, 22, 40), abs=1e-6)
    assert aware["p_value"] < 0.01
    # 10 conversions in a: 8 instant, 1h and 3h (percentiles interpolate); b: 21 instant, 2h.
    assert aware["a_median_seconds"] == pytest.approx(0, abs=1)
    assert aware["a_p90_seconds"] == pytest.approx(3600 + 0.1 * (10800 - 3600), abs=1)
    assert aware["b_p90_seconds"] == pytest.approx(0, abs=1)
    consider = body["stages"][1]
    assert (consider["a_entered"], consider["b_entered"], consider["a_converted"]) == (8, 22, 0)
    assert consider["p_value"] is None  # nobody converted on either side: nothing to test
    assert (consider["a_median_seconds"], consider["b_median_seconds"]) == (None, None)

    assert body["exits"] == [
        {"stage": AWARE, "reason": "timeout", "a": 23, "b": 0, "a_rate": 0.575, "b_rate": 0.0},
        {"stage": AWARE, "reason": "exit_rule", "a": 0, "b": 10, "a_rate": 0.0, "b_rate": 0.25},
        {"stage": AWARE, "reason": "holdout", "a": 2, "b": 0, "a_rate": 0.05, "b_rate": 0.0},
    ]
    # Swapping the sides swaps the sign.
    swapped = await get(api, "/api/journeys/lifecycle/compare", a=b, b=a)
    assert swapped["stages"][0]["difference"] == -0.3

    text = await get(api, "/api/journeys/lifecycle/compare", a=a, b=b, format="csv")
    header = text.splitlines()[0].split(",")
    assert header[:3] == ["stage", "a_entered", "a_converted"]
    assert header[-4:] == ["difference", "difference_low", "difference_high", "p_value"]
    [first, second] = rows_of(text)
    assert (first["stage"], first["a_rate"], first["b_rate"]) == (AWARE, "0.25", "0.55")
    assert second["p_value"] == "" and second["a_median_seconds"] == ""
    text = await get(api, "/api/journeys/lifecycle/compare", a=a, b=b, format="csv", table="exits")
    assert text.splitlines()[0] == "stage,reason,a,b,a_rate,b_rate"
    assert [r["reason"] for r in rows_of(text)] == ["timeout", "exit_rule", "holdout"]


RETENTION = """  - name: retention
    goal: {event: Order Completed}
"""


async def test_compared_stages_run_a_then_b_only_then_those_only_the_counters_know(
    api: Api,
) -> None:
    a = str((await api.deploy())["version"])
    b = str((await api.deploy(LIFECYCLE + RETENTION))["version"])
    old, new = Runs(api, a), Runs(api, b)
    # A run of a passed through "sunset", a stage neither plan names (an older plan had it).
    await old.enter("s1")
    await old.move("s1", AWARE, "sunset", "converted")
    await old.move("s1", "sunset", None, "exited", reason="timeout")
    await new.enter("r1")
    await new.move("r1", AWARE, "retention", "converted")

    body = await get(api, "/api/journeys/lifecycle/compare", a=a, b=b)
    stages = {s["stage"]: s for s in body["stages"]}
    assert list(stages) == [AWARE, CONSIDER, "retention", "sunset"]
    sunset, retention = stages["sunset"], stages["retention"]
    assert (sunset["a_entered"], sunset["b_entered"], sunset["a_converted"]) == (1, 0, 0)
    assert (retention["a_entered"], retention["b_entered"], retention["b_still_in"]) == (0, 1, 1)
    # One side without entrants: the rates are 0, the interval the widest, no test.
    assert (retention["a_rate"], retention["a_rate_low"], retention["a_rate_high"]) == (0, 0, 1)
    assert (retention["difference_low"], retention["difference_high"]) == (-1, 1)
    assert retention["p_value"] is None and sunset["p_value"] is None
    assert [e for e in body["exits"] if e["stage"] == "sunset"] == [
        {"stage": "sunset", "reason": "timeout", "a": 1, "b": 0, "a_rate": 1.0, "b_rate": 0.0}
    ]


async def test_merges_and_erasures_are_exits_of_their_own(live: Live) -> None:
    api = live.api
    jid = journey_id("leaving")
    await api.deploy(checkout(jid))
    await send(
        api,
        message("track", anonymousId="anon-7", event="Checkout Started"),
        track("user-7", "Checkout Started"),
        track("user-8", "Checkout Started"),
    )
    for customer in ("anon-7", "user-7", "user-8"):
        await live.waiting(customer, "await-order")
    # Both sides of a merge were on the journey: one run ends, as the engine's exit.
    await send(api, message("identify", userId="user-7", anonymousId="anon-7"))
    url = f"/api/journeys/{jid}/exits"

    async def merged() -> bool:
        return bool((await get(api, url))["exits"])

    await eventually(merged)
    response = await api.http.delete("/api/customers/user-8", headers=api.admin)
    assert response.status_code == 200, response.text
    exits = (await get(api, url))["exits"]
    assert [(e["stage"], e["outcome"], e["reason"], e["total"]) for e in exits] == [
        ("cart", "exited", "erasure", 1),
        ("cart", "exited", "merge", 1),
    ]
    [cohort] = (await get(api, f"/api/journeys/{jid}/cohorts", weeks=1))["cohorts"]
    assert (cohort["entered"], cohort["exited"], cohort["active"]) == (3, 2, 1)
    assert cohort["week"] == cohort_week(datetime.now(UTC)).isoformat()
