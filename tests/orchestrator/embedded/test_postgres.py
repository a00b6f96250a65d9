"""The embedded Postgres: starts, keeps data across restarts, survives a killed run."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from journeyman.orchestrator.embedded import EmbeddedPostgres, EmbeddedServerError
from journeyman.orchestrator.embedded._pgsetup import ensure_system_user
from journeyman.orchestrator.embedded._process import as_user

FAST = {"fsync": "off"}


@pytest.fixture
def pg_dir() -> Iterator[Path]:
    """A fresh directory under /tmp the unprivileged Postgres user can reach."""
    path = Path(tempfile.mkdtemp(prefix="jm-test-pg-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


async def _fetchval(url: str, query: str, **connect: object) -> object:
    conn = await asyncpg.connect(url, **connect)
    try:
        return await conn.fetchval(query)
    finally:
        await conn.close()


def _sleeper_as(user: pwd.struct_passwd | None) -> subprocess.Popen[bytes]:
    """A harmless live process of the user Postgres runs as."""
    return subprocess.Popen(["sleep", "60"], **as_user(user))


async def _wait_dead(pid: int, pg: EmbeddedPostgres) -> None:
    """Wait until the killed postmaster is gone (SIGKILL is delivered asynchronously)."""
    for _ in range(100):
        if pg.pid != pid:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"postgres {pid} survived SIGKILL")


async def test_session_server_accepts_connections(pg_server: EmbeddedPostgres) -> None:
    assert await _fetchval(pg_server.url, "SELECT 1") == 1
    assert pg_server.url == f"postgresql://postgres@127.0.0.1:{pg_server.port}/postgres"


async def test_database_url_is_a_fresh_database(database_url: str) -> None:
    name = await _fetchval(database_url, "SELECT current_database()")
    assert isinstance(name, str) and name.startswith("test_")
    assert database_url.endswith("/" + name)
    # Copied from the session's migrated template: the schema, and not a row in it.
    migrations = await _fetchval(database_url, "SELECT count(*) FROM schema_migrations")
    assert isinstance(migrations, int) and migrations > 0
    assert await _fetchval(database_url, "SELECT count(*) FROM events") == 0


async def test_empty_database_url_has_no_tables(empty_database_url: str) -> None:
    tables = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
    assert await _fetchval(empty_database_url, tables) == 0


async def test_second_server_on_same_dir_names_the_running_pid(pg_server: EmbeddedPostgres) -> None:
    intruder = EmbeddedPostgres(pg_server.data_dir)
    with pytest.raises(EmbeddedServerError, match=rf"pid {pg_server.pid}\b"):
        await intruder.start()
    assert await _fetchval(pg_server.url, "SELECT 1") == 1


async def test_data_persists_across_restart(pg_dir: Path) -> None:
    pg = EmbeddedPostgres(pg_dir, settings=FAST)
    try:
        await pg.start()
        conn = await asyncpg.connect(pg.url)
        await conn.execute("CREATE TABLE kept (v text); INSERT INTO kept VALUES ('hello')")
        await conn.close()
        await pg.stop()
        assert pg.pid is None
        assert not (pg.pgdata / "postmaster.pid").exists()

        await pg.start()
        assert await _fetchval(pg.url, "SELECT v FROM kept") == "hello"
    finally:
        await pg.stop()
    # A second object on the same directory (a later `journeyman up`) sees the data too.
    async with EmbeddedPostgres(pg_dir, settings=FAST) as again:
        assert await _fetchval(again.url, "SELECT v FROM kept") == "hello"


async def test_restart_after_kill_with_stale_and_reused_pid(pg_dir: Path) -> None:
    # A long path also forces the unix socket out of the data dir into /tmp/jm-pg-<hash>.
    deep = pg_dir / ("d" * 60) / ("e" * 60)
    pg = EmbeddedPostgres(deep, settings=FAST)
    assert str(pg.socket_dir).startswith("/tmp/jm-pg-")
    squatter: subprocess.Popen[bytes] | None = None
    try:
        await pg.start()
        socket_url = f"postgresql://postgres@/postgres?host={pg.socket_dir}&port={pg.port}"
        assert await _fetchval(socket_url, "SELECT 1") == 1
        await _fetchval(pg.url, "CREATE TABLE t AS SELECT 42 AS v")

        killed = pg.pid
        assert killed is not None
        os.kill(killed, signal.SIGKILL)
        await _wait_dead(killed, pg)
        pid_file = pg.pgdata / "postmaster.pid"
        assert pid_file.exists()
        # Let another live process of the same user own the recorded pid, as after pid reuse;
        # Postgres alone would refuse to start ("lock file already exists").
        squatter = _sleeper_as(ensure_system_user() if pg.system_user else None)
        lines = pid_file.read_text().splitlines()
        pid_file.write_text("\n".join([str(squatter.pid), *lines[1:]]) + "\n")

        await pg.start()
        assert pg.pid not in (None, killed)
        assert await _fetchval(pg.url, "SELECT v FROM t") == 42
    finally:
        await pg.stop()
        if squatter is not None:
            squatter.kill()
            squatter.wait()
        shutil.rmtree(pg.socket_dir, ignore_errors=True)
