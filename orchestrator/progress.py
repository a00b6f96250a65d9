"""A small terminal progress bar for long work (no dependency, quiet when not a terminal)."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    def __init__(self, total: int, label: str, *, stream: TextIO | None = None) -> None:
        self.total, self.label, self.done = max(total, 1), label, 0
        self._stream = stream or sys.stderr
        self._tty = self._stream.isatty()
        self._started = time.monotonic()
        self._last_draw = 0.0

    def advance(self, n: int = 1) -> None:
        self.done = min(self.total, self.done + n)
        now = time.monotonic()
        if self.done >= self.total or now - self._last_draw > 0.1:
            self._last_draw = now
            self._draw()

    def _draw(self) -> str:
        width = 30
        filled = int(width * self.done / self.total)
        rate = self.done / max(time.monotonic() - self._started, 1e-6)
        line = (
            f"{self.label} [{'#' * filled}{'.' * (width - filled)}] "
            f"{self.done}/{self.total} ({rate:,.0f}/s)"
        )
        if self._tty:
            self._stream.write("\r" + line)
            self._stream.flush()
        return line

    def close(self) -> None:
        """Finish the bar; a log file (not a terminal) gets only this final line."""
        line = self._draw()
        self._stream.write("\n" if self._tty else line + "\n")
        self._stream.flush()
