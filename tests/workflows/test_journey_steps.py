"""Every step kind and journey rule on the time-skipping server, with real Postgres and SMTP."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from temporalio.client import WorkflowHandle

from journeyman.orchestrator.customers import identity
from journeyman.workflows.inputs import RUN_ENDED_EVENT, MigrateInput
from journeyman.workflows.journey import JourneyWorkflow, is_held_out

from .conftest import Harness, event


async def run_time(handle: WorkflowHandle[JourneyWorkflow, str]) -> timedelta:
    described = await handle.describe()
    assert described.close_time is not None
    return described.close_time - described.start_time


def subjects(harness: Harness, to: str) -> list[str]:
    return [m["Subject"] for m in harness.sink.messages if to in m["To"]]


async def deliveries(harness: Harness, customer_id: str) -> list[tuple[str, str]]:
    rows = await harness.pool.fetch(
        "SELECT step_id, status FROM deliveries WHERE customer_id = $1 ORDER BY created_at",
        customer_id,
    )
    return [(r["step_id"], r["status"]) for r in rows]


async def wait_until(check: object, seconds: float = 10.0) -> None:
    for _ in range(int(seconds / 0.05)):
        if await check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not reached in time")


BRANCH = """
id: vip-branch
name: Branch on tier and behaviour
entry: {event: Signed Up}
traits: [tier]
stages:
  - name: welcome
    touchpoints:
      - branch:
          cases:
            - when: profile.tier == "gold"
              then:
                - send: {id: gold, subject: "Gold welcome", body: "Hi"}
            - when: 'count("Order Completed", within: 30d) >= 2'
              then:
                - send: {id: repeat, subject: "Repeat buyer", body: "Hi"}
          otherwise:
            - send: {id: standard, subject: "Standard welcome", body: "Hi"}
      - send: {id: after, subject: "After the branch", body: "Hi"}
"""


async def test_branch_takes_the_first_matching_case_else_otherwise(harness: Harness) -> None:
    plan = await harness.deploy(BRANCH)
    await harness.profile("b1", email="b1@example.com", tier="gold")
    await harness.profile("b2", email="b2@example.com", tier="silver")
    await harness.profile("b3", email="b3@example.com")
    now = await harness.env.get_current_time()
    for days in (1, 3):
        await harness.pool.execute(
            "INSERT INTO events (message_id, type, customer_id, event, occurred_at)"
            " VALUES ($1, 'track', 'b2', 'Order Completed', $2)",
            f"b2-order-{days}",
            now - timedelta(days=days),
        )
    handles = [await harness.enter(plan, c) for c in ("b1", "b2", "b3")]
    assert [await h.result() for h in handles] == ["completed"] * 3

    assert subjects(harness, "b1@") == ["Gold welcome", "After the branch"]
    assert subjects(harness, "b2@") == ["Repeat buyer", "After the branch"]
    assert subjects(harness, "b3@") == ["Standard welcome", "After the branch"]


SPLIT_UPDATE_EXIT = """
id: split-update
name: Split, update, exit
entry: {event: Signed Up}
stages:
  - name: onboarding
    touchpoints:
      - update: {set: {tier: bronze}, increment: {points: 10}, tags: [new]}
      - split:
          - name: left
            weight: 1
            then:
              - send: {id: left-mail, subject: "Left", body: "Hi"}
              - exit: chose left
          - name: right
            weight: 1
            then:
              - send: {id: right-mail, subject: "Right", body: "Hi"}
      - update: {increment: {points: 5}, tags: [new, finished]}
  - name: after
    touchpoints:
      - send: {id: after, subject: "Next stage", body: "Hi"}
