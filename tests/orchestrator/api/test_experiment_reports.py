"""The experiment and holdout report over a real Postgres, checked against published worked
values (Newcombe 1998) and against intervals and tests computed here another way; and over
a real journey run on the time-skipping server."""

from __future__ import annotations

import asyncio
import csv
import io
import math
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from statistics import NormalDist
from typing import Any

import pytest
from temporalio.testing import WorkflowEnvironment

from journeyman.orchestrator.storage.experiments import results
from journeyman.workflows.journey import JourneyWorkflow, is_held_out

from ...workflows.conftest import event, running_harness
from .conftest import Api

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(days=10)
D = timedelta(days=1)

OFFERS = """
id: offers
name: Offers
entry: {event: Signed Up}
goal: {event: Order Completed, within: 30d}
stages:
  - name: welcome
    touchpoints:
      - id: offer-test
        experiment:
          control: plain
          variants:
            - {name: plain, weight: 1, then: [{send: {id: plain-mail, subject: P, body: Hi}}]}
            - {name: discount, weight: 1, then: [{send: {id: off-mail, subject: D, body: Hi}}]}
          metric: {event: Order Completed, within: 7d}
          decide: {after: 3d, min_per_variant: 50}
  - name: follow
    touchpoints:
      - id: big-order
        experiment:
          control: a
          variants:
            - {name: a, weight: 1, then: [{send: {id: a-mail, subject: A, body: Hi}}]}
            - {name: b, weight: 1, then: [{send: {id: b-mail, subject: B, body: Hi}}]}
          metric: {event: Order Completed, where: {total: {gte: 50}}, within: 7d}
"""

CARE = """
id: care
name: Care
entry: {{event: Signed Up{holdout}}}
goal: {{event: Order Completed, within: 30d}}
stages:
  - name: only
    touchpoints:
      - send: {{id: hello, subject: Hello, body: Hi}}
"""


def wilson_by_search(successes: int, trials: int, confidence: float) -> tuple[float, float]:
    """The Wilson interval as the rates p a score test does not reject: the two roots of
    (x/n - p)^2 = z^2 p (1 - p) / n, found by bisection (not by the closed form)."""
    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    share = successes / trials

    def excess(p: float) -> float:
        return (share - p) ** 2 - z * z * p * (1 - p) / trials

    def root(low: float, high: float) -> float:
        rising = excess(high) > excess(low)
        for _ in range(100):
            middle = (low + high) / 2
            if (excess(middle) > 0) == rising:
                high = middle
            else:
                low = middle
        return (low + high) / 2

    return root(0.0, share), root(share, 1.0)


def chi_square_p(a: int, n_a: int, b: int, n_b: int) -> float:
    """Two-sided p of Pearson's chi-square on the 2x2 table, no continuity correction."""
    table = [[a, n_a - a], [b, n_b - b]]
    total = n_a + n_b
    rows = [n_a, n_b]
    columns = [a + b, total - a - b]
    chi2 = (
        total
        * (table[0][0] * table[1][1] - table[0][1] * table[1][0]) ** 2
        / (rows[0] * rows[1] * columns[0] * columns[1])
    )
    return math.erfc(math.sqrt(chi2 / 2))


async def assign(
    api: Api, step: str, customer: str, variant: str, at: datetime, journey: str = "offers"
) -> None:
    await api.pool.execute(
        "INSERT INTO experiment_assignments (journey_id, step_id, customer_id, variant,"
        " assigned_at) VALUES ($1, $2, $3, $4, $5)",
        journey,
        step,
        customer,
        variant,
        at,
    )


async def track(api: Api, customer: str, name: str, at: datetime, **properties: Any) -> None:
    await api.pool.execute(
        "INSERT INTO events (message_id, type, customer_id, event, properties, occurred_at)"
        " VALUES (gen_random_uuid()::text, 'track', $1, $2, $3, $4)",
        customer,
        name,
        properties,
        at,
    )


async def run(
    api: Api,
    journey: str,
    customer: str,
    version: str,
    status: str,
    entered: datetime,
    *,
    holdout: bool = False,
    n: int = 1,
) -> None:
    await api.pool.execute(
        "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id, stage, status,"
        " holdout, entered_at, converted_at) VALUES ($1, $2, $3, $4, 'only', $5, $6, $7,"
        " CASE WHEN $5 = 'converted' THEN $7::timestamptz + interval '1 day' END)",
        journey,
        customer,
        version,
        f"journey/{journey}/{customer}/{n}",
        status,
        holdout,
        entered,
    )


