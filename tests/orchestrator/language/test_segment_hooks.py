"""Segment hooks in journeys: entry on entering a segment, exits, waits and goals on segment
changes, compiled to the engine's own events, checked against the segments folder, written
back by the Python builder, and run by the unchanged interpreter."""

from __future__ import annotations

import textwrap
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from pydantic import ValidationError
from temporalio.client import WorkflowHandle
from temporalio.testing import WorkflowEnvironment

from journeyman.channels import SmtpProvider, SmtpSink
from journeyman.orchestrator.customers.events import SEGMENT_ENTERED, SEGMENT_EXITED
from journeyman.orchestrator.embedded.temporal import ensure_search_attributes
from journeyman.orchestrator.ingest import TriggerIndex
from journeyman.orchestrator.language import (
    Diagnostic,
    JourneyError,
    compile_file,
    compile_source,
    validate_paths,
)
from journeyman.orchestrator.language.builder import (
    compile_python,
    dump_yaml,
    enters_segment,
    entry,
    event,
    goal,
    journey,
    leaves_segment,
    send,
    stage,
    wait_for,
)
from journeyman.orchestrator.language.schema import journey_schema
from journeyman.orchestrator.language.spec import JourneySpec
from journeyman.orchestrator.storage import connect, create_pool, deploy_plan, migrate
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.conditions import matches
from journeyman.workflows.inputs import EVENT_SIGNAL, JourneyEvent, JourneyInput
from journeyman.workflows.journey import JourneyWorkflow
from journeyman.workflows.plan import EventMatch, Plan, PropertyTest, WaitForStep
from journeyman.workflows.search_attributes import ALL
from journeyman.workflows.worker import build_worker

HOOKS = """\
id: hooks
name: Every segment hook
entry:
  segment: vip
  api: true
goal: {enters_segment: loyal_fans, within: 30d}
exit:
  - leaves_segment: vip
  - enters_segment: lost
  - event: Unsubscribed
stages:
  - name: welcome
    goal: {enters_segment: at_risk}
    touchpoints:
      - id: thanks
        send: {subject: "Thank you", body: "Hi"}
      - id: watch
        wait_for:
          leaves_segment: at_risk
          timeout: 7d
          lookback: 1h
          on_event:
            - send: {subject: "Welcome back", body: "Hi"}
          on_timeout:
            - send: {subject: "We miss you", body: "Hi"}
"""
SEGMENTS = ("vip", "lost", "at_risk", "loyal_fans")


def entered(segment_id: str) -> EventMatch:
    return EventMatch(
        event=SEGMENT_ENTERED, where=[PropertyTest(path="segment", op="eq", value=segment_id)]
    )


def exited(segment_id: str) -> EventMatch:
    return EventMatch(
        event=SEGMENT_EXITED, where=[PropertyTest(path="segment", op="eq", value=segment_id)]
    )


def problems(text: str, segments: tuple[str, ...] | None = SEGMENTS) -> list[str]:
    with pytest.raises(JourneyError) as caught:
        compile_source(textwrap.dedent(text), source="j.yaml", segments=segments)
    return [str(d) for d in caught.value.diagnostics]


# --- compiled to the engine's segment events -------------------------------------------


def test_every_hook_compiles_to_a_match_on_the_engines_segment_events() -> None:
    plan = compile_source(HOOKS, segments=SEGMENTS)

    assert plan.entry.match == entered("vip") and plan.entry.api
    assert plan.goal is not None and plan.goal.match == entered("loyal_fans")
    assert plan.goal.within_seconds == 30 * 86400
    assert plan.exits == [exited("vip"), entered("lost"), EventMatch(event="Unsubscribed")]
    assert plan.stages[0].goal == entered("at_risk")
    watch = plan.step("watch")
    assert isinstance(watch, WaitForStep) and watch.match == exited("at_risk")
    assert (watch.timeout_seconds, watch.lookback_seconds) == (7 * 86400, 3600)
    assert [s.id for s in watch.on_event] == ["watch.event.1"]
    assert [s.id for s in watch.on_timeout] == ["watch.timeout.1"]


def test_the_router_and_the_matcher_see_ordinary_events() -> None:
    plan = compile_source(HOOKS, segments=SEGMENTS)
    index = TriggerIndex.build([plan])

    assert index.journeys_for(SEGMENT_ENTERED) == ["hooks"]
    assert index.journeys_for(SEGMENT_EXITED) == ["hooks"]
    assert plan.entry.match is not None
    assert matches(plan.entry.match, SEGMENT_ENTERED, {"segment": "vip"})
    assert not matches(plan.entry.match, SEGMENT_ENTERED, {"segment": "lost"})
    assert not matches(plan.entry.match, SEGMENT_EXITED, {"segment": "vip"})