"""


async def test_split_is_stable_per_customer_and_update_and_exit_work(harness: Harness) -> None:
    plan = await harness.deploy(SPLIT_UPDATE_EXIT)
    customers = [f"s{n}" for n in range(8)]
    for customer in customers:
        await harness.profile(customer, email=f"{customer}@example.com", points=1)
    handles = [await harness.enter(plan, c) for c in customers]
    results = [await h.result() for h in handles]

    for customer, result in zip(customers, results, strict=True):
        traits = await harness.pool.fetchval(
            "SELECT traits FROM profiles WHERE customer_id = $1", customer
        )
        got = subjects(harness, f"{customer}@")
        assert traits["tier"] == "bronze"
        if got == ["Left"]:
            assert result == "exited"
            assert traits["points"] == 11 and traits["tags"] == ["new"]
        else:
            assert got == ["Right", "Next stage"] and result == "completed"
            assert traits["points"] == 16 and traits["tags"] == ["new", "finished"]
    assert {tuple(subjects(harness, f"{c}@"))[:1] for c in customers} == {("Left",), ("Right",)}


GOTO_LOOP = """
id: nag-loop
name: Reminder loop until the goal or dwell
entry: {event: Signed Up}
stages:
  - name: trial
    goal: {event: Subscribed}
    max_dwell: 10d
    touchpoints:
      - send: {id: reminder, subject: "Reminder", body: "Hi"}
      - wait: 3d
      - goto: reminder
  - name: customer
    touchpoints:
      - send: {id: thanks, subject: "Thanks", body: "Hi"}
"""


async def test_goto_loops_with_a_new_message_each_visit(harness: Harness) -> None:
    plan = await harness.deploy(GOTO_LOOP)
    await harness.profile("g1", email="g1@example.com")
    handle = await harness.enter(plan, "g1")
    assert await handle.result() == "exited"
    # Days 0, 3, 6 and 9: four visits of the step, four distinct ledger rows, then dwell ends.
    assert subjects(harness, "g1@") == ["Reminder"] * 4
    assert [status for _, status in await deliveries(harness, "g1")] == ["sent"] * 4
    assert timedelta(days=10) <= await run_time(handle) < timedelta(days=10, hours=1)


GOTO_STAGE = """
id: skip-ahead
name: Goto a later stage
entry: {event: Signed Up}
stages:
  - name: one
    touchpoints:
      - send: {id: one, subject: "One", body: "Hi"}
      - goto: three
  - name: two
    touchpoints:
      - send: {id: two, subject: "Two", body: "Hi"}
  - name: three
    touchpoints:
      - send: {id: three, subject: "Three", body: "Hi"}
"""


async def test_goto_a_stage_skips_the_stages_between(harness: Harness) -> None:
    plan = await harness.deploy(GOTO_STAGE)
    await harness.profile("g2", email="g2@example.com")
    assert await (await harness.enter(plan, "g2")).result() == "completed"
    assert subjects(harness, "g2@") == ["One", "Three"]
    kpis = await harness.kpis("skip-ahead")
    assert kpis["one"]["moved_on"] == 1 and "two" not in kpis and kpis["three"]["entered"] == 1


WAIT_FOR_PATHS = """
id: reply-paths
name: Happened and timed out
entry: {event: Signed Up}
stages:
  - name: ask
    touchpoints:
      - wait: 1h
      - wait_for:
          event: Replied
          timeout: 2d
          lookback: 2h
          on_event:
            - send: {id: thanks, subject: "Thanks for replying", body: "Hi"}
          on_timeout:
            - send: {id: nudge, subject: "Did you see this?", body: "Hi"}
"""


async def test_wait_for_runs_on_event_or_on_timeout_and_honours_lookback(
    harness: Harness,
) -> None:
    plan = await harness.deploy(WAIT_FOR_PATHS)
    await harness.profile("w1", email="w1@example.com")
    await harness.profile("w2", email="w2@example.com")
    fast = await harness.enter(plan, "w1")
    # The reply comes during the first hour, before the wait_for starts: the look-back counts it.
    await fast.signal(JourneyWorkflow.on_event, event("Replied"))
    slow = await harness.enter(plan, "w2")
    assert await fast.result() == "completed"
    assert await slow.result() == "completed"
    assert subjects(harness, "w1@") == ["Thanks for replying"]
    assert subjects(harness, "w2@") == ["Did you see this?"]
    assert await run_time(slow) >= timedelta(days=2, hours=1)


EXIT_AND_GOAL = """
id: exits-and-goal
name: Journey exit and goal
entry: {event: Signed Up}
goal: {event: Order Completed, within: 5d}
exit: [{event: Unsubscribed}]
stages:
  - name: nurture
    touchpoints:
      - send: {id: first, subject: "First", body: "Hi"}
      - wait: 30d
      - send: {id: second, subject: "Second", body: "Hi"}
