"""CPU seconds used by each part of the stack during a phase, read from /proc (Linux).

The bench process holds the API, the worker, the dispatcher and the load generator (one
interpreter, one GIL); Postgres, the Temporal dev server and the SMTP sink are child processes,
each counted with all its descendants (Postgres backends come and go; the postmaster reaps them,
so ended backends show up in its children's times).
"""

from __future__ import annotations

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
        snap = {"bench process (API, worker, load)": time.process_time()}
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