def test_the_short_form_is_the_engine_event_written_out() -> None:
    # Same plan, same version: the hook is only a shorter way to write the event match.
    short = compile_source(HOOKS, segments=SEGMENTS)
    long = HOOKS.replace(
        "  segment: vip\n", "  event: Segment Entered\n  where: {segment: vip}\n"
    ).replace("  - leaves_segment: vip\n", "  - {event: Segment Exited, where: {segment: vip}}\n")

    assert long != HOOKS
    assert compile_source(long, segments=SEGMENTS).version == short.version


def test_a_segment_entry_combines_with_a_schedule() -> None:
    plan = compile_source(
        textwrap.dedent(
            """\
            id: s
            name: S
            entry: {segment: vip, schedule: {cron: "0 9 * * mon"}}
            stages: [{name: a, touchpoints: [{send: {subject: a, body: b}}]}]
            """
        ),
        segments=SEGMENTS,
    )
    assert plan.entry.match == entered("vip") and plan.entry.schedule is not None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "entry: {event: Signed Up, segment: vip}",
            "j.yaml:3:8: entry: entry takes an event or a segment, not both",
        ),
        (
            "entry: {segment: vip, where: {plan: pro}}",
            "j.yaml:3:8: entry: where filters the entry event; a segment entry has none",
        ),
        (
            "entry: {segment: VIP}",
            "j.yaml:3:18: entry.segment: a segment id starts with a lowercase letter or digit,"
            " then lowercase letters, digits, '_' or '-', at most 64 characters; got 'VIP'",
        ),
        (
            "entry: {segment: vip}\nexit: [{event: Unsubscribed, leaves_segment: vip}]",
            "j.yaml:4:8: exit[0]: give one of event, leaves_segment, not several",
        ),
        (
            "entry: {segment: vip}\nexit: [{leaves_segment: vip, where: {a: 1}}]",
            "j.yaml:4:8: exit[0]: where filters an event's properties; a segment change has none",
        ),
        (
            "entry: {segment: vip}\nexit: [{}]",
            "j.yaml:4:8: exit[0]: give an event, or enters_segment / leaves_segment with a"
            " segment id",
        ),
        (
            "entry: {segment: vip}\ngoal: {leaves_segment: vip}",
            "j.yaml:4:7: goal: missing required key 'within'",
        ),
    ],
)
def test_mistakes_in_hooks_name_their_place(text: str, expected: str) -> None:
    source = f"id: j\nname: J\n{text}\nstages: [{{name: a, goal: {{event: Paid}}}}]\n"
    assert problems(source) == [expected]


# --- checked against the segments folder -----------------------------------------------


def test_an_unknown_segment_is_an_error_naming_the_known_ones() -> None:
    found = problems(HOOKS.replace("leaves_segment: at_risk", "leaves_segment: at-risk"))

    assert found == [
        "j.yaml:19:27: stages[0].touchpoints[1].wait_for.leaves_segment: unknown segment"
        " 'at-risk' (segments: at_risk, lost, loyal_fans, vip)"
    ]


def test_segment_ids_in_engine_events_written_out_are_checked_too() -> None:
    written_out = "  - {event: Segment Exited, where: {segment: vipp}}\n"
    text = HOOKS.replace("  - event: Unsubscribed\n", written_out)
    assert problems(text) == [
        "j.yaml:10:46: exit[2].where.segment: unknown segment 'vipp' (segments: at_risk,"
        " lost, loyal_fans, vip)"
    ]


def test_without_a_known_segments_folder_each_segment_named_is_a_warning() -> None:
    warnings: list[Diagnostic] = []
    compile_source(HOOKS, source="j.yaml", warnings=warnings)

    named = sorted((w.path, w.severity) for w in warnings)
    assert named == [
        ("entry.segment", "warning"),
        ("exit[0].leaves_segment", "warning"),
        ("exit[1].enters_segment", "warning"),
        ("goal.enters_segment", "warning"),
        ("stages[0].goal.enters_segment", "warning"),
        ("stages[0].touchpoints[1].wait_for.leaves_segment", "warning"),
    ]
    assert all("no segments/ folder" in w.message for w in warnings)


def _folder(tmp_path: Path, segments: dict[str, str] | None) -> Path:
    (tmp_path / "hooks.yaml").write_text(HOOKS, encoding="utf-8")
    if segments is not None:
        (tmp_path / "segments").mkdir()
        for name, text in segments.items():
            (tmp_path / "segments" / name).write_text(text, encoding="utf-8")
    return tmp_path / "hooks.yaml"