"""


async def test_exit_and_goal_are_watched_continuously(harness: Harness) -> None:
    plan = await harness.deploy(EXIT_AND_GOAL)
    for customer in ("e1", "e2", "e3"):
        await harness.profile(customer, email=f"{customer}@example.com")
    leaver = await harness.enter(plan, "e1")
    buyer = await harness.enter(plan, "e2")
    await wait_until(lambda: _sent(harness, "e1@", "e2@"))
    await leaver.signal(JourneyWorkflow.on_event, event("Unsubscribed"))
    await buyer.signal(JourneyWorkflow.on_event, event("Order Completed"))
    assert await leaver.result() == "exited"
    assert await buyer.result() == "converted"
    assert await run_time(leaver) < timedelta(hours=1)
    assert await run_time(buyer) < timedelta(hours=1)

    # Outside the conversion window, the goal event no longer counts.
    late = await harness.enter(plan, "e3")
    await wait_until(lambda: _sent(harness, "e3@"))
    await harness.env.sleep(timedelta(days=6))
    await late.signal(JourneyWorkflow.on_event, event("Order Completed"))
    assert await late.result() == "completed"
    assert subjects(harness, "e3@") == ["First", "Second"]
    rows = await harness.pool.fetch(
        "SELECT customer_id, status, converted_at IS NOT NULL AS converted FROM journey_runs"
        " WHERE journey_id = 'exits-and-goal' ORDER BY customer_id"
    )
    assert [(r["customer_id"], r["status"], r["converted"]) for r in rows] == [
        ("e1", "exited", False),
        ("e2", "converted", True),
        ("e3", "completed", False),
    ]
    kpis = await harness.pool.fetchrow(
        "SELECT goal, exited FROM stage_kpis WHERE journey_id = 'exits-and-goal'"
    )
    assert kpis is not None and (kpis["goal"], kpis["exited"]) == (1, 1)


async def test_the_engines_run_ended_event_ends_a_run_as_an_exit(harness: Harness) -> None:
    # Sent when two customers merge while both are on the journey, or on erasure: the run
    # leaves at once, mid-delay, by its own transition, so the stage counts the exit.
    plan = await harness.deploy(EXIT_AND_GOAL.replace("exits-and-goal", "run-ended"))
    await harness.profile("m1", email="m1@example.com")
    run = await harness.enter(plan, "m1")
    await wait_until(lambda: _sent(harness, "m1@"))
    await run.signal(JourneyWorkflow.on_event, event(RUN_ENDED_EVENT, reason="merged"))
    assert await run.result() == "exited"
    assert await run_time(run) < timedelta(hours=1)
    assert subjects(harness, "m1@") == ["First"]
    exited = await harness.pool.fetchval(
        "SELECT exited FROM stage_kpis WHERE journey_id = 'run-ended'"
    )
    assert exited == 1


MERGED_SEND = """
id: merged-send
name: Send after a merge
entry: {event: Signed Up}
stages:
  - name: only
    touchpoints:
      - wait: 1d
      - send: {id: hello, subject: "Hello {{ profile.name }}", body: "Hi"}
"""


async def test_a_run_handed_over_by_a_merge_reads_the_merged_profile(harness: Harness) -> None:
    plan = await harness.deploy(MERGED_SEND)
    await harness.profile("visitor-1")  # anonymous: no address yet
    await harness.profile("known-1", email="known-1@example.com", name="Ana")
    run = await harness.enter(plan, "visitor-1")
    await wait_until(lambda: _has_run(harness, run.id))
    async with harness.pool.acquire() as conn, conn.transaction():
        merged = await identity.merge(
            conn, from_id="visitor-1", into_id="known-1", reason="identify"
        )
    assert merged is not None and merged.runs.handed_over == [run.id]
    assert await run.result() == "completed"
    assert subjects(harness, "known-1@") == ["Hello Ana"]


async def _waiting_at(run: WorkflowHandle[JourneyWorkflow, str], step: str) -> bool:
    position = await run.query(JourneyWorkflow.position)
    return position.step == step


async def _has_run(harness: Harness, workflow_id: str) -> bool:
    found = await harness.pool.fetchval(
        "SELECT count(*) FROM journey_runs WHERE workflow_id = $1", workflow_id
    )
    return bool(found)


async def _sent(harness: Harness, *recipients: str) -> bool:
    return all(subjects(harness, r) for r in recipients)


HOLDOUT = """
id: holdout-test
name: Holdout
entry: {event: Signed Up, holdout: 50%}
stages:
  - name: only
    touchpoints:
      - send: {id: hello, subject: "Hello", body: "Hi"}
