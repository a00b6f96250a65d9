"""The bench's flags: presets, explicit sizes, and clear errors for bad input."""

from __future__ import annotations

import argparse

import pytest

from bench import options
from bench.options import parse_args, sizes


def test_defaults_run_every_phase_at_the_small_scale_sizes() -> None:
    args = parse_args([])
    assert args.phases == list(options.PHASES)
    assert args.scale_sizes == [250, 500, 1_000]
    assert args.pg_sizes == [10_000, 30_000, 100_000]
    assert args.time_limit == options.DEFAULT_TIME_LIMIT
    assert (args.events, args.customers, args.reaction_rate) == (20_000, 300, 10.0)


def test_presets_and_explicit_sizes() -> None:
    full = parse_args(["--full-scale"])
    assert full.scale_sizes == [1_000, 10_000, 100_000]
    assert full.pg_sizes == [10_000, 100_000, 1_000_000]
    assert full.time_limit == options.FULL_TIME_LIMIT
    quick = parse_args(["--quick"])
    assert (quick.events, quick.customers) == (2_000, 40)
    assert quick.scale_sizes == list(options.QUICK_SCALE_SIZES)
    # Sizes given on the command line win over any preset, and come out sorted.
    mine = parse_args(["--full-scale", "--scale-sizes", "5000,2_000,1000", "--time-limit", "60"])
    assert mine.scale_sizes == [1_000, 2_000, 5_000]
    assert mine.pg_sizes == [10_000, 100_000, 1_000_000]
    assert mine.time_limit == 60


def test_the_scale_budget_is_off_unless_given() -> None:
    assert parse_args([]).scale_budget is None
    assert parse_args(["--full-scale", "--scale-budget", "3600"]).scale_budget == 3600


def test_sizes_are_parsed_deduplicated_and_checked() -> None:
    assert sizes("300, 100,100") == [100, 300]
    with pytest.raises(argparse.ArgumentTypeError, match="whole numbers"):
        sizes("1k,10k")
    with pytest.raises(argparse.ArgumentTypeError, match="positive"):
        sizes("0,10")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--phases", "ingest,warp"], "unknown phases: warp"),
        (["--quick", "--full-scale"], "contradict"),
        (["--reaction-rate", "0"], "--reaction-rate must be positive"),
        (["--clients", "0"], "--clients must be positive"),
        (["--pg-sizes", "ten"], "whole numbers"),
        (["--wait-quiet", "-1"], "--wait-quiet must be zero"),
        (["--scale-budget", "0"], "--scale-budget must be a positive number of seconds"),
    ],
)
def test_bad_flags_exit_with_a_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_args(argv)
    assert exited.value.code == 2
    assert message in capsys.readouterr().err
