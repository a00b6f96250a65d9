"""The log output: the human format by default, JSON lines on request, ids of the work at
hand, and personal data and secrets masked in both."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from temporalio import workflow
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from journeyman.orchestrator import cli
from journeyman.orchestrator.config import ConfigError, Settings
from journeyman.orchestrator.dispatcher import Dispatcher
from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.observability import configure_logging, log_context, mask_secrets
from journeyman.orchestrator.observability.logs import JsonFormatter, Redactor, log_uncaught
from journeyman.orchestrator.storage import connect, migrate
from journeyman.orchestrator.temporal_client import connect_temporal
from journeyman.workflows.inputs import JourneyEvent

from .conftest import Capture

log = logging.getLogger("journeyman.test")


def lines(output: str) -> list[dict[str, Any]]:
    parsed = [json.loads(line) for line in output.splitlines()]
    assert all(isinstance(entry, dict) for entry in parsed)
    return parsed


def test_json_lines_carry_the_ids_bound_where_they_were_written(captured_logs: Capture) -> None:
    out = captured_logs("json")
    log.info("outside")
    with log_context(journey_id="welcome", version="v1", customer_id="c-42"):
        log.warning("one %s", "argument")
        with log_context(step_id="hello", send_key="run/hello/0", version=None):
            log.info("nested")
        log.debug("below the level")
    first, second, third = lines(out.getvalue())
    assert list(first) == ["time", "level", "logger", "message"]
    assert (first["level"], first["logger"], first["message"]) == (
        "INFO",
        "journeyman.test",
        "outside",
    )
    written = datetime.fromisoformat(first["time"])
    assert written.tzinfo == UTC and abs((datetime.now(UTC) - written).total_seconds()) < 60
    assert second["message"] == "one argument" and second["level"] == "WARNING"
    assert {k: second[k] for k in ("journey_id", "version", "customer_id")} == {
        "journey_id": "welcome",
        "version": "v1",
        "customer_id": "c-42",
    }
    assert "step_id" not in second
    # Nested contexts add to the outer one; None leaves a field as it was.
    assert (third["step_id"], third["send_key"], third["version"]) == ("hello", "run/hello/0", "v1")


def test_a_json_line_holds_its_traceback_and_stays_one_line(captured_logs: Capture) -> None:
    out = captured_logs("json")
    try:
        raise ValueError("bad\nvalue")
    except ValueError:
        log.exception("failed\non two lines")
    [entry] = lines(out.getvalue())
    assert entry["message"] == "failed\non two lines"
    assert entry["exception"].startswith("Traceback") and "ValueError: bad" in entry["exception"]


def test_the_default_format_is_the_human_one(captured_logs: Capture) -> None:
    out = captured_logs("text")
    with log_context(customer_id="c-42"):
        log.warning("disk %s", "full")
    assert re.fullmatch(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING journeyman.test: disk full\n",
        out.getvalue(),
    )
    assert Settings.from_env({}).log_format == "text"


def test_libraries_speak_at_warning_and_the_engine_at_its_level(captured_logs: Capture) -> None:
    out = captured_logs("json")
    logging.getLogger("temporalio.worker").info("polling")
    logging.getLogger("httpx").info("HTTP Request: GET /")
    logging.getLogger("temporalio.worker").warning("poll failed")
    log.info("engine")
    assert [e["message"] for e in lines(out.getvalue())] == ["poll failed", "engine"]


SENSITIVE = [
    ("mail to ana.lee+news@shop.example.com.tw bounced", "ana.lee+news@shop.example.com.tw"),
    ("SMS to +886912345678 refused", "+886912345678"),
    ("SMS to +886 912 345 678 refused", "+886 912 345 678"),
    ("postgresql://journeyman:s3cr3t-pw@db:5432/journeyman unreachable", "s3cr3t-pw"),
    ("sent Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.payload.sig", "eyJhbGciOiJIUzI1NiJ9"),
    ("header Basic d2tfbGl2ZTpzZWNyZXQ=", "d2tfbGl2ZTpzZWNyZXQ="),
    ("the key wk_live_0123456789 was refused", "wk_live_0123456789"),
]


@pytest.mark.parametrize(("message", "secret"), SENSITIVE)
@pytest.mark.parametrize("log_format", ["text", "json"])
def test_personal_data_and_secrets_are_masked(
    captured_logs: Capture, log_format: Any, message: str, secret: str
) -> None:
    out = captured_logs(log_format)
    mask_secrets("wk_live_0123456789")
    with log_context(customer_id="ana.lee+news@shop.example.com.tw"):
        log.warning(message)
        try:
            raise RuntimeError(message)
        except RuntimeError:
            log.exception("failed")
    written = out.getvalue()
    assert secret not in written
    assert "<" in written  # masked, not dropped


def test_what_is_not_personal_stays_readable() -> None:
    redactor = Redactor(["s3cret-value"])
    kept = (
        "run journey/welcome/c-42 at 2024-05-01T10:00:00+08:00 on port 7233, row 12345678901,"
        " version aa4114c4d4b2b474, SMTP 250 2.0.0 Ok: queued as 4F2C1"
    )
    assert redactor.redact(kept) == kept
    assert redactor.redact("x s3cret-value y") == "x <secret> y"
    assert Redactor(["abc"]).redact("abc") == "abc"  # too short to mask by value


def test_only_known_context_fields_are_accepted() -> None:
    with pytest.raises(ValueError, match="email"), log_context(email="a@b.example"):
        pass


@pytest.mark.parametrize(("value", "ok"), [("json", True), ("text", True), ("yaml", False)])
def test_the_log_format_setting_is_checked(value: str, ok: bool) -> None:
    if ok:
        assert Settings.from_env({"JOURNEYMAN_LOG_FORMAT": value}).log_format == value
    else:
        with pytest.raises(ConfigError, match="JOURNEYMAN_LOG_FORMAT"):
            Settings.from_env({"JOURNEYMAN_LOG_FORMAT": value})


def test_the_cli_sets_up_the_format_and_masks_the_configured_secrets(
    captured_logs: Capture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    captured_logs("text")  # only so that the fixture restores logging afterwards
    monkeypatch.setenv("JOURNEYMAN_LOG_FORMAT", "json")
    monkeypatch.setenv("JOURNEYMAN_SMTP_PASSWORD", "smtp-pw-0123")
    assert cli.main(["validate", str(tmp_path)]) == 0
    [handler] = [h for h in logging.getLogger().handlers if type(h).__name__ == "_Handler"]
    logging.getLogger().removeHandler(handler)  # it writes to the real stderr
    assert isinstance(handler.formatter, JsonFormatter)
    record = log.makeRecord(log.name, logging.ERROR, __file__, 1, "pw smtp-pw-0123", (), None)
    assert json.loads(handler.format(record))["message"] == "pw <secret>"


async def test_dispatcher_lines_name_the_row_they_are_about(
    captured_logs: Capture, database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    out = captured_logs("json")
    conn = await connect(database_url)
    try:
        await migrate(conn)
        event_id = await conn.fetchval(
            "INSERT INTO events (message_id, type, customer_id, event, occurred_at)"
            " VALUES ($1, 'track', 'c-7', 'Signed Up', now()) RETURNING id",
            str(uuid.uuid4()),
        )
        event = JourneyEvent(
            message_id=str(uuid.uuid4()), name="Signed Up", occurred_at=datetime.now(UTC)
        )
        # A workflow id longer than Temporal takes: the row is refused, and said so.
        await conn.execute(
            "INSERT INTO outbox (event_id, journey_id, version, customer_id, workflow_id, payload)"
            " VALUES ($1, 'welcome', 'v9', 'c-7', $2, $3)",
            event_id,
            "x" * 2000,
            {"entry": True, "event": event.model_dump(mode="json")},
        )
        client = await Client.connect(
            temporal_dev_server.address, data_converter=pydantic_data_converter
        )
        dispatcher = Dispatcher(database_url, client, task_queue=f"q-{uuid.uuid4()}")
        assert await dispatcher.drain_once(conn) == (1, 0)
    finally:
        await conn.close()
    [refused] = [e for e in lines(out.getvalue()) if "refused by Temporal" in e["message"]]
    assert refused["level"] == "WARNING"
    assert (refused["journey_id"], refused["version"], refused["customer_id"]) == (
        "welcome",
        "v9",
        "c-7",
    )
    assert refused["workflow_id"] == "x" * 2000


def test_configuring_again_replaces_the_handler(captured_logs: Capture) -> None:
    first = captured_logs("text")
    second = configure_logging(level="INFO", log_format="json")
    try:
        ours = [h for h in logging.getLogger().handlers if type(h).__name__ == "_Handler"]
        assert ours == [second]
        log.info("only once")
        assert first.getvalue() == ""
    finally:
        logging.getLogger().removeHandler(second)


def test_an_error_that_ends_the_process_is_a_log_line_too(captured_logs: Capture) -> None:
    out = captured_logs("json")
    try:
        raise ConnectionError("postgresql://journeyman:hunter2-pw@db/journeyman refused")
    except ConnectionError as exc:
        log_uncaught(ConnectionError, exc, exc.__traceback__)
    [entry] = lines(out.getvalue())
    assert (entry["level"], entry["logger"]) == ("CRITICAL", "journeyman")
    assert "ConnectionError" in entry["exception"] and "hunter2-pw" not in entry["exception"]


@workflow.defn(name="LogsProbe")
class LogsProbe:
    @workflow.run
    async def run(self) -> str:
        return "done"


async def test_the_temporal_runtimes_own_warnings_are_log_lines_too(
    captured_logs: Capture,
) -> None:
    # A worker whose server goes away: the runtime (not Python) warns about the failed polls.
    out = captured_logs("json")
    server = TemporalDevServer(None, ui_port=None)
    await server.start()
    client = await connect_temporal(server.address)
    worker = Worker(
        client,
        task_queue=f"logs-{uuid.uuid4()}",
        workflows=[LogsProbe],
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    running = asyncio.create_task(worker.run())
    try:
        await asyncio.sleep(0.5)
        await server.stop()
        async with asyncio.timeout(30):
            while "temporalio.runtime" not in out.getvalue():  # noqa: ASYNC110 - the runtime's own threads write
                await asyncio.sleep(0.2)
    finally:
        running.cancel()
        with contextlib.suppress(BaseException):
            await running
    runtime = [e for e in lines(out.getvalue()) if e["logger"].startswith("temporalio.runtime")]
    assert runtime and all(e["level"] == "WARNING" for e in runtime)
    assert any("poll" in e["message"] for e in runtime)