"""


async def test_held_out_customers_receive_nothing_and_are_counted(harness: Harness) -> None:
    plan = await harness.deploy(HOLDOUT)
    held = next(f"h{n}" for n in range(100) if is_held_out(plan, f"h{n}"))
    treated = next(f"h{n}" for n in range(100) if not is_held_out(plan, f"h{n}"))
    for customer in (held, treated):
        await harness.profile(customer, email=f"{customer}@example.com")
        assert await (await harness.enter(plan, customer)).result() == "completed"
    assert subjects(harness, f"{held}@") == []
    assert subjects(harness, f"{treated}@") == ["Hello"]
    flags = await harness.pool.fetch(
        "SELECT customer_id, holdout FROM journey_runs WHERE journey_id = 'holdout-test'"
    )
    assert {r["customer_id"]: r["holdout"] for r in flags} == {held: True, treated: False}


def _clock(moment: datetime) -> str:
    return moment.strftime("%H:%M")


async def test_quiet_hours_defer_the_send_to_their_end(harness: Harness) -> None:
    now = await harness.env.get_current_time()
    start, end = _clock(now - timedelta(hours=1)), _clock(now + timedelta(hours=3))
    plan = await harness.deploy(
        f"""
id: quiet
name: Quiet hours
entry: {{event: Signed Up}}
timezone: UTC
quiet_hours: {{start: "{start}", end: "{end}"}}
stages:
  - name: only
    touchpoints:
      - send: {{id: hello, subject: "Hello", body: "Hi"}}
"""
    )
    await harness.profile("q1", email="q1@example.com")
    handle = await harness.enter(plan, "q1")
    assert await handle.result() == "completed"
    assert subjects(harness, "q1@") == ["Hello"]
    assert timedelta(hours=2, minutes=50) <= await run_time(handle) <= timedelta(hours=3, minutes=2)


async def test_quiet_hours_skip_records_the_skip(harness: Harness) -> None:
    now = await harness.env.get_current_time()
    start, end = _clock(now - timedelta(hours=1)), _clock(now + timedelta(hours=3))
    plan = await harness.deploy(
        f"""
id: quiet-skip
name: Quiet hours skip
entry: {{event: Signed Up}}
quiet_hours: {{start: "{start}", end: "{end}", action: skip}}
stages:
  - name: only
    touchpoints:
      - send: {{id: hello, subject: "Hello", body: "Hi"}}
"""
    )
    await harness.profile("q2", email="q2@example.com", timezone="UTC")
    assert await (await harness.enter(plan, "q2")).result() == "completed"
    assert subjects(harness, "q2@") == []
    assert await deliveries(harness, "q2") == [("hello", "skipped")]


def _capped_journey(journey_id: str) -> str:
    return f"""
id: {journey_id}
name: Capped {journey_id}
entry: {{event: Signed Up}}
frequency_caps: [{{channel: email, limit: 1, per: 7d}}]
stages:
  - name: only
    touchpoints:
      - send: {{id: {journey_id}-hello, subject: "Hello from {journey_id}", body: "Hi"}}
