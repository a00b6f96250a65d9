"""The dispatcher against the real dev server: starts, signals, finished runs, outages."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import asyncpg
import pytest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter

from journeyman.orchestrator.dispatcher import MAX_ATTEMPTS, Dispatcher
from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.storage import connect, migrate
from journeyman.workflows.inputs import JourneyEvent


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    connection = await connect(database_url)
    await migrate(connection)
    yield connection
    await connection.close()


async def _row(conn: asyncpg.Connection, workflow_id: str, *, entry: bool) -> int:
    message_id = str(uuid.uuid4())
    event_id = await conn.fetchval(
        "INSERT INTO events (message_id, type, customer_id, event, occurred_at)"
        " VALUES ($1, 'track', 'c', 'Signed Up', now()) RETURNING id",
        message_id,
    )
    event = JourneyEvent(
        message_id=message_id, name="Signed Up", occurred_at=datetime.now(UTC)
    ).model_dump(mode="json")
    row_id: int = await conn.fetchval(
        "INSERT INTO outbox (event_id, journey_id, version, customer_id, workflow_id, payload)"
        " VALUES ($1, 'j', 'v1', 'c', $2, $3) RETURNING id",
        event_id,
        workflow_id,
        {"entry": entry, "event": event},
    )
    return row_id


async def _client(server: TemporalDevServer) -> Client:
    return await Client.connect(server.address, data_converter=pydantic_data_converter)


async def test_entry_starts_a_run_and_other_events_never_do(
    conn: asyncpg.Connection, database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    client = await _client(temporal_dev_server)
    queue = f"nobody-polls-{uuid.uuid4()}"  # the run only has to exist, not to progress
    started, orphan = f"journey/j/{uuid.uuid4()}", f"journey/j/{uuid.uuid4()}"
    await _row(conn, started, entry=True)
    await _row(conn, started, entry=False)
    await _row(conn, orphan, entry=False)  # its run is gone: the event must not start one
    dispatcher = Dispatcher(database_url, client, task_queue=queue)

    assert await dispatcher.drain_once(conn) == (3, 0)
    assert await conn.fetchval("SELECT count(*) FROM outbox WHERE delivered_at IS NULL") == 0
    described = await client.get_workflow_handle(started).describe()
    assert described.status == WorkflowExecutionStatus.RUNNING
    history = await client.get_workflow_handle(started).fetch_history()
    signals = [
        e for e in history.events if e.HasField("workflow_execution_signaled_event_attributes")
    ]
    assert len(signals) == 2
    assert [w async for w in client.list_workflows(f"WorkflowId = '{orphan}'")] == []

    # A finished run is never started again by a late duplicate of its entry event.
    await client.get_workflow_handle(started).terminate("test")
    await _row(conn, started, entry=True)
    assert await dispatcher.drain_once(conn) == (1, 0)
    runs = [w async for w in client.list_workflows(f"WorkflowId = '{started}'")]
    assert [w.status for w in runs] == [WorkflowExecutionStatus.TERMINATED]


async def test_an_id_freed_by_erasure_starts_a_new_run(
    conn: asyncpg.Connection, database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    # An erased customer's finished run keeps its id in Temporal until deleted; a new customer
    # under the same id enters again, with a run row newer than that closed run.
    client = await _client(temporal_dev_server)
    queue = f"nobody-polls-{uuid.uuid4()}"
    workflow_id = f"journey/j/{uuid.uuid4()}"
    dispatcher = Dispatcher(database_url, client, task_queue=queue)
    await _row(conn, workflow_id, entry=True)
    assert await dispatcher.drain_once(conn) == (1, 0)
    await client.get_workflow_handle(workflow_id).terminate("the customer was erased")
    await conn.execute(
        "INSERT INTO journey_runs (journey_id, customer_id, version, workflow_id)"
        " VALUES ('j', 'c', 'v1', $1)",
        workflow_id,
    )
    await _row(conn, workflow_id, entry=True)
    terminated = (await client.get_workflow_handle(workflow_id).describe()).run_id
    assert await dispatcher.drain_once(conn) == (1, 0)
    # The latest run under the id is a new one, running (describe reads it directly, unlike
    # the eventually consistent visibility listing).
    latest = await client.get_workflow_handle(workflow_id).describe()
    assert latest.status == WorkflowExecutionStatus.RUNNING and latest.run_id != terminated


async def test_outage_holds_rows_back_without_counting_attempts(
    conn: asyncpg.Connection, database_url: str
) -> None:
    # A server the client was connected to goes away, as in a Temporal restart.
    server = TemporalDevServer(None, ui_port=None)
    await server.start()
    client = await _client(server)
    await server.stop()
    await _row(conn, f"journey/j/{uuid.uuid4()}", entry=True)
    dispatcher = Dispatcher(database_url, client, task_queue="q")
    assert await dispatcher.drain_once(conn) == (1, 1)
    assert await conn.fetchval("SELECT attempts FROM outbox") == 0
    assert await conn.fetchval("SELECT delivered_at FROM outbox") is None


async def test_a_row_temporal_refuses_becomes_a_dead_letter(
    conn: asyncpg.Connection, database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    client = await _client(temporal_dev_server)
    refused = await _row(conn, "x" * 2000, entry=True)  # longer than any workflow id may be
    fine = await _row(conn, f"journey/j/{uuid.uuid4()}", entry=True)
    dispatcher = Dispatcher(database_url, client, task_queue=f"q-{uuid.uuid4()}")
    assert await dispatcher.drain_once(conn) == (2, 0)
    for _ in range(MAX_ATTEMPTS - 1):
        await dispatcher.drain_once(conn)
    assert await dispatcher.drain_once(conn) == (0, 0)  # no longer claimed
    state = {
        r["id"]: (r["delivered_at"] is not None, r["attempts"], r["last_error"])
        for r in await conn.fetch("SELECT id, delivered_at, attempts, last_error FROM outbox")
    }
    assert state[fine][:2] == (True, 0)
    delivered, attempts, error = state[refused]
    assert (delivered, attempts) == (False, MAX_ATTEMPTS)
    assert error.startswith("INVALID_ARGUMENT")
