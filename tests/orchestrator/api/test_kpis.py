"""Touchpoint KPIs, time to convert and trends, checked against counts made here in Python."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from journeyman.orchestrator.storage import (
    kpis,
    load_plan,
    property_sql,
    stage_reports,
    touchpoint_report,
)
from journeyman.workflows.conditions import matches_properties
from journeyman.workflows.plan import EventMatch, PropertyTest

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
                touchpoint_report._TOUCHPOINTS_SQL,
                ("kpi", None, 7 * D, list(kpis.TOUCHED), list(kpis.SENT), list(kpis.DELIVERED)),
            ),
            (stage_reports._TIMING_SQL, ("kpi", None, list(stage_reports.CONVERTING))),
            (
                stage_reports._TRENDS_SQL,
                ("kpi", "day", T0, T0 + 3 * D, None, None, list(stage_reports.CONVERTING)),
            ),
        ]:
            plan = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
            assert "Seq Scan" not in plan, plan
        await conn.execute("RESET enable_seqscan")


async def test_kpi_queries_read_each_customers_events_through_their_index(api: Api) -> None:
    """Tracked events by (customer, event, time), page and screen views by (customer, time):
    with sequential scans priced out, the KPI query reads both through them."""
    version = await launched(api)
    plan = await load_plan(api.pool, journey_id="launch", version=version)
    built = kpis.kpi_sql(kpis.declared_touchpoints(plan))
    assert built is not None
    sql, extra = built
    declared = kpis.declared_touchpoints(plan)
    sends = [t.id for t in declared if t.kind == "message" and t.kpi is not None]
    stages = sorted({t.stage for t in declared if t.kind == "observed"})
    args = ("launch", None, list(kpis.TOUCHED), sends, stages, 7 * D, *extra)
    async with api.pool.acquire() as conn:
        await conn.execute("SET enable_seqscan = off")
        explained = "\n".join(r[0] for r in await conn.fetch("EXPLAIN " + sql, *args))
        await conn.execute("RESET enable_seqscan")
    assert "Seq Scan" not in explained, explained
    assert "events_customer_track" in explained, explained
    assert "events_customer_views" in explained, explained


# --- goals and KPIs of touchpoints -----------------------------------------------------------

LAUNCH = """
id: launch
name: Launch
entry: {event: Signed Up}
stages:
  - name: awareness
    goal: {event: Product Viewed}
    observe:
      - {id: website, goal: traffic, kpi: {name: visits, page: true}}
      - id: launch-event
        goal: awareness
        kpi: {name: attendees, event: Event Attended, where: {event_id: launch}}
    touchpoints:
      - send:
          id: invite
          subject: Launch
          body: Come
          goal: awareness
          kpi: {name: RSVPs, event: Event RSVP}
  - name: purchase
    goal: {event: Order Completed}
    observe:
      - {id: store, kpi: {name: store visits, event: Store Visited}}
    touchpoints:
      - send:
          id: dem
          subject: Offer
          body: Buy
          goal: conversion
          kpi: {name: orders, event: Order Completed, where: {total: {gt: 0}}}
      - send: {id: reminder, channel: sms, body: Last day, goal: conversion}
