"""The embedded Temporal dev server, search attribute registration, the time-skipping env."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.common import SearchAttributeKey
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from journeyman.orchestrator.embedded import (
    SearchAttributeError,
    TemporalDevServer,
    ensure_search_attributes,
)
from journeyman.workflows import search_attributes

KEYWORD = IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD


@pytest.fixture
def data_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="jm-test-temporal-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _custom_attributes(address: str) -> dict[str, int]:
    client = await Client.connect(address)
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace="default")
    )
    return dict(listed.custom_attributes)


async def test_dev_server_registers_journey_attributes(
    temporal_dev_server: TemporalDevServer,
) -> None:
    custom = await _custom_attributes(temporal_dev_server.address)
    for key in search_attributes.ALL:
        assert custom.get(key.name) == KEYWORD


async def test_workflows_and_attributes_survive_restart(data_dir: Path) -> None:
    first = TemporalDevServer(data_dir, ui_port=None, search_attributes=search_attributes.ALL[:2])
    workflow_id = f"survivor-{uuid.uuid4()}"
    try:
        await first.start()
        assert first.db_path is not None and first.db_path.exists()
        client = await Client.connect(first.address)
        # No worker needed: the run stays open with a pending task.
        await client.start_workflow("NoSuchWorkflow", id=workflow_id, task_queue="nobody")
    finally:
        await first.stop()

    # The CLI applies --search-attribute only to a new database; start() adds the new one.
    async with TemporalDevServer(data_dir, ui_port=None) as second:
        client = await Client.connect(second.address)
        described = await client.get_workflow_handle(workflow_id).describe()
        assert described.status == WorkflowExecutionStatus.RUNNING
        custom = await _custom_attributes(second.address)
        assert {k.name for k in search_attributes.ALL} <= set(custom)

        assert await ensure_search_attributes(client, "default", search_attributes.ALL) == []
        extra = SearchAttributeKey.for_keyword("JmTestExtra")
        assert await ensure_search_attributes(client, "default", [extra]) == ["JmTestExtra"]
        assert await ensure_search_attributes(client, "default", [extra]) == []
        clash = SearchAttributeKey.for_int(search_attributes.JOURNEY_STAGE.name)
        with pytest.raises(SearchAttributeError, match=r"JourneyStage is \w*KEYWORD, not \w*INT"):
            await ensure_search_attributes(client, "default", [clash])


@workflow.defn(sandboxed=False)
class StagedWorkflow:
    @workflow.run
    async def run(self) -> str:
        workflow.upsert_search_attributes([search_attributes.JOURNEY_STAGE.value_set("welcome")])
        await workflow.sleep(timedelta(days=3))
        return "done"


async def test_time_skipping_env_accepts_journey_attributes(
    time_skipping_env: WorkflowEnvironment,
) -> None:
    client = time_skipping_env.client
    # Already registered by the fixture; the test server cannot list, so this re-adds blindly.
    assert await ensure_search_attributes(client, client.namespace, search_attributes.ALL) == []
    queue = f"tq-{uuid.uuid4()}"
    async with Worker(
        client,
        task_queue=queue,
        workflows=[StagedWorkflow],
        workflow_runner=UnsandboxedWorkflowRunner(),
    ):
        result = await client.execute_workflow(
            StagedWorkflow.run,
            id=f"staged-{uuid.uuid4()}",
            task_queue=queue,
            execution_timeout=timedelta(days=7),
        )
    assert result == "done"
