"""The journey worker as a child process (``journeyman worker``), so its memory is its own.

The phases that measure latency or memory run the worker as production runs it: a process of
its own (with the outbox dispatcher), not sharing the bench's interpreter, GIL or heap. Its
resident memory is then the worker's alone, read from /proc.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import time
from pathlib import Path

from temporalio.api.enums.v1 import TaskQueueType
from temporalio.api.taskqueue.v1 import TaskQueue
from temporalio.api.workflowservice.v1 import DescribeTaskQueueRequest
from temporalio.client import Client

from .memory import Rss, rss

REPO = Path(__file__).resolve().parents[1]
START_SECONDS = 60.0  # imports, migrations check, connecting, registering the pollers


class WorkerProcess:
    """``start`` returns once the worker polls its task queue; ``stop`` always ends it."""

    def __init__(
        self,
        *,
        database_url: str,
        temporal_address: str,
        smtp_port: int,
        task_queue: str,
        smtp_from: str,
        log_path: Path,
    ) -> None:
        self.task_queue = task_queue
        self.log_path = log_path
        self._temporal_address = temporal_address
        self._env = {
            **os.environ,
            "JOURNEYMAN_DATABASE_URL": database_url,
            "JOURNEYMAN_TEMPORAL_ADDRESS": temporal_address,
            "JOURNEYMAN_TASK_QUEUE": task_queue,
            "JOURNEYMAN_SMTP_HOST": "127.0.0.1",
            "JOURNEYMAN_SMTP_PORT": str(smtp_port),
            "JOURNEYMAN_SMTP_FROM": smtp_from,
            "JOURNEYMAN_LOG_LEVEL": "WARNING",
        }
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        argv = [sys.executable, "-m", "journeyman.orchestrator.cli", "worker"]
        setpriv = shutil.which("setpriv")
        if setpriv is not None and sys.platform == "linux":
            # Dies with us even if we are killed outright.
            argv = [setpriv, "--pdeathsig=SIGTERM", *argv]
        with self.log_path.open("ab") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *argv, cwd=REPO, env=self._env, stdout=log, stderr=log
            )
        await self._wait_polling()

    async def _wait_polling(self) -> None:
        client = await Client.connect(self._temporal_address)
        request = DescribeTaskQueueRequest(
            namespace=client.namespace,
            task_queue=TaskQueue(name=self.task_queue),
            task_queue_type=TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW,
        )
        deadline = time.monotonic() + START_SECONDS
        while True:
            self.check()
            if (await client.workflow_service.describe_task_queue(request)).pollers:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(
                    f"the worker process did not poll {self.task_queue} within"
                    f" {START_SECONDS:.0f}s:\n{self.log_tail()}"
                )
            await asyncio.sleep(0.2)

    def check(self) -> None:
        """Raise, with the end of its log, if the worker process has stopped."""
        if self._proc is None or self._proc.returncode is not None:
            raise RuntimeError(f"the worker process has stopped:\n{self.log_tail()}")

    def memory(self) -> Rss:
        self.check()
        assert self._proc is not None
        return rss(self._proc.pid)

    def log_tail(self, limit: int = 3000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-limit:]
        except OSError:
            return "(no log)"

    async def stop(self, grace: float = 30.0) -> None:
        """SIGTERM (in-flight sends finish), then SIGKILL after ``grace`` seconds."""
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        except asyncio.CancelledError:
            proc.kill()
            raise
