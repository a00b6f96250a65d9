"""The whole bench, end to end, at tiny sizes: every phase runs and every figure is reported."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.e2e
@pytest.mark.timeout(900)
def test_one_command_measures_every_figure_next_to_its_ceiling(tmp_path: Path) -> None:
    argv = [
        sys.executable,
        "-m",
        "bench",
        "--no-fsync",
        "--events=400",
        "--batch-size=50",
        "--customers=8",
        "--think-time=0.2",
        "--reaction-rate=20",
        "--scale-sizes=4,8,12",
        "--pg-sizes=100,200,300",
        f"--results-dir={tmp_path}",
    ]
    done = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=840)
    assert done.returncode == 0, done.stderr[-4000:]
    [path] = tmp_path.glob("*.json")
    result = json.loads(path.read_text())
    assert "error" not in result
    assert result["ceilings"]["rows"] == result["ingest"]["events"] == 400
    for ceiling in ("copy", "upsert", "bulk_copy"):
        assert result["ceilings"][ceiling]["events_per_s"] > 0
    assert result["reaction"]["reaction"]["count"] == 8
    # The engine's run schedules on the server only what the bare one does (its two sends);
    # plan, transitions and branches are local activities, recorded as markers.
    engine, bare = result["engine"]["history"], result["bare"]["history"]
    assert engine["activities"] == bare["activities"] == 2
    assert engine["markers"] >= 3 and bare["markers"] == 0
    assert 0 < result["reaction"]["reaction"]["p50_ms"] <= result["reaction"]["reaction"]["max_ms"]
    assert [p["parked"] for p in result["scale"]["points"]] == [4, 8, 12]
    assert all(p["funnel_now"] == p["parked"] for p in result["scale"]["points"])
    assert all(p["worker_rss_mib"] > 20 for p in result["scale"]["points"])
    assert all(p["lookup_positions_from_temporal"] == 50 for p in result["scale"]["points"])
    assert [p["events"] for p in result["pg"]["points"]] == [1_000, 2_000, 3_000]
    assert result["machine"]["postgres"].startswith("18")
    verdicts = {t["target"]: t["verdict"] for t in result["targets"]}
    assert len(verdicts) == 10
    # Every target is judged; at these sizes the worker's is the one that cannot be.
    assert {v for k, v in verdicts.items() if not k.startswith("worker RSS")} <= {"PASS", "FAIL"}
    assert verdicts["worker RSS with 100,000 customers parked"] == "NOT MEASURED"
    report = done.stdout
    assert report.startswith("- Machine: ")
    assert "| ingest / batched-upsert ceiling (and / per-batch COPY) |" in report
    assert "Growth with customers parked in a `wait_for`" in report
    assert "Growth with generated customers in Postgres" in report
