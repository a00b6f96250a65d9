"""CPU seconds used by each part of the stack during a phase, read from /proc (Linux).

The bench process holds the API and the load generator (one interpreter, one GIL), and in the
engine and bare phases the worker too; Postgres, the Temporal dev server, the SMTP sink and, in
the reaction and scale phases, the worker are child processes, each counted with all its
descendants (Postgres backends come and go; the postmaster reaps them, so ended backends show
up in its children's times).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path

_TICKS = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _read_stat(pid: int) -> tuple[int, float] | None:
    """(parent pid, CPU seconds of the process and its reaped children), or None if gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the parenthesised command name; see proc(5): ppid is field 4,
    # utime, stime, cutime, cstime are fields 14 to 17.
    fields = text.rsplit(")", 1)[1].split()
    ppid = int(fields[1])
    ticks = sum(int(f) for f in fields[11:15])
    return ppid, ticks / _TICKS


def machine_busy() -> float:
    """CPU seconds all CPUs of the machine spent busy since boot (from /proc/stat)."""
    try:
        first = Path("/proc/stat").read_text().splitlines()[0].split()
    except (OSError, IndexError):
        return 0.0
    # user nice system idle iowait irq softirq steal: everything but idle and iowait.
    values = [int(v) for v in first[1:9]]
    return (sum(values) - values[3] - values[4]) / _TICKS


def _all_stats() -> dict[int, tuple[int, float]]:
    stats: dict[int, tuple[int, float]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            found = _read_stat(int(entry))
            if found is not None:
                stats[int(entry)] = found
    return stats


def tree_cpu(root: int, stats: Mapping[int, tuple[int, float]]) -> float:
    """CPU seconds of ``root`` and all its live descendants (and what they reaped)."""
    children: dict[int, list[int]] = {}
    for pid, (ppid, _) in stats.items():
        children.setdefault(ppid, []).append(pid)
    total, todo = 0.0, [root]
    while todo:
        pid = todo.pop()
        if pid in stats:
            total += stats[pid][1]
        todo.extend(children.get(pid, ()))
    return total


class CpuMeter:
    """Snapshots of CPU seconds per named part; ``roots`` gives each part's root pid."""

    def __init__(self, roots: Mapping[str, Callable[[], int | None]]) -> None:
        self._roots = dict(roots)

    def snapshot(self) -> dict[str, float]:
        stats = _all_stats()
        # process_time: every thread of this process (event loop, Temporal's core threads,
        # workflow task threads, the SMTP client's threads), but not its child processes.
        snap = {"bench process (API, load, in-process workers)": time.process_time()}
        for name, root in self._roots.items():
            pid = root()
            snap[name] = tree_cpu(pid, stats) if pid is not None else 0.0
        # Whatever else ran meanwhile (other people's processes on a shared machine): the
        # machine's busy time minus ours, so a disturbed measurement shows as such.
        snap["rest of machine"] = machine_busy() - sum(snap.values())
        snap["wall"] = time.monotonic()
        return snap

    @staticmethod
    def delta(before: Mapping[str, float], after: Mapping[str, float]) -> dict[str, float]:
        """CPU seconds per part between two snapshots, and ``wall`` seconds."""
        # Clock ticks and two clocks make "rest of machine" wobble around zero when idle.
        return {name: max(round(after[name] - before[name], 2), 0.0) for name in before}


async def settle(
    roots: Mapping[str, Callable[[], int | None]],
    *,
    below: float = 0.1,
    window: float = 1.0,
    limit: float = 30.0,
) -> float:
    """Wait until the given processes together use less than ``below`` of a core.

    Measured over ``window`` seconds at a time, for at most ``limit`` seconds; returns the
    seconds waited. A phase measures latency or memory after the burst that prepared it.
    """
    started = time.monotonic()
    while True:
        before = _tree_seconds(roots)
        await asyncio.sleep(window)
        used = _tree_seconds(roots) - before
        waited = time.monotonic() - started
        if used / window < below or waited >= limit:
            return round(waited, 1)


def _tree_seconds(roots: Mapping[str, Callable[[], int | None]]) -> float:
    stats = _all_stats()
    return sum(tree_cpu(pid, stats) for root in roots.values() if (pid := root()) is not None)


async def wait_for_quiet(
    limit: float, *, below: float = 0.3, stretch: float = 5.0
) -> tuple[float, float]:
    """Wait until the machine as a whole uses under ``below`` cores for ``stretch`` seconds.

    Meant for the moments between phases, when the bench's own servers idle: what keeps the
    machine busy then is other people's work. Gives up after ``limit`` seconds. Returns the
    seconds waited and the busy cores over the last second looked at.
    """
    started = time.monotonic()
    quiet_since: float | None = None
    while True:
        before, at = machine_busy(), time.monotonic()
        await asyncio.sleep(1.0)
        now = time.monotonic()
        busy = (machine_busy() - before) / (now - at)
        quiet_since = (quiet_since or at) if busy < below else None
        if (quiet_since is not None and now - quiet_since >= stretch) or now - started >= limit:
            return round(now - started, 1), round(busy, 2)