"""


async def test_frequency_cap_counts_across_journeys(harness: Harness) -> None:
    first = await harness.deploy(_capped_journey("cap-a"))
    second = await harness.deploy(_capped_journey("cap-b"))
    await harness.profile("f1", email="f1@example.com")
    # Both runs at once (awaiting one result lets the test server jump years ahead): the
    # customer lock lets exactly one message through, whichever journey comes first.
    runs = [await harness.enter(first, "f1"), await harness.enter(second, "f1")]
    assert [await run.result() for run in runs] == ["completed", "completed"]
    assert len(subjects(harness, "f1@")) == 1
    statuses = sorted(status for _, status in await deliveries(harness, "f1"))
    assert statuses == ["capped", "sent"]


LOCALES = """
id: localised
name: Per-locale content
entry: {event: Signed Up}
templates:
  welcome:
    subject: "Welcome"
    body: "Hello"
    locales:
      fr: {subject: "Bienvenue", body: "Bonjour"}
stages:
  - name: only
    touchpoints:
      - send: {template: welcome}
"""


async def test_send_picks_the_profile_locale_then_its_language(harness: Harness) -> None:
    plan = await harness.deploy(LOCALES)
    await harness.profile("l1", email="l1@example.com", locale="fr-CA")
    await harness.profile("l2", email="l2@example.com", locale="de")
    for customer in ("l1", "l2"):
        assert await (await harness.enter(plan, customer)).result() == "completed"
    assert subjects(harness, "l1@") == ["Bienvenue"]
    assert subjects(harness, "l2@") == ["Welcome"]


TIMED = """
id: timed
name: Local time waits
entry: {event: Signed Up}
stages:
  - name: only
    touchpoints:
      - wait: {until: "09:00", weekdays: [mon]}
      - send: {id: monday, subject: "Monday morning", body: "Hi"}
      - wait: {until_date: renewal_date, offset: -7d, at: "10:00"}
      - send: {id: renewal, subject: "Renewal soon", body: "Hi"}
"""


async def test_waits_until_local_time_and_a_profile_date(harness: Harness) -> None:
    plan = await harness.deploy(TIMED)
    # The test server's clock runs ahead of the wall clock once earlier tests skipped time.
    renewal = (await harness.env.get_current_time() + timedelta(days=30)).date().isoformat()
    await harness.profile(
        "t1", email="t1@example.com", timezone="America/New_York", renewal_date=renewal
    )
    handle = await harness.enter(plan, "t1")
    assert await handle.result() == "completed"
    sent = await harness.pool.fetch(
        "SELECT step_id FROM deliveries WHERE customer_id = 't1' ORDER BY created_at"
    )
    assert [r["step_id"] for r in sent] == ["monday", "renewal"]
    # 23 days before the renewal date at 10:00 New York time, plus or minus the first wait.
    assert timedelta(days=22) <= await run_time(handle) <= timedelta(days=24)


PAUSABLE = """
id: pausable
name: Pause and resume
entry: {event: Signed Up}
stages:
  - name: only
    touchpoints:
      - wait: 1h
      - send: {id: hello, subject: "Hello", body: "Hi"}
"""


async def test_a_paused_journey_holds_its_customers_until_resumed(harness: Harness) -> None:
    plan = await harness.deploy(PAUSABLE)
    await harness.pool.execute(
        "UPDATE journeys SET status = 'paused' WHERE journey_id = 'pausable'"
    )
    await harness.profile("p1", email="p1@example.com")
    handle = await harness.enter(plan, "p1")
    await harness.env.sleep(timedelta(hours=5))
    assert subjects(harness, "p1@") == []
    await harness.pool.execute(
        "UPDATE journeys SET status = 'active' WHERE journey_id = 'pausable'"
    )
    assert await handle.result() == "completed"
    assert subjects(harness, "p1@") == ["Hello"]
    assert await run_time(handle) >= timedelta(hours=5)


MIGRATE_V1 = """
id: migrating
name: Migration
entry: {event: Signed Up}
stages:
  - name: nurture
    touchpoints:
      - send: {id: first, subject: "First", body: "Hi"}
      - id: await-reply
        wait_for:
          event: Replied
          timeout: 10d
          on_timeout:
            - send: {id: old-nudge, subject: "Old nudge", body: "Hi"}
"""

MIGRATE_V2 = """
id: migrating
name: Migration
entry: {event: Signed Up}
stages:
  - name: nurture
    touchpoints:
      - send: {id: first, subject: "First", body: "Hi"}
      - id: await-answer
        wait_for:
          event: Replied
          timeout: 2d
          on_timeout:
            - send: {id: new-nudge, subject: "New nudge", body: "Hi"}
  - name: followup
    touchpoints:
      - send: {id: extra, subject: "Extra", body: "Hi"}