async def report(api: Api, journey: str = "offers", **params: Any) -> dict[str, Any]:
    response = await api.http.get(
        f"/api/journeys/{journey}/experiments", params=params, headers=api.admin
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def by_name(experiment: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["name"]: v for v in experiment["variants"]}


async def newcombe_example(api: Api) -> None:
    """offer-test as Newcombe's example (a): control 48/80, discount 56/70, and pending ones."""
    for n in range(80):
        customer = f"p{n}"
        await assign(api, "offer-test", customer, "plain", T0)
        if n < 48:
            await track(api, customer, "Order Completed", T0 + 2 * D, total=30)
        elif n < 53:
            await track(api, customer, "Order Completed", T0 + 8 * D)  # after the window
        elif n < 58:
            await track(api, customer, "Product Viewed", T0 + D)  # another event
    for n in range(70):
        customer = f"d{n}"
        await assign(api, "offer-test", customer, "discount", T0 + timedelta(minutes=n))
        if n < 56:
            await track(api, customer, "Order Completed", T0 + 6 * D)
    # Entered yesterday: their week is not over, whatever they did.
    for n in range(4):
        await assign(api, "offer-test", f"pp{n}", "plain", NOW - D)
    for n in range(3):
        await assign(api, "offer-test", f"pd{n}", "discount", NOW - D)
        await track(api, f"pd{n}", "Order Completed", NOW - D / 2)
    # A variant only an earlier version of the experiment had.
    await assign(api, "offer-test", "old1", "bold", T0)
    await assign(api, "offer-test", "old2", "bold", T0)
    await track(api, "old1", "Order Completed", T0 + D)


async def test_variants_against_the_control_match_newcombes_example(api: Api) -> None:
    await api.deploy(OFFERS)
    await newcombe_example(api)
    await api.pool.execute(
        "INSERT INTO experiment_decisions (journey_id, step_id, winner, results)"
        " VALUES ('offers', 'offer-test', 'discount', $1)",
        {
            "plain": {"entrants": 80, "conversions": 48},
            "discount": {"entrants": 70, "conversions": 56},
        },
    )
    body = await report(api)
    assert (body["journey_id"], body["version"], body["confidence"]) == ("offers", None, 0.95)
    assert body["conversion"] == "metric" and body["holdout"] is None
    offer, big = body["experiments"]
    assert (offer["step_id"], offer["stage"], offer["control"]) == (
        "offer-test",
        "welcome",
        "plain",
    )
    assert (offer["metric_event"], offer["window_seconds"]) == ("Order Completed", 7 * 86400)
    assert offer["decision"]["winner"] == "discount"
    assert offer["decision"]["results"]["plain"] == {"entrants": 80, "conversions": 48}
    assert (big["step_id"], big["stage"], big["decision"]) == ("big-order", "follow", None)
    assert [v["name"] for v in offer["variants"]] == ["plain", "discount", "bold"]
    plain, discount, bold = (by_name(offer)[n] for n in ("plain", "discount", "bold"))
    counts = {n: (v["entrants"], v["conversions"], v["pending"]) for n, v in by_name(offer).items()}
    assert counts == {"plain": (80, 48, 4), "discount": (70, 56, 3), "bold": (2, 1, 0)}

    assert plain["control"] and not discount["control"]
    assert plain["rate"] == pytest.approx(0.6) and discount["rate"] == pytest.approx(0.8)
    for variant, (x, n) in ((plain, (48, 80)), (discount, (56, 70))):
        low, high = wilson_by_search(x, n, 0.95)
        assert variant["rate_low"] == pytest.approx(low, abs=1e-9)
        assert variant["rate_high"] == pytest.approx(high, abs=1e-9)
    # The control is the baseline, compared with nothing.
    assert [plain[k] for k in ("difference", "p_value", "significant")] == [None, None, None]
    # Newcombe (1998), Table II, example (a), method 10: 0.2000, 95 % interval 0.0524 to 0.3339.
    assert discount["difference"] == pytest.approx(0.2)
    assert discount["difference_low"] == pytest.approx(0.0524, abs=1e-4)
    assert discount["difference_high"] == pytest.approx(0.3339, abs=1e-4)
    assert discount["relative_difference"] == pytest.approx(0.2 / 0.6)
    assert discount["p_value"] == pytest.approx(chi_square_p(48, 80, 56, 70), rel=1e-9)
    assert discount["p_value"] == pytest.approx(0.00805, abs=1e-5)
    assert discount["significant"] is True
    assert bold["difference"] == pytest.approx(0.5 - 0.6)
    assert bold["significant"] is False

    # The numbers the decision rule reads for the same step are the same.
    found, _ = await results(
        api.pool,
        journey_id="offers",
        step_id="offer-test",
        metric_event="Order Completed",
        window=timedelta(days=7),
        now=datetime.now(UTC),
        accept=lambda _: True,
    )
    assert {r.name: (r.entrants, r.conversions) for r in found} == {
        n: c[:2] for n, c in counts.items()
    }


async def test_the_confidence_asked_sets_the_intervals_and_the_verdict(api: Api) -> None:
    await api.deploy(OFFERS)
    await newcombe_example(api)
    for confidence, significant in ((0.99, True), (0.999, False)):
        offer = (await report(api, confidence=confidence))["experiments"][0]
        discount = by_name(offer)["discount"]
        assert discount["significant"] is significant  # p = 0.00805
        low, high = wilson_by_search(56, 70, confidence)
        assert (discount["rate_low"], discount["rate_high"]) == pytest.approx((low, high))
        assert discount["difference_low"] < 0.0524


async def test_a_metric_with_property_tests_counts_only_matching_events(api: Api) -> None:
    await api.deploy(OFFERS)
    orders: dict[tuple[str, str], list[Any]] = {
        ("a1", "a"): [80],
        ("a2", "a"): [20],
        ("a3", "a"): [20, 90],  # a small order, then one that counts
        ("b1", "b"): [50],
        ("b2", "b"): [],
        ("b3", "b"): ["lots"],
    }
    for (customer, variant), totals in orders.items():
        await assign(api, "big-order", customer, variant, T0)
        for hour, total in enumerate(totals):
            await track(
                api, customer, "Order Completed", T0 + timedelta(hours=hour + 1), total=total
            )
    big = (await report(api))["experiments"][1]
    expected = {"a": [0, 0], "b": [0, 0]}
    for (_, variant), totals in orders.items():
        expected[variant][0] += 1
        expected[variant][1] += any(isinstance(t, int) and t >= 50 for t in totals)
    assert {n: [v["entrants"], v["conversions"]] for n, v in by_name(big).items()} == expected
    assert expected == {"a": [3, 2], "b": [3, 1]}


async def test_conversion_by_the_goal_and_one_version(api: Api) -> None:
    first = await api.deploy(OFFERS)
    second = await api.deploy(OFFERS.replace("name: Offers", "name: Offers, again"))
    v1, v2 = str(first["version"]), str(second["version"])
    # (customer, variant, version, run status, entered days ago); assigned a minute after entry.
    entrants = [
        ("g1", "plain", v1, "converted", 20),
        ("g2", "plain", v1, "converted", 20),
        ("g3", "plain", v1, "completed", 20),
        ("g4", "plain", v1, "active", 40),  # the goal's 30 days are over: not converted
        ("g5", "plain", v1, "active", 1),  # may still convert: pending
        ("g6", "discount", v1, "converted", 20),
        ("g7", "discount", v1, "converted", 20),
        ("g8", "discount", v1, "converted", 20),
        ("g9", "discount", v1, "exited", 20),
        ("g10", "plain", v2, "converted", 5),
        ("g11", "discount", v2, "completed", 5),
        ("g12", "discount", v2, "completed", 5),
    ]
    for customer, variant, version, status, days in entrants:
        entered = NOW - days * D
        await run(api, "offers", customer, version, status, entered)
        await assign(api, "offer-test", customer, variant, entered + timedelta(minutes=1))
    # A customer with two runs: the assignment belongs to the run entered just before it.
    await run(api, "offers", "g13", v1, "converted", NOW - 60 * D, n=1)
    await run(api, "offers", "g13", v2, "completed", NOW - 5 * D, n=2)
    await assign(api, "offer-test", "g13", "discount", NOW - 5 * D + timedelta(minutes=1))

    every = by_name((await report(api, conversion="goal"))["experiments"][0])
    assert (every["plain"]["entrants"], every["plain"]["conversions"]) == (5, 3)
    assert every["plain"]["pending"] == 1
    assert (every["discount"]["entrants"], every["discount"]["conversions"]) == (7, 3)
    first_only = await report(api, conversion="goal", version=v1)
    assert first_only["version"] == v1 and first_only["experiments"][0]["metric_event"] is None
    counts = {
        n: (v["entrants"], v["conversions"], v["pending"])
        for n, v in by_name(first_only["experiments"][0]).items()
    }
    assert counts == {"plain": (4, 2, 1), "discount": (4, 3, 0)}
    second_only = by_name((await report(api, conversion="goal", version=v2))["experiments"][0])
    assert (second_only["discount"]["entrants"], second_only["discount"]["conversions"]) == (3, 0)


async def test_the_holdout_uplift_of_the_versions_that_hold_out(api: Api) -> None:
    plain = await api.deploy(CARE.format(holdout=""))
    holding = await api.deploy(CARE.format(holdout=", holdout: 30%"))
    v1, v2 = str(plain["version"]), str(holding["version"])
    runs = [
        # (version, held out, status, how many, entered days ago)
        (v1, False, "converted", 40, 5),  # before the holdout: not compared
        (v1, False, "completed", 10, 5),
        (v2, False, "converted", 81, 5),
        (v2, False, "completed", 170, 5),
        (v2, False, "active", 12, 31),  # past the goal's 30 days
        (v2, False, "active", 5, 1),  # pending
        (v2, True, "converted", 15, 5),
        (v2, True, "exited", 133, 5),
        (v2, True, "active", 2, 1),  # pending
        (v2, False, "entering", 4, 0),  # holdout not drawn yet
    ]
    n = 0
    for version, held, status, count, days in runs:
        for _ in range(count):
            n += 1
            await run(api, "care", f"h{n}", version, status, NOW - days * D, holdout=held)
    body = await report(api, "care")
    assert body["experiments"] == []
    holdout = body["holdout"]
    assert holdout["versions"] == [v2]
    treated, held_out = holdout["treated"], holdout["held_out"]
    assert (treated["entrants"], treated["conversions"], treated["pending"]) == (263, 81, 5)
    assert (held_out["entrants"], held_out["conversions"], held_out["pending"]) == (148, 15, 2)
    # Newcombe (1998), Table I, method 3 (Wilson): 81/263 and 15/148.
    assert (treated["rate_low"], treated["rate_high"]) == pytest.approx((0.2553, 0.3662), abs=1e-4)
    assert (held_out["rate_low"], held_out["rate_high"]) == pytest.approx(
        (0.0624, 0.1605), abs=1e-4
    )
    # Newcombe's method 10 from those published limits.
    p1, p2 = 81 / 263, 15 / 148
    uplift = p1 - p2
    low = uplift - math.hypot(p1 - 0.2553, 0.1605 - p2)
    high = uplift + math.hypot(0.3662 - p1, p2 - 0.0624)
    assert holdout["uplift"] == pytest.approx(uplift)
    assert (holdout["uplift_low"], holdout["uplift_high"]) == pytest.approx((low, high), abs=2e-4)
    assert holdout["relative_uplift"] == pytest.approx(uplift / p2)
    assert holdout["p_value"] == pytest.approx(chi_square_p(15, 148, 81, 263), rel=1e-9)
    assert holdout["significant"] is True
    assert (await report(api, "care", version=v1))["holdout"] is None
    assert (await report(api, "care", version=v2))["holdout"]["treated"]["entrants"] == 263


async def test_csv_has_a_row_per_variant_and_per_holdout_group(api: Api) -> None:
    await api.deploy(
        OFFERS.replace("entry: {event: Signed Up}", "entry: {event: Signed Up, holdout: 5%}")
    )
    await newcombe_example(api)
    response = await api.http.get(
        "/api/journeys/offers/experiments", headers={**api.admin, "Accept": "text/csv"}
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert 'filename="offers-experiments.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["kind"], r["step_id"], r["group"]) for r in rows] == [
        ("experiment", "offer-test", "plain"),
        ("experiment", "offer-test", "discount"),
        ("experiment", "offer-test", "bold"),
        ("experiment", "big-order", "a"),
        ("experiment", "big-order", "b"),
        ("holdout", "", "treated"),
        ("holdout", "", "held_out"),
    ]
    discount = rows[1]
    assert (discount["entrants"], discount["conversions"], discount["pending"]) == ("70", "56", "3")
    assert float(discount["difference_low"]) == pytest.approx(0.0524, abs=1e-4)
    assert discount["significant"] == "True" and rows[0]["baseline"] == "True"
    assert rows[0]["difference"] == "" and rows[3]["rate"] == ""  # no entrants: no rate
    json_fields = set(by_name((await report(api))["experiments"][0])["discount"])
    assert json_fields - {"name", "control"} <= set(rows[0])


@pytest.mark.parametrize(
    ("params", "status", "words"),
    [
        ({"confidence": "1.5"}, 400, "confidence must be above 0.5"),
        ({"confidence": "0.5"}, 400, "confidence must be above 0.5"),
        ({"confidence": "nan"}, 400, "confidence must be above 0.5"),
        ({"confidence": "high"}, 400, "request is not valid"),
        ({"conversion": "clicks"}, 400, "conversion must be 'metric' or 'goal'"),
        ({"format": "xml"}, 400, "format must be 'json' or 'csv'"),
        ({"version": "nope"}, 404, "has no version 'nope'"),
    ],
)
async def test_bad_parameters_are_refused(
    api: Api, params: dict[str, str], status: int, words: str
) -> None:
    await api.deploy(OFFERS)
    response = await api.http.get(
        "/api/journeys/offers/experiments", params=params, headers=api.admin
    )
    assert response.status_code == status
    assert words in response.json()["message"]


async def test_unknown_journeys_goalless_ones_and_missing_tokens(api: Api) -> None:
    await api.deploy()  # lifecycle: no journey-wide goal
    unknown = await api.http.get("/api/journeys/nope/experiments", headers=api.admin)
    assert unknown.status_code == 404
    goalless = await api.http.get(
        "/api/journeys/lifecycle/experiments", params={"conversion": "goal"}, headers=api.admin
    )
    assert goalless.status_code == 400
    assert "has no conversion goal" in goalless.json()["message"]
    assert (await api.http.get("/api/journeys/lifecycle/experiments")).status_code == 401


LIVE = """
id: live-offer
name: Live offer
entry: {event: Signed Up, holdout: 30%}
goal: {event: Order Completed, within: 30d}
stages:
  - name: offer
    touchpoints:
      - id: offer-test
        experiment:
          control: plain
          variants:
            - {name: plain, weight: 1, then: [{send: {id: plain, subject: Plain, body: Hi}}]}
            - {name: bold, weight: 1, then: [{send: {id: bold, subject: Bold, body: Hi}}]}
          metric: {event: Order Completed, within: 7d}
      - wait: 1d
"""


async def until(check: Callable[[], Any], what: str) -> None:
    for _ in range(400):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def test_a_real_journey_with_an_experiment_and_a_holdout(
    api: Api, time_skipping_env: WorkflowEnvironment, database_url: str
) -> None:
    async with running_harness(time_skipping_env, database_url) as harness:
        plan = await harness.deploy(LIVE)
        customers = [f"live{n}" for n in range(16)]
        buyers = set(customers[::3])
        handles = []
        for customer in customers:
            await harness.profile(customer, email=f"{customer}@example.com")
            handles.append(await harness.enter(plan, customer))
        for customer, handle in zip(customers, handles, strict=True):
            # Buy only once the customer is inside: in the experiment, or held out of it.
            async def ready(c: str = customer) -> bool:
                return bool(
                    await harness.pool.fetchval(
                        "SELECT EXISTS (SELECT 1 FROM experiment_assignments"
                        "  WHERE customer_id = $1)"
                        " OR EXISTS (SELECT 1 FROM journey_runs WHERE customer_id = $1"
                        "  AND holdout AND status = 'active')",
                        c,
                    )
                )

            await until(ready, f"{customer} to enter the experiment")
            if customer in buyers:
                await handle.signal(JourneyWorkflow.on_event, event("Order Completed", total=40))
        outcomes = [await h.result() for h in handles]
        assert outcomes == ["converted" if c in buyers else "completed" for c in customers]

        # What each customer got, from the mail they received (held-out ones get none).
        subjects = {
            c: [m["Subject"] for m in harness.sink.messages if m["To"].startswith(f"{c}@")]
            for c in customers
        }
        held = {c for c in customers if is_held_out(plan, c)}
        assert held and held != set(customers)
        assert all(subjects[c] == [] for c in held)
        expected: dict[str, list[int]] = {"plain": [0, 0], "bold": [0, 0]}
        for c in set(customers) - held:
            (subject,) = subjects[c]
            expected[subject.lower()][0] += 1
            expected[subject.lower()][1] += c in buyers

        body = await report(api, "live-offer", conversion="goal")
        variants = by_name(body["experiments"][0])
        found = {n: [v["entrants"], v["conversions"]] for n, v in variants.items()}
        assert found == expected
        assert all(v["pending"] == 0 for v in variants.values())
        holdout = body["holdout"]
        assert holdout["versions"] == [plan.version]
        treated = [len(set(customers) - held), len(buyers - held)]
        assert [holdout["treated"]["entrants"], holdout["treated"]["conversions"]] == treated
        assert [holdout["held_out"]["entrants"], holdout["held_out"]["conversions"]] == [
            len(held),
            len(buyers & held),
        ]
        (n_plain, x_plain), (n_bold, x_bold) = expected["plain"], expected["bold"]
        if 0 < x_plain + x_bold < n_plain + n_bold:
            p_value = chi_square_p(x_plain, n_plain, x_bold, n_bold)
            assert variants["bold"]["p_value"] == pytest.approx(p_value, rel=1e-9)
        else:  # every entrant the same outcome: untestable
            assert variants["bold"]["p_value"] is None
