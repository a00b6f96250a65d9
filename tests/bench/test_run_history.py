"""What one run asks of Temporal, counted from a real recorded history of the interpreter."""

from __future__ import annotations

import json
from pathlib import Path

from temporalio.client import WorkflowHistory

from bench import report, run_history

from .sample import result
from .test_report import rows

RECORDED = (
    Path(__file__).resolve().parents[1]
    / "workflows"
    / "histories"
    / "current"
    / "lifecycle-converts.json"
)


def test_the_shape_counts_each_kind_of_event_of_a_recorded_run() -> None:
    text = RECORDED.read_text(encoding="utf-8")
    kinds = [event["eventType"] for event in json.loads(text)["events"]]
    shape = run_history.shape(WorkflowHistory.from_json("lifecycle", text))
    assert shape == {
        "events": len(kinds),
        "workflow_tasks": kinds.count("EVENT_TYPE_WORKFLOW_TASK_COMPLETED"),
        "activities": kinds.count("EVENT_TYPE_ACTIVITY_TASK_SCHEDULED"),
        "markers": kinds.count("EVENT_TYPE_MARKER_RECORDED"),
        "search_attribute_upserts": kinds.count("EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES"),
        "timers": kinds.count("EVENT_TYPE_TIMER_STARTED"),
        "signals": kinds.count("EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED"),
    }
    # Local activities leave markers where server activities leave three events each.
    assert shape["markers"] > 0 and shape["workflow_tasks"] < shape["events"] // 4


def test_the_report_sets_the_engine_run_beside_the_bare_one() -> None:
    run = result()
    run["bare"]["history"] = {"events": 24, "workflow_tasks": 4, "activities": 2, "timers": 1}
    run["engine"]["history"] = {"events": 31, "workflow_tasks": 4, "activities": 2, "markers": 4}
    report.add_targets(run)
    table = rows(report.markdown(run))
    assert table["among them, per run, engine / bare"] == [
        "workflow tasks 4 / 4, activities 2 / 2, markers 4 / 0, search attribute upserts"
        " 0 / 0, timers 0 / 1, signals 0 / 0"
    ]


def test_results_without_the_shape_report_the_event_count_alone() -> None:
    run = result()
    report.add_targets(run)
    table = rows(report.markdown(run))
    assert table["Temporal history events per run, engine / bare"] == ["43 / 24"]
    assert "among them, per run, engine / bare" not in table