"""
M = timedelta(minutes=1)
A, B, C, DD, E = "a@example.com", "b", "c", "d", "e"  # E never enters the journey
OLD = "old"  # a version before the deployed one


@dataclass
class Visit:
    run: str  # run key
    customer: str
    version: str | None  # None: the deployed version
    transitions: list[tuple[str | None, str | None, str, datetime]]


VISITS = [
    Visit(
        "journey/launch/a@r1",
        A,
        None,
        [
            (None, "awareness", "entered", T0),
            ("awareness", "purchase", "converted", T0 + 2 * H),
            ("purchase", None, "converted", T0 + D),
        ],
    ),
    # a again, later: still in awareness (an open visit counts up to now).
    Visit("journey/launch/a/2@r1", A, None, [(None, "awareness", "entered", T0 + 5 * D)]),
    Visit("journey/launch/b@r1", B, None, [(None, "awareness", "entered", T0 + H)]),
    Visit(
        "journey/launch/c@r1",
        C,
        None,
        [(None, "awareness", "entered", T0), ("awareness", None, "exited", T0 + 3 * H)],
    ),
    Visit(
        "journey/launch/d@r1",
        DD,
        OLD,
        [(None, "awareness", "entered", T0), ("awareness", "purchase", "converted", T0 + H)],
    ),
]
# (step, customer, status, at, version, journey)
MESSAGES: list[tuple[str, str, str, datetime, str | None, str]] = [
    ("invite", A, "sent", T0 + 10 * M, None, "launch"),
    ("invite", B, "delivered", T0 + 70 * M, None, "launch"),
    ("invite", C, "bounced", T0 + 10 * M, None, "launch"),  # no recipient
    ("invite", DD, "sent", T0 + 5 * M, OLD, "launch"),
    ("dem", A, "sent", T0 + 3 * H, None, "launch"),
    ("dem", DD, "opened", T0 + 2 * H, OLD, "launch"),
    ("reminder", A, "sent", T0 + 5 * H, None, "launch"),
    ("legacy", DD, "sent", T0, OLD, "launch"),
    ("invite", E, "sent", T0, None, "other"),  # another journey's message
]
# (customer, type, event, at, properties)
KPI_EVENTS: list[tuple[str, str, str | None, datetime, dict[str, Any]]] = [
    (A, "page", "Home", T0 + H, {"path": "/"}),  # awareness: website
    (A, "page", None, T0 + 3 * H, {}),  # in purchase by then
    (A, "page", "Launch", T0 + 6 * D, {}),  # second visit of awareness, still open
    (B, "page", None, T0 + 30 * M, {}),  # before b entered
    (B, "page", None, T0 + 2 * H, {}),
    (B, "track", "Page Viewed", T0 + 2 * H, {}),  # a tracked event is no page view
    (C, "page", None, T0, {}),  # the moment c entered counts
    (C, "page", None, T0 + 3 * H, {}),  # the moment c left does not
    (DD, "page", None, T0 + 30 * M, {}),  # an older version's visit
    (E, "page", None, T0 + H, {}),  # not in the journey
    (A, "screen", None, T0 + H, {}),  # an app screen is no page view
    (A, "track", "Event Attended", T0 + 90 * M, {"event_id": "launch"}),
    (B, "track", "Event Attended", T0 + 2 * H, {"event_id": "other"}),
    (B, "track", "Event Attended", T0 + 3 * H, {"event_id": "launch"}),
    (C, "track", "Event Attended", T0 + H, {}),
    (A, "track", "Event RSVP", T0 + 5 * M, {}),  # before the invitation
    (A, "track", "Event RSVP", T0 + 20 * M, {}),
    (A, "track", "Event RSVP", T0 + 30 * M, {}),  # twice: two events, one customer
    (B, "track", "Event RSVP", T0 + 70 * M, {}),  # the moment of the message: not after it
    (B, "track", "Event RSVP", T0 + 8 * D, {}),  # 8 days after: within 9d, not 7d
    (C, "track", "Event RSVP", T0 + H, {}),  # c's invitation bounced
    (DD, "track", "Event RSVP", T0 + H, {}),  # after the older version's invitation
    (E, "track", "Event RSVP", T0 + H, {}),
    (A, "track", "Order Completed", T0 + D, {"total": 50}),
    (A, "track", "Order Completed", T0 + D + H, {"total": 0}),
    (A, "track", "Order Completed", T0 + 2 * D, {"total": "50"}),  # text is no number
    (DD, "track", "Order Completed", T0 + 3 * H, {"total": 20}),
    (A, "track", "Store Visited", T0 + 4 * H, {}),
    (A, "track", "Store Visited", T0 + 2 * D, {}),  # a had left purchase
    (DD, "track", "Store Visited", T0 + 2 * H, {}),
]
# What each KPI counts, as the journey above declares it.
KPI_OF: dict[str, tuple[str, str | None, list[PropertyTest]]] = {
    "website": ("page", None, []),
    "launch-event": ("track", "Event Attended", [PropertyTest(path="event_id", value="launch")]),
    "invite": ("track", "Event RSVP", []),
    "store": ("track", "Store Visited", []),
    "dem": ("track", "Order Completed", [PropertyTest(path="total", op="gt", value=0)]),
}
OBSERVED_IN = {"website": "awareness", "launch-event": "awareness", "store": "purchase"}


def counts(kind: str, event: str | None, tests: list[PropertyTest]) -> list[int]:
    """Indexes into KPI_EVENTS of the events a KPI counts, wherever they happened."""
    match = EventMatch(event="-", where=tests)
    return [
        index
        for index, (_, type_, name, _, properties) in enumerate(KPI_EVENTS)
        if type_ == kind and event in (None, name) and matches_properties(match, properties)
    ]


def in_stage(customer: str, at: datetime, stage: str, version: str, only: str | None) -> bool:
    """Whether one of the customer's runs was in ``stage`` at ``at`` (entering counts, leaving
    does not), in a visit that entered in version ``only`` when one is given."""
    for visit in VISITS:
        if visit.customer != customer or only not in (None, visit.version or version):
            continue
        steps = visit.transitions
        for i, (_, to_stage, _, entered) in enumerate(steps):
            left = steps[i + 1][3] if i + 1 < len(steps) else None
            if to_stage == stage and entered <= at and (left is None or at < left):
                return True
    return False


def after_message(
    step: str, customer: str, at: datetime, window: timedelta, version: str, only: str | None
) -> bool:
    """Whether the customer received a message of ``step`` before ``at``, at most ``window``
    before (received: accepted and not bounced)."""
    return any(
        (s, recipient, journey_id) == (step, customer, "launch")
        and status in TOUCHED
        and only in (None, v or version)
        and sent_at < at <= sent_at + window
        for s, recipient, status, sent_at, v, journey_id in MESSAGES
    )


def expected_kpis(version: str, window: timedelta, only: str | None) -> dict[str, tuple[int, int]]:
    """(KPI events, customers) per touchpoint, counted here independently of the SQL."""
    out: dict[str, tuple[int, int]] = {}
    for touchpoint, (kind, event, tests) in KPI_OF.items():
        hits = [
            index
            for index in counts(kind, event, tests)
            if (
                in_stage(
                    KPI_EVENTS[index][0],
                    KPI_EVENTS[index][3],
                    OBSERVED_IN[touchpoint],
                    version,
                    only,
                )
                if touchpoint in OBSERVED_IN
                else after_message(
                    touchpoint, KPI_EVENTS[index][0], KPI_EVENTS[index][3], window, version, only
                )
            )
        ]
        out[touchpoint] = (len(hits), len({KPI_EVENTS[i][0] for i in hits}))
    return out


async def launched(api: Api) -> str:
    version = str((await api.deploy(LAUNCH))["version"])
    async with api.pool.acquire() as conn:
        for visit in VISITS:
            for seq, (from_stage, to_stage, outcome, at) in enumerate(visit.transitions, start=1):
                await conn.execute(
                    "INSERT INTO stage_transitions (run_key, seq, journey_id, version,"
                    " customer_id, from_stage, to_stage, outcome, at)"
                    " VALUES ($1, $2, 'launch', $3, $4, $5, $6, $7, $8)",
                    visit.run,
                    seq,
                    visit.version or version,
                    visit.customer,
                    from_stage,
                    to_stage,
                    outcome,
                    at,
                )
        for n, (step, customer, status, at, v, journey_id) in enumerate(MESSAGES):
            await conn.execute(
                "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id,"
                " channel, status, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                f"journey/{journey_id}/{customer}@r1/{step}/{n}",
                journey_id,
                v or version,
                customer,
                step,
                "sms" if step == "reminder" else "email",
                status,
                at,
            )
        for n, (customer, type_, name, at, properties) in enumerate(KPI_EVENTS):
            await conn.execute(
                "INSERT INTO events (message_id, type, customer_id, event, properties,"
                " occurred_at) VALUES ($1, $2, $3, $4, $5, $6)",
                f"kpi-{n}",
                type_,
                customer,
                name,
                properties,
                at,
            )
    return version


async def test_touchpoints_report_the_goal_and_kpi_of_sends_and_observed_touchpoints(
    api: Api,
) -> None:
    version = await launched(api)
    response = await api.http.get("/api/journeys/launch/touchpoints", headers=api.admin)
    assert response.status_code == 200, response.text
    rows = response.json()["touchpoints"]
    # Stage by stage, observed touchpoints first; then steps only older versions had.
    described = [
        (r["step_id"], r["stage"], r["kind"], r["channel"], r["goal"], r["kpi"], r["kpi_event"])
        for r in rows
    ]
    assert described == [
        ("website", "awareness", "observed", None, "traffic", "visits", "page"),
        ("launch-event", "awareness", "observed", None, "awareness", "attendees", "Event Attended"),
        ("invite", "awareness", "message", "email", "awareness", "RSVPs", "Event RSVP"),
        ("store", "purchase", "observed", None, None, "store visits", "Store Visited"),
        ("dem", "purchase", "message", "email", "conversion", "orders", "Order Completed"),
        ("reminder", "purchase", "message", "sms", "conversion", None, None),
        ("legacy", None, "message", "email", None, None, None),
    ]
    got = {r["step_id"]: (r["kpi_count"], r["kpi_customers"]) for r in rows}
    assert {k: got[k] for k in KPI_OF} == expected_kpis(version, 7 * D, None)
    # Spelled out once, so that a wrong helper cannot hide a wrong query.
    assert got == {
        "website": (5, 4),  # a twice (two visits), b, c as she entered, d (older version)
        "launch-event": (2, 2),
        "invite": (3, 2),  # a's two RSVPs after her invitation, d's
        "store": (2, 2),
        "dem": (2, 2),  # orders over 0 within 7 days of the offer
        "reminder": (None, None),  # a goal without a KPI: nothing to count
        "legacy": (None, None),
    }
    observed_rows = [r for r in rows if r["kind"] == "observed"]
    assert all(r["total"] == r["sent"] == r["conversions"] == 0 for r in observed_rows)
    assert {r["step_id"]: r["sent"] for r in rows if r["kind"] == "message"} == {
        "invite": 4,  # c's bounced, yet it was sent
        "dem": 2,
        "reminder": 1,
        "legacy": 1,
    }

    for params, window, only in [
        ({"window": "9d"}, 9 * D, None),
        ({"window": "36h", "version": version}, 36 * H, version),
        ({"window": "9d", "version": version}, 9 * D, version),
    ]:
        response = await api.http.get(
            "/api/journeys/launch/touchpoints", params=params, headers=api.admin
        )
        assert response.status_code == 200, response.text
        got = {
            r["step_id"]: (r["kpi_count"], r["kpi_customers"])
            for r in response.json()["touchpoints"]
        }
        assert {k: got[k] for k in KPI_OF} == expected_kpis(version, window, only), params
    # b's late RSVP counts in a 9-day window; the older version's visits and messages do not
    # count for the deployed version.
    assert got["invite"] == (3, 2) and got["website"] == (4, 3) and got["dem"] == (1, 1)


async def test_touchpoint_kpis_in_csv_are_the_json_fields(api: Api) -> None:
    await launched(api)
    url = "/api/journeys/launch/touchpoints"
    as_json = (await api.http.get(url, headers=api.admin)).json()["touchpoints"]
    response = await api.http.get(url, params={"format": "csv"}, headers=api.admin)
    assert response.status_code == 200, response.text
    table = list(csv.DictReader(io.StringIO(response.text)))
    assert list(table[0]) == list(as_json[0])
    assert list(table[0])[-6:] == ["kind", "goal", "kpi", "kpi_event", "kpi_count", "kpi_customers"]
    by_id = {row["step_id"]: row for row in table}
    assert (by_id["website"]["kind"], by_id["website"]["kpi"], by_id["website"]["kpi_count"]) == (
        "observed",
        "visits",
        "5",
    )
    assert (by_id["reminder"]["goal"], by_id["reminder"]["kpi_count"]) == ("conversion", "")


# Property values an event may carry (MISSING: the key is absent).
MISSING = object()
VALUES: list[Any] = [
    MISSING, None, True, False, 0, 1, 1.0, 1.5, -2, 10**20, "1", "a", "", "true",
    [1], [], {"x": 1}, {},
]  # fmt: skip
# Under "o": what a dotted path "o.p" walks through.
PARENTS: list[Any] = [MISSING, {"p": 1}, {"p": None}, {"q": 1}, [1], "s", None, {"p": "a"}]
OPERANDS: dict[str, list[Any]] = {
    "eq": [None, True, False, 0, 1, 1.0, 1.5, -2, 10**20, "1", "a", ""],
    "ne": [None, True, 0, 1, "a"],
    "one_of": [[1, "a"], [None], [True], [0, "x"], [1.5, -2]],
    "gt": [0, 1, 1.5, -2],
    "gte": [1, 1.5],
    "lt": [1, 10**21],
    "lte": [-2, 1],
    "exists": [True, False],
}


async def test_kpi_filters_in_sql_match_what_journey_conditions_match(api: Api) -> None:
    """Every operator against values of every JSON type, on plain and dotted paths: the SQL a
    KPI counts with selects exactly the events ``workflows.conditions`` matches."""
    stored: dict[int, dict[str, Any]] = {}
    async with api.pool.acquire() as conn:
        for n, value in enumerate(VALUES):
            for m, parent in enumerate(PARENTS):
                properties: dict[str, Any] = {}
                if value is not MISSING:
                    properties["p"] = value
                if parent is not MISSING:
                    properties["o"] = parent
                event_id = await conn.fetchval(
                    "INSERT INTO events (message_id, type, customer_id, event, properties,"
                    " occurred_at) VALUES ($1, 'track', 'x', 'E', $2, now()) RETURNING id",
                    f"grid-{n}-{m}",
                    properties,
                )
                stored[event_id] = properties
        checked = 0
        for op, operands in OPERANDS.items():
            for operand in operands:
                for path in ("p", "o.p"):
                    tests = [PropertyTest(path=path, op=op, value=operand)]
                    extra: list[object] = []

                    def bind(value: object, cast: str, extra: list[object] = extra) -> str:
                        extra.append(value)
                        return f"${len(extra)}::{cast}"

                    where = property_sql.where_sql(tests, bind)
                    rows = await conn.fetch(f"SELECT id FROM events e WHERE {where}", *extra)
                    match = EventMatch(event="E", where=tests)
                    expected = {i for i, p in stored.items() if matches_properties(match, p)}
                    assert {r["id"] for r in rows} == expected, (op, operand, path)
                    checked += 1
        assert checked == 2 * sum(len(o) for o in OPERANDS.values())
        # Several tests must all hold.
        tests = [
            PropertyTest(path="p", op="gte", value=0),
            PropertyTest(path="o.p", op="exists", value=True),
        ]
        extra = []

        def bind_all(value: object, cast: str) -> str:
            extra.append(value)
            return f"${len(extra)}::{cast}"

        rows = await conn.fetch(
            f"SELECT id FROM events e WHERE {property_sql.where_sql(tests, bind_all)}", *extra
        )
        match = EventMatch(event="E", where=tests)
        assert (
            {r["id"] for r in rows}
            == {i for i, p in stored.items() if matches_properties(match, p)}
            != set()
        )