def test_a_file_is_checked_against_the_segments_folder_beside_it(tmp_path: Path) -> None:
    files = {f"{s}.yaml": f"id: {s}\nname: {s}\nwhen: profile.age > 1\n" for s in SEGMENTS}
    # A segment file with other errors still declares its id.
    files["lost.yaml"] = "id: lost\nname: Lost\nwhen: profile.age >\n"
    path = _folder(tmp_path, files)
    warnings: list[Diagnostic] = []

    assert compile_file(path, warnings=warnings).journey_id == "hooks"
    assert warnings == []
    (tmp_path / "segments" / "vip.yaml").unlink()
    with pytest.raises(JourneyError, match="unknown segment 'vip' \\(segments: at_risk"):
        compile_file(path)
    [(_, outcome)] = validate_paths([tmp_path])
    assert isinstance(outcome, JourneyError)
    assert {d.path for d in outcome.diagnostics} == {"entry.segment", "exit[0].leaves_segment"}


def test_an_empty_segments_folder_knows_no_segment(tmp_path: Path) -> None:
    path = _folder(tmp_path, {})
    with pytest.raises(
        JourneyError, match="unknown segment 'vip' \\(segments: none are defined\\)"
    ):
        compile_file(path)


def test_configuration_files_are_not_journeys(tmp_path: Path) -> None:
    path = _folder(tmp_path, {f"{s}.yaml": f"id: {s}\nname: {s}\nwhen: 'true'\n" for s in SEGMENTS})
    (tmp_path / "customers.yaml").write_text("recency: {active: 30d}\n", encoding="utf-8")

    assert [(file, type(outcome)) for file, outcome in validate_paths([tmp_path])] == [(path, Plan)]


# --- the Python builder -----------------------------------------------------------------


def hooks_in_python() -> JourneySpec:
    return journey(
        "hooks",
        "Every segment hook",
        entry=entry(segment="vip", api=True),
        goal=goal(enters_segment="loyal_fans", within="30d"),
        exit=[leaves_segment("vip"), enters_segment("lost"), "Unsubscribed"],
        stages=[
            stage(
                "welcome",
                send("Thank you", "Hi", id="thanks"),
                wait_for(
                    leaves_segment="at_risk",
                    timeout="7d",
                    lookback="1h",
                    on_event=[send("Welcome back", "Hi")],
                    on_timeout=[send("We miss you", "Hi")],
                    id="watch",
                ),
                goal=enters_segment("at_risk"),
            )
        ],
    )


def test_the_builder_makes_the_file_and_dumps_the_short_forms() -> None:
    spec = hooks_in_python()
    text = dump_yaml(spec)

    expected = compile_source(HOOKS, segments=SEGMENTS).version
    assert compile_python(spec, segments=SEGMENTS).version == expected
    assert compile_source(text, segments=SEGMENTS).version == expected
    assert JourneySpec.model_validate(yaml.safe_load(text)) == spec
    assert "Segment Entered" not in text and "Segment Exited" not in text
    data = yaml.safe_load(text)
    assert data["entry"] == {"segment": "vip", "api": True}
    assert data["exit"][:2] == [{"leaves_segment": "vip"}, {"enters_segment": "lost"}]
    assert data["goal"] == {"enters_segment": "loyal_fans", "within": "4w2d"}  # 30d
    assert data["stages"][0]["goal"] == {"enters_segment": "at_risk"}
    assert data["stages"][0]["touchpoints"][1]["wait_for"]["leaves_segment"] == "at_risk"


def test_the_builder_checks_segments_like_a_file() -> None:
    with pytest.raises(JourneyError, match="unknown segment 'lost'"):
        compile_python(hooks_in_python(), segments=("vip", "at_risk", "loyal_fans"))
    with pytest.raises(ValidationError, match="give one of event, enters_segment, not several"):
        wait_for("Paid", enters_segment="vip", timeout="1d")
    assert event("Paid").event == "Paid"


# --- the JSON Schema --------------------------------------------------------------------


def schema_errors(text: str) -> list[str]:
    validator = Draft202012Validator(journey_schema())
    return [error.message for error in validator.iter_errors(yaml.safe_load(text))]


def test_the_schema_accepts_the_hooks_and_rejects_what_the_compiler_rejects() -> None:
    assert schema_errors(HOOKS) == []
    for wrong in (
        HOOKS.replace("  segment: vip\n", "  segment: vip\n  event: Signed Up\n"),
        HOOKS.replace("  - leaves_segment: vip\n", "  - {leaves_segment: vip, event: Paid}\n"),
        HOOKS.replace("  - leaves_segment: vip\n", "  - {leaves_segment: vip, where: {a: 1}}\n"),
        HOOKS.replace("  - leaves_segment: vip\n", "  - {}\n"),
        HOOKS.replace("  segment: vip\n", "  segment: VIP\n"),
    ):
        assert schema_errors(wrong) != [], wrong
        with pytest.raises(JourneyError):
            compile_source(wrong, segments=SEGMENTS)


