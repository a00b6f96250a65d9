"""The SMTP sink as a child process (``bench.sink_child``), and the mail it reports."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import sys
from pathlib import Path
from typing import NamedTuple

REPO = Path(__file__).resolve().parents[1]


class Mail(NamedTuple):
    """One message the sink received: to whom, its subject, and when (Unix seconds)."""

    recipient: str
    subject: str
    at: float


def parse_line(line: str) -> Mail:
    """A ``<recipient>\\t<subject>\\t<arrival>`` line of ``bench.sink_child``."""
    recipient, rest = line.rstrip("\n").split("\t", 1)
    subject, at = rest.rsplit("\t", 1)
    return Mail(recipient, subject, float(at))


class SinkProcess:
    """Start with ``start``; ``arrivals`` fills with ``Mail`` as messages come in."""

    def __init__(self) -> None:
        self.port = 0
        self.arrivals: list[Mail] = []
        self._proc: asyncio.subprocess.Process | None = None
        self._reader: asyncio.Task[None] | None = None

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    async def start(self) -> None:
        argv = [sys.executable, "-m", "bench.sink_child"]
        setpriv = shutil.which("setpriv")
        if setpriv is not None and sys.platform == "linux":
            # Dies with us even if we are killed outright (we spawn from the loop's thread).
            argv = [setpriv, "--pdeathsig=SIGTERM", *argv]
        self._proc = await asyncio.create_subprocess_exec(
            *argv, cwd=REPO, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        assert self._proc.stdout is not None
        line = await asyncio.wait_for(self._proc.stdout.readline(), 30)
        if not line.strip().isdigit():
            raise RuntimeError(f"the SMTP sink process did not start (said {line!r})")
        self.port = int(line)
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        async for raw in self._proc.stdout:
            self.arrivals.append(parse_line(raw.decode()))

    def check(self) -> None:
        if self._proc is None or self._proc.returncode is not None:
            raise RuntimeError("the SMTP sink process has stopped")

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.stdin is not None:
            proc.stdin.close()  # the child exits at end of input
        try:
            await asyncio.wait_for(proc.wait(), 5)
        except TimeoutError:
            proc.kill()
            await proc.wait()
        except asyncio.CancelledError:
            proc.kill()
            raise
        finally:
            if self._reader is not None:
                self._reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._reader
