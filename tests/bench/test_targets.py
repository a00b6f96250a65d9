"""Targets: PASS, FAIL and NOT MEASURED from a run's figures, and the worker extrapolation."""

from __future__ import annotations

from typing import Any

import pytest

from bench import targets
from bench.targets import FAIL, NOT_MEASURED, PASS, Target, evaluate

from .sample import pg_point, result, scale_point


def verdicts(run: dict[str, Any]) -> dict[str, str]:
    return {o.target.name: o.verdict for o in evaluate(run)}


def test_every_target_passes_when_every_figure_is_within_it() -> None:
    found = verdicts(result())
    assert len(found) == 10
    assert set(found.values()) == {PASS}


@pytest.mark.parametrize(
    ("comparison", "value", "expected"),
    [
        ("at least", 25_000, PASS),  # the threshold itself is enough
        ("at least", 24_999.9, FAIL),
        ("below", 24_999.9, PASS),
        ("below", 25_000, FAIL),  # "below" is strict
        ("below", None, NOT_MEASURED),
    ],
)
def test_the_comparison_decides_at_the_threshold(
    comparison: Any, value: float | None, expected: str
) -> None:
    assert Target("t", comparison, 25_000, "events/s").verdict(value) == expected


def test_ingest_is_held_to_its_rate_and_to_half_the_upsert_ceiling() -> None:
    slow = {o.target: o for o in evaluate(result(ingest_eps=4_000, upsert_eps=20_000))}
    assert slow[targets.INGEST_RATE].verdict == FAIL
    assert slow[targets.INGEST_SHARE].measured == pytest.approx(20.0)
    assert slow[targets.INGEST_SHARE].verdict == FAIL
    # Fast enough in absolute terms but under half of what Postgres takes: still a FAIL.
    near = {o.target: o for o in evaluate(result(ingest_eps=26_000, upsert_eps=60_000))}
    assert near[targets.INGEST_RATE].verdict == PASS
    assert near[targets.INGEST_SHARE].verdict == FAIL


def test_reaction_and_engine_ratio_targets() -> None:
    found = verdicts(result(reaction_p50=99.9, reaction_p99=650.0, bare_jps=25, engine_jps=19))
    assert found[targets.REACTION_P50.name] == PASS
    assert found[targets.REACTION_P99.name] == FAIL
    assert found[targets.ENGINE_SHARE.name] == FAIL  # 76 %
    ratio = {o.target: o.measured for o in evaluate(result(bare_jps=25, engine_jps=20))}
    assert ratio[targets.ENGINE_SHARE] == pytest.approx(80.0)


def test_messages_that_never_arrived_are_said_beside_the_reaction_targets() -> None:
    found = {o.target: o for o in evaluate(result(reaction_p99=60_000, missing=7))}
    assert found[targets.REACTION_P99].verdict == FAIL
    assert found[targets.REACTION_P50].note.startswith("7 of 300 messages had not arrived")
    assert found[targets.REACTION_P99].note == found[targets.REACTION_P50].note
    assert evaluate(result())[2].note == ""


def test_a_phase_not_run_is_not_measured_and_the_rest_still_judged() -> None:
    run = result()
    del run["reaction"], run["ceilings"]
    found = verdicts(run)
    assert found[targets.REACTION_P50.name] == NOT_MEASURED
    assert found[targets.INGEST_SHARE.name] == NOT_MEASURED
    assert found[targets.INGEST_RATE.name] == PASS


def test_worker_memory_is_judged_at_100k_parked_only() -> None:
    over = result(scale=[scale_point(10_000, 300, 10, 10), scale_point(100_000, 1_100, 10, 10)])
    outcome = {o.target: o for o in evaluate(over)}[targets.WORKER_RSS]
    assert (outcome.measured, outcome.verdict) == (1_100, FAIL)
    small = result(scale=[scale_point(s, 100 + s / 10, 10, 10) for s in (250, 500, 1_000)])
    outcome = {o.target: o for o in evaluate(small)}[targets.WORKER_RSS]
    assert outcome.verdict == NOT_MEASURED
    assert outcome.measured is None
    # The note says how far the run got, and how to measure the target.
    assert outcome.note == (
        "largest size 1,000: 200 MiB; run with --scale-sizes up to 100,000 to measure"
    )


def test_worker_memory_note_says_why_parking_stopped_short_of_100k() -> None:
    why = "the machine had 3,000 MiB of memory left"
    short = result(
        scale=[
            scale_point(10_000, 300, 10, 10),
            scale_point(64_000, 410, 10, 10, size=100_000, stopped=why),
        ]
    )
    outcome = {o.target: o for o in evaluate(short)}[targets.WORKER_RSS]
    assert outcome.verdict == NOT_MEASURED
    assert outcome.note == f"largest size 64,000: 410 MiB; parking stopped at 64,000: {why}"


def test_scale_latency_targets_are_judged_at_the_largest_size() -> None:
    run = result(
        scale=[scale_point(1_000, 200, 60, 10), scale_point(2_000, 210, 20, 70)],
        pg=[pg_point(10_000, 80, 10), pg_point(30_000, 10, 10)],
    )
    found = {o.target: o for o in evaluate(run)}
    assert found[targets.PARKED_FUNNEL].verdict == PASS  # 60 ms was at the smaller size
    assert found[targets.PARKED_LOOKUP].verdict == FAIL
    assert found[targets.PARKED_LOOKUP].note == "at 2,000 parked"
    assert found[targets.PG_FUNNEL].verdict == PASS
    assert found[targets.PG_LOOKUP].note == "at 30,000 customers, 300,000 events"


def test_outcomes_serialise_with_what_was_wanted_and_shown() -> None:
    shown = [o.as_dict() for o in evaluate(result(ingest_eps=4_321.5))]
    first = shown[0]
    assert first["wanted"] == "≥ 25,000 events/s"
    assert first["shown"] == "4,322 events/s"
    assert first["verdict"] == FAIL
    share = shown[1]
    assert share["wanted"] == "≥ 50 %"
    assert share["shown"] == "9 %"
