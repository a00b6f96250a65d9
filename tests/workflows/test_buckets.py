"""Splits and holdouts: deterministic per customer, and in proportion over many customers."""

from __future__ import annotations

import math

from journeyman.orchestrator.language import compile_source
from journeyman.workflows.journey import is_held_out
from journeyman.workflows.program import bucket

CUSTOMERS = [f"customer-{n}" for n in range(20_000)]


def within_tolerance(observed: int, total: int, share: float) -> bool:
    # Five standard deviations of a binomial: a correct implementation fails about once in
    # three million runs, a biased one (a few points off) fails every time at this size.
    spread = 5 * math.sqrt(total * share * (1 - share))
    return abs(observed - total * share) <= spread


def test_bucket_is_stable_and_spreads_evenly() -> None:
    assert bucket("j", "s", "c1", modulo=100) == bucket("j", "s", "c1", modulo=100)
    counts = [0] * 4
    for customer in CUSTOMERS:
        counts[bucket("journey", "split-1", customer, modulo=4)] += 1
    assert all(within_tolerance(count, len(CUSTOMERS), 0.25) for count in counts)


def test_splits_of_different_steps_are_independent() -> None:
    both = sum(
        1
        for customer in CUSTOMERS
        if bucket("j", "a", customer, modulo=2) == 0 and bucket("j", "b", customer, modulo=2) == 0
    )
    assert within_tolerance(both, len(CUSTOMERS), 0.25)


def test_holdout_share_matches_the_journey_setting() -> None:
    plan = compile_source(
        "id: h\nname: H\nentry: {event: A, holdout: 10%}\n"
        "stages: [{name: s, touchpoints: [{wait: 1m}]}]"
    )
    held = [customer for customer in CUSTOMERS if is_held_out(plan, customer)]
    assert within_tolerance(len(held), len(CUSTOMERS), 0.10)
    assert all(is_held_out(plan, customer) for customer in held[:50])  # stable


def test_no_holdout_holds_no_one() -> None:
    plan = compile_source(
        "id: h\nname: H\nentry: {event: A}\nstages: [{name: s, touchpoints: [{wait: 1m}]}]"
    )
    assert not any(is_held_out(plan, customer) for customer in CUSTOMERS[:1000])


def test_holdouts_nest_into_one_global_control_group() -> None:
    small = compile_source(
        "id: a\nname: A\nentry: {event: A, holdout: 5%}\n"
        "stages: [{name: s, touchpoints: [{wait: 1m}]}]"
    )
    large = compile_source(
        "id: b\nname: B\nentry: {event: B, holdout: 20%}\n"
        "stages: [{name: s, touchpoints: [{wait: 1m}]}]"
    )
    in_small = {c for c in CUSTOMERS if is_held_out(small, c)}
    in_large = {c for c in CUSTOMERS if is_held_out(large, c)}
    assert in_small and in_small < in_large
