"""Touchpoint KPIs, time to convert and trends, checked against counts made here in Python."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from journeyman.orchestrator.storage import kpis

from .conftest import Api

JOURNEY = """
id: kpi
name: KPI
entry: {event: Signed Up}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    touchpoints:
      - send: {id: welcome, subject: "Welcome", body: "Hello"}
      - send: {id: tips, subject: "Tips", body: "Tips"}
  - name: consideration
    goal: {event: Checkout Started}
    touchpoints:
      - send: {id: offer, channel: sms, body: "Offer"}
"""

# Six in the morning ten days ago (UTC): every row lies within the default 30-day trend.
T0 = (datetime.now(UTC) - timedelta(days=10)).replace(hour=6, minute=0, second=0, microsecond=0)
H = timedelta(hours=1)
D = timedelta(days=1)

SENT = {"queued", "sent", "delivered", "opened", "clicked", "bounced", "complained"}
TOUCHED = SENT - {"bounced"}


@dataclass
class Sent:
    run: str  # workflow id
    customer: str
    step: str
    status: str
    at: datetime
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    delivered_at: datetime | None = None
    version: str | None = None  # None: the deployed version
    journey: str = "kpi"

    @property
    def send_key(self) -> str:
        return f"{self.run}@temporal-run/stage/{self.step}/{int(self.at.timestamp())}"


def wf(customer: str, n: int = 1) -> str:
    return f"journey/kpi/{customer}" + ("" if n == 1 else f"/{n}")


# Customer ids with '@' and '/' in them: run keys are split at their last '@'.
C1, C2, C3, C4, C5, C6 = "c1@example.com", "c2", "c3", "c4", "c5", "c6/x"

DELIVERIES = [
    Sent(wf(C1), C1, "welcome", "delivered", T0, delivered_at=T0 + H),
    Sent(wf(C1), C1, "tips", "opened", T0 + 2 * H, opened_at=T0 + 3 * H),
    Sent(wf(C1), C1, "offer", "sent", T0 + 3 * D),  # after c1 converted
    Sent(wf(C2), C2, "welcome", "clicked", T0, clicked_at=T0 + H),
    Sent(wf(C3), C3, "welcome", "sent", T0),
    Sent(wf(C3), C3, "tips", "bounced", T0 + H),
    Sent(wf(C4), C4, "welcome", "skipped", T0),
    Sent(wf(C4), C4, "tips", "capped", T0 + H),
    Sent(wf(C4), C4, "offer", "delivered", T0 + 3 * D, delivered_at=T0 + 3 * D),
    Sent(wf(C5), C5, "welcome", "sent", T0),  # opened and clicked by tracked events only
    Sent(wf(C5), C5, "tips", "suppressed", T0 + H),
    Sent(wf(C5), C5, "offer", "failed", T0 + 2 * D),
    Sent(wf(C6), C6, "welcome", "complained", T0),
    Sent(wf(C6), C6, "tips", "sending", T0 + H),
    Sent(wf(C1), C1, "legacy", "sent", T0, version="old"),
    Sent("journey/other/c1@example.com", C1, "welcome", "sent", T0, journey="other"),
]
# (customer, event, index into DELIVERIES the send_key comes from)
TRACKED = [
    (C5, "Email Opened", 9),
    (C5, "Link Clicked", 9),
    (C5, "Unsubscribed", 9),
    (C5, "Unsubscribed", 9),  # unsubscribed, resubscribed, unsubscribed again: one message
    (C2, "Unsubscribed", 3),
    (C1, "Unsubscribed", 15),  # another journey's message
    (C1, "Unsubscribed", None),  # from the preference page, no message
]
# Converted runs: (workflow id, customer, journey_runs.converted_at, goal transition at)
CONVERSIONS = [
    (wf(C1), C1, T0 + 5 * H, None),  # last touch: tips (its goal transition is below)
    (wf(C2), C2, T0 + 8 * D, None),  # welcome 8 days before: outside 7d, inside 9d
    (wf(C3), C3, None, T0 + D),  # goal transition only; tips bounced, so welcome
    (wf(C4), C4, T0 + 4 * D, T0 + 4 * D),  # recorded both ways, counted once: offer
    (wf(C6, 2), C6, T0 + D, None),  # second run, no messages of its own
]


def expected_touchpoints(version: str, window: timedelta, only: str | None) -> dict[str, Any]:
    rows = [
        d
        for d in DELIVERIES
        if d.journey == "kpi" and (only is None or (d.version or version) == only)
    ]
    events: dict[str, set[str]] = {}
    for _, name, index in TRACKED:
        if index is not None:
            events.setdefault(DELIVERIES[index].send_key, set()).add(name)
    # The last touch of each converted run, independently of the SQL.
    # A run converts at its earliest record: journey_runs.converted_at or a goal transition.
    converted: dict[str, datetime] = {}
    for run, _, converted_at, goal_at in CONVERSIONS:
        for at in (converted_at, goal_at):
            if at is not None:
                converted[run] = min(at, converted.get(run, at))
    for customer, steps in TRANSITIONS:
        for _, _, outcome, at in steps:
            if outcome == "goal":
                converted[wf(customer)] = min(at, converted.get(wf(customer), at))
    attributed: dict[str, int] = {}
    for run, at in converted.items():
        touches = [
            d for d in rows if d.run == run and d.status in TOUCHED and at - window <= d.at <= at
        ]
        if touches:
            last = max(touches, key=lambda d: d.at)
            attributed[last.step] = attributed.get(last.step, 0) + 1
    out: dict[str, Any] = {}
    for step in sorted({d.step for d in rows}):
        mine = [d for d in rows if d.step == step]

        def n(test: Any, mine: list[Sent] = mine) -> int:
            return sum(1 for d in mine if test(d))

        def ev(d: Sent) -> set[str]:
            return events.get(d.send_key, set())

        suppressed_rule = n(lambda d: d.status == "suppressed")
        skipped = n(lambda d: d.status == "skipped")
        capped = n(lambda d: d.status == "capped")
        out[step] = {
            "total": len(mine),
            "sent": n(lambda d: d.status in SENT),
            "delivered": n(
                lambda d: (
                    d.delivered_at is not None
                    or d.status in {"delivered", "opened", "clicked", "complained"}
                )
            ),
            "opened": n(
                lambda d: (
                    d.opened_at is not None
                    or d.clicked_at is not None
                    or d.status in {"opened", "clicked"}
                    or bool(ev(d) & {"Email Opened", "Link Clicked"})
                )
            ),
            "clicked": n(
                lambda d: (
                    d.clicked_at is not None or d.status == "clicked" or "Link Clicked" in ev(d)
                )
            ),
            "unsubscribed": n(lambda d: "Unsubscribed" in ev(d)),
            "failed": n(lambda d: d.status == "failed"),
            "bounced": n(lambda d: d.status == "bounced"),
            "complained": n(lambda d: d.status == "complained"),
            "suppressed": suppressed_rule + skipped + capped,
            "suppressed_rule": suppressed_rule,
            "skipped": skipped,
            "capped": capped,
            "conversions": attributed.get(step, 0),
        }
    return out


# Stage transitions per run: (run key suffix customer, [(from, to, outcome, at)])
TRANSITIONS: list[tuple[str, list[tuple[str | None, str | None, str, datetime]]]] = [
    (
        C1,
        [
            (None, "awareness", "entered", T0),
            ("awareness", "consideration", "converted", T0 + H),
            ("consideration", None, "goal", T0 + 5 * H),
        ],
    ),
    (
        C2,
        [
            (None, "awareness", "entered", T0),
            ("awareness", "consideration", "converted", T0 + 3 * H),
            ("consideration", None, "exited", T0 + 4 * H),
        ],
    ),
    (C3, [(None, "awareness", "entered", T0 + D), ("awareness", None, "exited", T0 + D + 2 * H)]),
    (
        C4,
        [
            (None, "awareness", "entered", T0 + D),
            ("awareness", "consideration", "converted", T0 + D + 10 * H),
        ],
    ),
    (C5, [(None, "awareness", "entered", T0 + 2 * D)]),
    (C6, [(None, "awareness", "entered", T0 + 2 * D), ("awareness", None, "goal", T0 + 3 * D)]),
]


def percentile_cont(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    position = fraction * (len(ordered) - 1)
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def expected_timing() -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for _, steps in TRANSITIONS:
        for i, (_, to_stage, _, at) in enumerate(steps):
            if to_stage is None:
                continue
            row = out.setdefault(
                to_stage,
                {"entered": 0, "durations": [], "outcomes": {}},
            )
            row["entered"] += 1
            left = steps[i + 1] if i + 1 < len(steps) else None
            outcome = left[2] if left else "still_in"
            row["outcomes"][outcome] = row["outcomes"].get(outcome, 0) + 1
            if left and outcome in ("converted", "goal"):
                row["durations"].append((left[3] - at).total_seconds())
    return out


async def seed(api: Api, version: str) -> None:
    async with api.pool.acquire() as conn:
        for d in DELIVERIES:
            await conn.execute(
                "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id,"
                " channel, status, created_at, delivered_at, opened_at, clicked_at)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
                d.send_key,
                d.journey,
                d.version or version,
                d.customer,
                d.step,
                "sms" if d.step == "offer" else "email",
                d.status,
                d.at,
                d.delivered_at,
                d.opened_at,
                d.clicked_at,
            )
        for i, (customer, name, index) in enumerate(TRACKED):
            properties = {"group": "marketing"}
            if index is not None:
                properties["send_key"] = DELIVERIES[index].send_key
            await conn.execute(
                "INSERT INTO events (message_id, type, customer_id, event, properties,"
                " occurred_at) VALUES ($1, 'track', $2, $3, $4, $5)",
                f"m{i}",
                customer,
                name,
                properties,
                T0 + 5 * D,
            )
        for run, customer, converted_at, goal_at in CONVERSIONS:
            await conn.execute(
                "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, status,"
                " entered_at, converted_at) VALUES ('kpi', $1, $2, $3, $4, $5, $6)",
                customer,
                version,
                run,
                "converted" if converted_at else "completed",
                T0,
                converted_at,
            )
            if goal_at is not None:
                await conn.execute(
                    "INSERT INTO stage_transitions (run_key, seq, journey_id, version,"
                    " customer_id, from_stage, to_stage, outcome, at)"
                    " VALUES ($1, 99, 'kpi', $2, $3, 'consideration', NULL, 'goal', $4)",
                    f"{run}@goal-run",
                    version,
                    customer,
                    goal_at,
                )
        for customer, steps in TRANSITIONS:
            for seq, (from_stage, to_stage, outcome, at) in enumerate(steps, start=1):
                await conn.execute(
                    "INSERT INTO stage_transitions (run_key, seq, journey_id, version,"
                    " customer_id, from_stage, to_stage, outcome, at)"
                    " VALUES ($1, $2, 'kpi', $3, $4, $5, $6, $7, $8)",
                    f"journey/kpi/{customer}@timing-run",
                    seq,
                    version,
                    customer,
                    from_stage,
                    to_stage,
                    outcome,
                    at,
                )


async def deployed(api: Api) -> str:
    version = str((await api.deploy(JOURNEY))["version"])
    await seed(api, version)
    return version


async def test_touchpoints_count_every_state_and_attribute_the_last_touch(api: Api) -> None:
    version = await deployed(api)
    for params, window, only in [
        ({}, 7 * D, None),
        ({"window": "9d"}, 9 * D, None),
        ({"window": "36h", "version": version}, 36 * H, version),
    ]:
        response = await api.http.get(
            "/api/journeys/kpi/touchpoints", params=params, headers=api.admin
        )
        assert response.status_code == 200, response.text
        body = response.json()
        assert body["window_seconds"] == int(window.total_seconds())
        got = {t["step_id"]: t for t in body["touchpoints"]}
        expected = expected_touchpoints(version, window, only)
        # Plan order first, then steps only the ledger knows.
        plan_steps = ["welcome", "tips", "offer"]
        assert [t["step_id"] for t in body["touchpoints"]] == plan_steps + sorted(
            set(expected) - set(plan_steps)
        )
        for step, numbers in expected.items():
            assert {k: got[step][k] for k in numbers} == numbers, (params, step)
        assert (got["offer"]["stage"], got["offer"]["channel"]) == ("consideration", "sms")
    # The hand-made expectations above, spelled out once so that a wrong helper cannot hide.
    seven = expected_touchpoints(version, 7 * D, None)
    assert {s: seven[s]["conversions"] for s in seven} == {
        "welcome": 2,  # c3, and c6's first run (its goal transition is with the timing rows)
        "tips": 1,
        "offer": 1,
        "legacy": 0,
    }
    assert expected_touchpoints(version, 9 * D, None)["welcome"]["conversions"] == 3
    assert (seven["welcome"]["opened"], seven["welcome"]["unsubscribed"]) == (2, 2)


async def test_stage_timing_percentiles_and_exits(api: Api) -> None:
    await deployed(api)
    response = await api.http.get("/api/journeys/kpi/stages/timing", headers=api.admin)
    assert response.status_code == 200, response.text
    stages = {s["stage"]: s for s in response.json()["stages"]}
    assert list(stages) == ["awareness", "consideration"]
    for stage, expected in expected_timing().items():
        got = stages[stage]
        durations = expected["durations"]
        outcomes = expected["outcomes"]
        assert got["entered"] == expected["entered"]
        assert got["converted"] == len(durations)
        assert got["median_seconds"] == round(percentile_cont(durations, 0.5), 3)
        assert got["p90_seconds"] == round(percentile_cont(durations, 0.9), 3)
        assert got["left_converted"] == outcomes.get("converted", 0)
        assert got["left_goal"] == outcomes.get("goal", 0)
        assert got["exited"] == outcomes.get("exited", 0)
        assert got["moved_on"] == outcomes.get("moved_on", 0)
        assert got["still_in"] == outcomes.get("still_in", 0)
    # Spelled out: awareness converted after 1h, 3h, 10h and (journey goal) 24h.
    assert stages["awareness"]["median_seconds"] == 6.5 * 3600
    assert stages["consideration"]["still_in"] == 1


async def test_trends_per_day_and_hour(api: Api) -> None:
    version = await deployed(api)
    everything = [
        (c, step) for c, steps in TRANSITIONS for step in steps
    ]  # the timing runs; goal rows of CONVERSIONS are added below
    goals = [(None, None, "goal", at) for _, _, _, at in CONVERSIONS if at is not None]
    rows = [s for _, s in everything] + goals

    response = await api.http.get("/api/journeys/kpi/trends", headers=api.admin)
    assert response.status_code == 200, response.text
    body = response.json()
    points = body["points"]
    assert len(points) in (30, 31)  # the last 30 days, the current day partly
    by_day = {datetime.fromisoformat(p["bucket"]).date(): p for p in points}
    for day, point in by_day.items():
        entered = sum(
            1 for f, _, o, at in rows if o == "entered" and f is None and at.date() == day
        )
        converted = sum(1 for _, _, o, at in rows if o == "goal" and at.date() == day)
        assert (point["entered"], point["converted"]) == (entered, converted), day
    assert sum(p["entered"] for p in points) == len(TRANSITIONS)

    since, until = T0, T0 + 12 * H
    response = await api.http.get(
        "/api/journeys/kpi/trends",
        params={
            "bucket": "hour",
            "stage": "awareness",
            "version": version,
            "since": since.isoformat(),
            "until": until.isoformat(),
        },
        headers=api.admin,
    )
    assert response.status_code == 200, response.text
    points = response.json()["points"]
    assert len(points) == 12
    for point in points:
        start = datetime.fromisoformat(point["bucket"])
        inside = [s for s in rows if start <= s[3] < start + H]
        assert point["entered"] == sum(1 for s in inside if s[1] == "awareness")
        assert point["converted"] == sum(
            1 for s in inside if s[0] == "awareness" and s[2] in ("converted", "goal")
        )
    assert sum(p["converted"] for p in points) == 2  # 1h and 3h after T0


async def test_csv_by_parameter_or_accept_header(api: Api) -> None:
    await deployed(api)
    for path in ("touchpoints", "stages/timing", "trends"):
        url = f"/api/journeys/kpi/{path}"
        as_json = (await api.http.get(url, headers=api.admin)).json()
        for response in (
            await api.http.get(url, params={"format": "csv"}, headers=api.admin),
            await api.http.get(url, headers={**api.admin, "Accept": "text/csv"}),
        ):
            assert response.status_code == 200, response.text
            assert response.headers["content-type"].startswith("text/csv")
            table = list(csv.DictReader(io.StringIO(response.text)))
            items = as_json.get("touchpoints") or as_json.get("stages") or as_json["points"]
            assert len(table) == len(items)
            assert list(table[0]) == list(items[0])  # the header row names the JSON fields
            for row, item in zip(table, items, strict=True):
                for key, value in item.items():
                    if key == "bucket":
                        assert datetime.fromisoformat(row[key]) == datetime.fromisoformat(value)
                    elif value is None:
                        assert row[key] == ""
                    else:
                        assert type(value)(row[key]) == value, (path, key)
        explicit = await api.http.get(
            url, params={"format": "json"}, headers={**api.admin, "Accept": "text/csv"}
        )
        assert explicit.headers["content-type"].startswith("application/json")


async def test_bad_parameters_are_rejected(api: Api) -> None:
    version = await deployed(api)
    cases = [
        ("touchpoints", {"window": "7w"}, 400),
        ("touchpoints", {"window": "0d"}, 400),
        ("touchpoints", {"window": "400d"}, 400),
        ("touchpoints", {"format": "xml"}, 400),
        ("touchpoints", {"version": "nope"}, 404),
        ("stages/timing", {"version": "nope"}, 404),
        ("stages/timing", {"format": "pdf"}, 400),
        ("trends", {"bucket": "week"}, 400),
        ("trends", {"stage": "nowhere"}, 400),
        ("trends", {"since": "2024-01-02T00:00:00Z", "until": "2024-01-01T00:00:00Z"}, 400),
        ("trends", {"since": "2000-01-01T00:00:00Z", "bucket": "hour"}, 400),
        ("trends", {"since": "yesterday"}, 400),
    ]
    for path, params, status in cases:
        response = await api.http.get(f"/api/journeys/kpi/{path}", params=params, headers=api.admin)
        assert response.status_code == status, (path, params, response.text)
        assert response.json()["message"]
    for path in ("touchpoints", "stages/timing", "trends"):
        missing = await api.http.get(f"/api/journeys/ghost/{path}", headers=api.admin)
        assert missing.status_code == 404
        assert "ghost" in missing.json()["message"]
        anonymous = await api.http.get(f"/api/journeys/kpi/{path}")
        assert anonymous.status_code == 401
    ok = await api.http.get(
        "/api/journeys/kpi/touchpoints", params={"version": version}, headers=api.admin
    )
    assert ok.status_code == 200


async def test_queries_use_the_journey_indexes(api: Api) -> None:
    """With sequential scans priced out, no plan falls back to reading a whole table."""
    await deployed(api)
    async with api.pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        for sql, args in [
            (
                kpis._TOUCHPOINTS_SQL,
                ("kpi", None, 7 * D, list(kpis.TOUCHED), list(kpis.SENT), list(kpis.DELIVERED)),
            ),
            (kpis._TIMING_SQL, ("kpi", None, list(kpis.CONVERTING))),
            (
                kpis._TRENDS_SQL,
                ("kpi", "day", T0, T0 + 3 * D, None, None, list(kpis.CONVERTING)),
            ),
        ]:
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
            assert "Seq Scan" not in plan, plan
        await conn.execute("RESET enable_seqscan")
