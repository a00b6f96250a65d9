"""Resident memory of a process, read from /proc (Linux)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MIB = 1024 * 1024


@dataclass(frozen=True)
class Rss:
    """Resident set size now and at its peak (``VmHWM``), in MiB."""

    now_mib: float
    peak_mib: float


def parse_status(text: str) -> Rss:
    """``VmRSS`` and ``VmHWM`` from the text of ``/proc/<pid>/status`` (values in kB)."""
    found: dict[str, float] = {}
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            number, unit = value.split()
            if unit != "kB":
                raise ValueError(f"unexpected unit {unit!r} for {key} in /proc status")
            found[key] = int(number) * 1024 / MIB
    if "VmRSS" not in found:
        raise ValueError("no VmRSS line: the process is gone or is a kernel thread")
    return Rss(now_mib=round(found["VmRSS"], 1), peak_mib=round(found.get("VmHWM", 0.0), 1))


def rss(pid: int) -> Rss:
    """The process's resident memory; raises ``OSError`` if it is gone."""
    return parse_status(Path(f"/proc/{pid}/status").read_text())


def available_mib(meminfo: Path = Path("/proc/meminfo")) -> float | None:
    """Memory the machine can still give out (``MemAvailable``), or None where not known."""
    try:
        text = meminfo.read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key == "MemAvailable":
            number, unit = value.split()
            if unit != "kB":
                raise ValueError(f"unexpected unit {unit!r} for MemAvailable in {meminfo}")
            return round(int(number) * 1024 / MIB, 1)
    return None
