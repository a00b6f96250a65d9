"""Replay recorded histories of the shipped journeys: the interpreter must stay deterministic.

Each file in ``histories/`` is a real run of a shipped journey on the time-skipping server
(a customer who converts stage after stage, and one who never answers). Replaying them with
today's interpreter fails if a change to ``workflows/`` would break runs already in flight;
such a change needs ``workflow.patched``. The files directly in ``histories/`` were recorded
before the short database steps became local activities (``LOCAL_ACTIVITIES_PATCH``) and are
kept as they are: they stand for runs started by earlier workers. ``histories/current/``
holds runs of today's interpreter. After a deliberate, patched change (or a change to a
shipped journey), record the current ones again, only for the journeys concerned (the others
keep guarding the interpreter):

    python3 dev.py test tests/workflows/test_replay.py -k JOURNEY --record-histories
"""

from __future__ import annotations

import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from journeyman.orchestrator.embedded import EmbeddedPostgres
from journeyman.orchestrator.language import compile_file
from journeyman.orchestrator.language.folders import journey_files
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import EventMatch, Plan, PropertyTest

from .conftest import Harness, event, running_harness

REPO = Path(__file__).resolve().parents[2]
HISTORIES = Path(__file__).parent / "histories"
CURRENT = HISTORIES / "current"  # recorded by today's interpreter
EARLIER = sorted(HISTORIES.glob("*.json"))  # recorded by earlier interpreters, never rewritten
# Short database steps that new runs take as local activities, never as server activities.
LOCAL_STEPS = {
    "load_plan",
    "record_transition",
    "evaluate_branch",
    "assign_variant",
    "resolve_wait",
}
SHIPPED = journey_files(REPO / "journeys")  # configuration files are not journeys

# One profile that every shipped journey can render and branch on.
PROFILE: dict[str, Any] = {
    "email": "replay@example.com",
    "first_name": "Ada",
    "age": 61,
    "gender": "female",
    "timezone": "Europe/Paris",
    "locale": "en",
    "birthday": "1964-03-02",
    "coupon_code": "SAVE10",
    "coupon_expires_at": "2100-01-01",
    "loyalty_points": 120,
    "loyalty_tier": "silver",
    "company": {"name": "Acme", "size": 250},
    "contract": {"renewal_date": "2100-06-01"},
    "favorite_category": "anti-aging",
}


def sample(match: EventMatch) -> dict[str, Any]:
    """Properties that pass every test of a match: the entry event of a recorded run."""
    properties: dict[str, Any] = {}
    for test in match.where:
        value = _satisfying(test)
        target = properties
        *parents, last = test.path.split(".")
        for part in parents:
            target = target.setdefault(part, {})
        if value is not _ABSENT:
            target[last] = value
    return properties


_ABSENT = object()


def _satisfying(test: PropertyTest) -> Any:
    if test.op == "exists":
        return "x" if test.value else _ABSENT
    if test.op == "one_of" and isinstance(test.value, list):
        return test.value[0]
    if test.op in ("gt", "gte") and isinstance(test.value, int | float):
        return test.value + 1
    if test.op in ("lt", "lte") and isinstance(test.value, int | float):
        return test.value - 1
    if test.op == "ne":
        return f"not-{test.value}"
    return test.value


def history_path(plan: Plan, path_name: str) -> Path:
    return CURRENT / f"{plan.journey_id}-{path_name}.json"


async def record(harness: Harness, path: Path, path_name: str) -> Path:
    """Run one shipped journey for one customer and write its history."""
    plan = compile_file(path)
    await harness.deploy(_read(path))
    customer = f"replay-{plan.journey_id}-{path_name}"
    await harness.profile(customer, **PROFILE)
    entry = event(plan.entry.match.event if plan.entry.match else "Journey Entry Requested")
    if plan.entry.match is not None:
        entry.properties.update(sample(plan.entry.match))
    handle = await harness.enter(plan, customer, entry)
    if path_name == "converts":
        for stage in plan.stages:
            if stage.goal is not None:
                await harness.env.sleep(timedelta(hours=2))
                goal = event(stage.goal.event, **sample(stage.goal))
                await handle.signal(JourneyWorkflow.on_event, goal)
    await handle.result()
    history = await handle.fetch_history()
    target = history_path(plan, path_name)
    _write(target, json.dumps(json.loads(history.to_json()), indent=1) + "\n")
    return target


def _exists(path: Path) -> bool:
    return path.exists()


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")


@pytest.mark.parametrize("path_name", ["converts", "silent"])
@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
async def test_recorded_history_replays(
    path: Path,
    path_name: str,
    request: pytest.FixtureRequest,
    time_skipping_env: WorkflowEnvironment,
    pg_server: EmbeddedPostgres,
) -> None:
    plan = compile_file(path)
    target = history_path(plan, path_name)
    if request.config.getoption("--record-histories"):
        database_url = await pg_server.create_database(f"replay_{uuid.uuid4().hex}")
        async with running_harness(time_skipping_env, database_url) as harness:
            await record(harness, path, path_name)
    assert _exists(target), (
        f"no recorded history for {path.name} ({path_name}); record them with "
        f"python3 dev.py test tests/workflows/test_replay.py -k {path.stem} --record-histories"
    )
    history = WorkflowHistory.from_json(f"replay/{target.stem}", _read(target))
    assert len(history.events) > 10  # a real run, not an empty file
    scheduled = {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    assert not scheduled & LOCAL_STEPS, "short steps run as local activities in new runs"
    replayer = Replayer(workflows=[JourneyWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)


@pytest.mark.parametrize("target", EARLIER, ids=[p.stem for p in EARLIER])
async def test_history_of_an_earlier_interpreter_replays(target: Path) -> None:
    """Runs started before local activities keep their command sequence on today's worker."""
    history = WorkflowHistory.from_json(f"replay/{target.stem}", _read(target))
    scheduled = {
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.HasField("activity_task_scheduled_event_attributes")
    }
    assert {"load_plan", "record_transition"} <= scheduled  # recorded before the patch
    replayer = Replayer(workflows=[JourneyWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