# --- run by the interpreter ---------------------------------------------------------------

RUN = """\
id: segment-run
name: Segment run
entry: {segment: vip}
exit: [{leaves_segment: vip}]
stages:
  - name: welcome
    touchpoints:
      - send: {id: thanks, subject: "Thank you", body: "Hi"}
      - wait_for:
          enters_segment: at_risk
          timeout: 30d
          on_event:
            - send: {id: rescue, subject: "We miss you", body: "Hi"}
      - wait: 60d
      - send: {id: later, subject: "Later", body: "Hi"}
"""


@dataclass
class Runner:
    env: WorkflowEnvironment
    pool: asyncpg.Pool
    sink: SmtpSink
    task_queue: str

    async def enter(self, plan: Plan, customer_id: str) -> WorkflowHandle[JourneyWorkflow, str]:
        await self.pool.execute(
            "INSERT INTO profiles (customer_id, traits) VALUES ($1, $2)",
            customer_id,
            {"email": f"{customer_id}@example.com"},
        )
        return await self.env.client.start_workflow(
            JourneyWorkflow.run,
            JourneyInput(journey_id=plan.journey_id, version=plan.version, customer_id=customer_id),
            id=f"journey/{plan.journey_id}/{customer_id}-{uuid.uuid4().hex[:6]}",
            task_queue=self.task_queue,
            start_signal=EVENT_SIGNAL,
            start_signal_args=[segment_event(SEGMENT_ENTERED, "vip")],
        )

    def subjects(self, customer_id: str) -> list[str]:
        return [m["Subject"] for m in self.sink.messages if customer_id in m["To"]]


def segment_event(name: str, segment_id: str) -> JourneyEvent:
    """What ingest records when membership changes: the engine's event, property `segment`."""
    return JourneyEvent(
        message_id=str(uuid.uuid4()),
        name=name,
        properties={"segment": segment_id},
        occurred_at=datetime.now(UTC),
    )


@pytest.fixture
async def runner(
    time_skipping_env: WorkflowEnvironment, database_url: str
) -> AsyncIterator[Runner]:
    conn = await connect(database_url)
    await migrate(conn)
    await conn.close()
    await ensure_search_attributes(time_skipping_env.client, "default", ALL)
    pool = await create_pool(database_url)
    sink = SmtpSink()
    port = sink.start()
    activities = JourneyActivities(
        pool,
        email=SmtpProvider("127.0.0.1", port, local_hostname="localhost"),
        from_address="Journeys <journeys@shop.example>",
    )
    task_queue = f"tq-{uuid.uuid4()}"
    try:
        async with build_worker(
            time_skipping_env.client, task_queue=task_queue, activities=activities
        ):
            yield Runner(time_skipping_env, pool, sink, task_queue)
    finally:
        sink.stop()
        await pool.close()


async def test_the_interpreter_runs_segment_hooks_as_events(runner: Runner) -> None:
    plan = compile_source(RUN, segments=("vip", "at_risk"))
    async with runner.pool.acquire() as conn:
        await deploy_plan(conn, plan=plan, source=RUN)

    # Enters on becoming VIP, gets the rescue email when at risk, then leaves VIP: exited.
    rescued = await runner.enter(plan, "c-rescued")
    await rescued.signal(JourneyWorkflow.on_event, segment_event(SEGMENT_ENTERED, "lost"))
    await rescued.signal(JourneyWorkflow.on_event, segment_event(SEGMENT_ENTERED, "at_risk"))
    await runner.env.sleep(timedelta(days=1))
    await rescued.signal(JourneyWorkflow.on_event, segment_event(SEGMENT_EXITED, "lost"))
    await rescued.signal(JourneyWorkflow.on_event, segment_event(SEGMENT_EXITED, "vip"))
    assert await rescued.result() == "exited"
    assert runner.subjects("c-rescued") == ["Thank you", "We miss you"]

    # Another segment's exit does not end the run: it waits, times out and completes.
    stays = await runner.enter(plan, "c-stays")
    await stays.signal(JourneyWorkflow.on_event, segment_event(SEGMENT_EXITED, "at_risk"))
    assert await stays.result() == "completed"
    assert runner.subjects("c-stays") == ["Thank you", "Later"]