"""


async def test_runs_stay_pinned_until_an_explicit_migration_moves_them(harness: Harness) -> None:
    v1 = await harness.deploy(MIGRATE_V1)
    for customer in ("m1", "m2"):
        await harness.profile(customer, email=f"{customer}@example.com")
    pinned = await harness.enter(v1, "m1")
    moved = await harness.enter(v1, "m2")
    await wait_until(lambda: _sent(harness, "m1@", "m2@"))
    # A migration moves customers waiting at a step; the email goes out a moment before the
    # run reaches its wait_for.
    await wait_until(lambda: _waiting_at(moved, "await-reply"))
    v2 = await harness.deploy(MIGRATE_V2)
    await moved.signal(
        JourneyWorkflow.on_migrate,
        MigrateInput(version=v2.version, steps={"await-reply": "await-answer"}),
    )
    assert await moved.result() == "completed"
    assert await pinned.result() == "completed"
    assert subjects(harness, "m1@") == ["First", "Old nudge"]
    assert subjects(harness, "m2@") == ["First", "New nudge", "Extra"]
    run = await harness.pool.fetchrow(
        "SELECT version FROM journey_runs WHERE journey_id = 'migrating' AND customer_id = 'm2'"
    )
    assert run is not None and run["version"] == v2.version
    migrated = await harness.pool.fetchval(
        "SELECT migrated FROM stage_kpis WHERE journey_id = 'migrating' AND version = $1",
        v1.version,
    )
    assert migrated == 1


THROTTLED = """
id: throttled
name: Throttled
entry: {event: Signed Up}
throttle: 2
stages:
  - name: only
    touchpoints:
      - send: {id: hello, subject: "Hello", body: "Hi"}
"""


async def test_the_throttle_defers_sends_beyond_the_rate(harness: Harness) -> None:
    plan = await harness.deploy(THROTTLED)
    customers = [f"r{n}" for n in range(5)]
    for customer in customers:
        await harness.profile(customer, email=f"{customer}@example.com")
    handles = [await harness.enter(plan, c) for c in customers]
    assert [await h.result() for h in handles] == ["completed"] * 5
    times = sorted([await run_time(h) for h in handles])
    # Two per minute: two at once, two a minute later, the last a minute after that.
    assert times[1] < timedelta(seconds=30)
    assert timedelta(seconds=59) <= times[2] and times[3] < timedelta(seconds=90)
    assert timedelta(seconds=119) <= times[4] < timedelta(seconds=150)
    assert len(harness.sink.messages) >= 5


EXPERIMENT = """
id: subject-test
name: Experiment with a winner
entry: {event: Signed Up}
stages:
  - name: only
    touchpoints:
      - id: offer-test
        experiment:
          control: plain
          variants:
            - name: plain
              weight: 1
              then:
                - send: {id: plain-mail, subject: "Our offer", body: "Hi"}
            - name: discount
              weight: 1
              then:
                - send: {id: discount-mail, subject: "20% off", body: "Hi"}
          metric: {event: Order Completed, within: 7d}
          decide: {after: 3d, min_per_variant: 100}
