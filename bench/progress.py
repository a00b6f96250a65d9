"""One progress line per phase: redrawn in place on a terminal, a line every few seconds if not."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Ticker:
    def __init__(
        self, label: str, total: int, *, unit: str = "", stream: TextIO | None = None
    ) -> None:
        self.label, self.total, self.unit = label, max(total, 1), unit
        self.done = 0
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._started = time.monotonic()
        self._last = 0.0
        self._every = 0.2 if self._tty else 5.0
        self.note = ""

    def update(self, done: int, note: str = "") -> None:
        self.done, self.note = min(done, self.total), note
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            self._draw()

    def _line(self) -> str:
        elapsed = time.monotonic() - self._started
        rate = self.done / max(elapsed, 1e-6)
        width = 24
        filled = int(width * self.done / self.total)
        bar = "#" * filled + "." * (width - filled)
        note = f"  {self.note}" if self.note else ""
        return (
            f"  {self.label:<22} [{bar}] {self.done}/{self.total} {self.unit}"
            f" {elapsed:5.1f}s {rate:8.1f}/s{note}"
        )

    def _draw(self) -> None:
        if self._tty:
            self._stream.write("\r\033[K" + self._line())
        else:
            self._stream.write(self._line() + "\n")
        self._stream.flush()

    def close(self) -> None:
        self._draw()
        if self._tty:
            self._stream.write("\n")
        self._stream.flush()


def say(text: str) -> None:
    """A status line on stderr (the results go to stdout)."""
    print(text, file=sys.stderr, flush=True)
