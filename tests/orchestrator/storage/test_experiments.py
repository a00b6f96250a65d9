"""The experiment decision rule: a variant wins only when it beats the control significantly."""

from __future__ import annotations

from journeyman.orchestrator.storage.experiments import VariantResult, pick_winner


def test_a_clearly_better_variant_wins() -> None:
    results = [VariantResult("control", 1000, 100), VariantResult("b", 1000, 150)]
    assert pick_winner(results, "control", 0.95) == "b"


def test_a_small_lead_is_not_enough() -> None:
    results = [VariantResult("control", 100, 10), VariantResult("b", 100, 12)]
    assert pick_winner(results, "control", 0.95) == "control"


def test_the_best_significant_variant_wins_among_several() -> None:
    results = [
        VariantResult("control", 1000, 100),
        VariantResult("b", 1000, 140),
        VariantResult("c", 1000, 180),
    ]
    assert pick_winner(results, "control", 0.95) == "c"


def test_a_worse_variant_never_wins_and_the_control_stays() -> None:
    results = [VariantResult("control", 1000, 200), VariantResult("b", 1000, 100)]
    assert pick_winner(results, "control", 0.99) == "control"


def test_higher_confidence_needs_a_bigger_lead() -> None:
    results = [VariantResult("control", 400, 40), VariantResult("b", 400, 58)]
    assert pick_winner(results, "control", 0.90) == "b"
    assert pick_winner(results, "control", 0.999) == "control"