"""


async def test_an_experiment_sends_later_entrants_to_the_winner(harness: Harness) -> None:
    plan = await harness.deploy(EXPERIMENT)
    now = await harness.env.get_current_time()
    assigned = now - timedelta(days=10)
    # 200 earlier entrants: the discount converted 30 %, the control 10 %.
    for n in range(200):
        variant = "plain" if n % 2 else "discount"
        customer = f"past-{n}"
        await harness.pool.execute(
            "INSERT INTO experiment_assignments"
            " (journey_id, step_id, customer_id, variant, assigned_at)"
            " VALUES ('subject-test', 'offer-test', $1, $2, $3)",
            customer,
            variant,
            assigned,
        )
        if (variant == "discount" and n % 20 in (0, 2, 4)) or (variant == "plain" and n % 20 == 1):
            await harness.pool.execute(
                "INSERT INTO events (message_id, type, customer_id, event, occurred_at)"
                " VALUES ($1, 'track', $2, 'Order Completed', $3)",
                f"order-{customer}",
                customer,
                assigned + timedelta(days=2),
            )
    newcomers = [f"x{n}" for n in range(6)]
    for customer in newcomers:
        await harness.profile(customer, email=f"{customer}@example.com")
        assert await (await harness.enter(plan, customer)).result() == "completed"
    assert [subjects(harness, f"{c}@") for c in newcomers] == [["20% off"]] * 6
    decision = await harness.pool.fetchrow(
        "SELECT winner, results FROM experiment_decisions WHERE journey_id = 'subject-test'"
    )
    assert decision is not None and decision["winner"] == "discount"
    assert decision["results"]["discount"] == {"entrants": 100, "conversions": 30}
    assert decision["results"]["plain"] == {"entrants": 100, "conversions": 10}


URGENT = """
id: urgent
name: Urgent
entry: {event: Signed Up}
priority: 1
stages:
  - name: only
    touchpoints:
      - send: {id: hello, subject: "Hello", body: "Hi"}
"""


async def test_the_journey_priority_goes_with_its_sends(harness: Harness) -> None:
    plan = await harness.deploy(URGENT)
    await harness.profile("u1", email="u1@example.com")
    handle = await harness.enter(plan, "u1")
    assert await handle.result() == "completed"
    history = await handle.fetch_history()
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    ]
    sends = [a for a in scheduled if a.activity_type.name == "send_message"]
    assert [a.priority.priority_key for a in sends] == [1]


async def test_quiet_hours_follow_each_customers_time_zone(harness: Harness) -> None:
    zone = ZoneInfo("Pacific/Kiritimati")  # UTC+14: its night is the middle of a UTC day
    local = (await harness.env.get_current_time()).astimezone(zone)
    start, end = _clock(local - timedelta(hours=1)), _clock(local + timedelta(hours=3))
    plan = await harness.deploy(
        f"""
id: quiet-zones
name: Quiet hours by zone
entry: {{event: Signed Up}}
quiet_hours: {{start: "{start}", end: "{end}"}}
stages:
  - name: only
    touchpoints:
      - send: {{id: hello, subject: "Hello", body: "Hi"}}
"""
    )
    await harness.profile("z1", email="z1@example.com", timezone="Pacific/Kiritimati")
    await harness.profile("z2", email="z2@example.com", timezone="Not/AZone")  # falls back: UTC
    islander = await harness.enter(plan, "z1")
    elsewhere = await harness.enter(plan, "z2")
    assert [await islander.result(), await elsewhere.result()] == ["completed"] * 2
    assert (
        timedelta(hours=2, minutes=50) <= await run_time(islander) <= timedelta(hours=3, minutes=2)
    )
    assert await run_time(elsewhere) < timedelta(minutes=5)


HELD_OUT_EXPERIMENT = """
id: held-experiment
name: Holdout and experiment
entry: {event: Signed Up, holdout: 50%}
stages:
  - name: only
    touchpoints:
      - id: test
        experiment:
          control: plain
          variants:
            - {name: plain, weight: 1, then: [{send: {id: p, subject: P, body: Hi}}]}
            - {name: bold, weight: 1, then: [{send: {id: b, subject: B, body: Hi}}]}
          metric: {event: Order Completed, within: 7d}
"""


async def test_held_out_customers_are_no_experiment_entrants(harness: Harness) -> None:
    plan = await harness.deploy(HELD_OUT_EXPERIMENT)
    held = [f"he{n}" for n in range(200) if is_held_out(plan, f"he{n}")][:3]
    treated = [f"he{n}" for n in range(200) if not is_held_out(plan, f"he{n}")][:3]
    for customer in held + treated:
        await harness.profile(customer, email=f"{customer}@example.com")
    handles = [await harness.enter(plan, c) for c in held + treated]
    assert [await h.result() for h in handles] == ["completed"] * 6
    rows = await harness.pool.fetch("SELECT customer_id FROM experiment_assignments")
    assert sorted(r["customer_id"] for r in rows) == sorted(treated)
    assert all(subjects(harness, f"{c}@") == [] for c in held)
