"""The results: a Markdown table on stdout and a JSON file under bench/results/."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

RESULTS_DIR = Path(__file__).resolve().parent / "results"
_PACKAGES = ("temporalio", "fastapi", "uvicorn", "asyncpg", "httpx", "pydantic")


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gb() -> float | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    return None


def _nproc() -> int:
    try:
        return int(subprocess.run(["nproc"], capture_output=True, text=True).stdout)
    except (OSError, ValueError):
        return os.cpu_count() or 0


def machine() -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in _PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return {
        "nproc": _nproc(),
        "cpu_model": _cpu_model(),
        "memory_gb": _memory_gb(),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "packages": versions,
    }


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def markdown(result: dict[str, Any]) -> str:
    """The results table, the per-process CPU table and the engine's hop latencies."""
    m = result["machine"]
    lines = [
        f"Machine: {m['nproc']} CPUs ({m['cpu_model']}), Python {m['python']};"
        f" Postgres {'durable (fsync on)' if result['config']['durable'] else 'fsync off'};"
        f" {m.get('busy_cores_before_start', 0):.1f} cores busy with other work at start",
        "",
        "| measure | value |",
        "| --- | --- |",
    ]
    ing = result.get("ingest")
    if ing:
        lines += [
            f"| ingest, events/s (`POST /v1/batch`, {ing['batch_size']} track events per"
            f" request, {ing['clients']} clients, {ing['events']:,} events)"
            f" | **{_fmt(ing['events_per_s'], 0)}** |",
            f"| ingest, request latency p50 / p99 / max | {_fmt(ing['p50_ms'])} /"
            f" {_fmt(ing['p99_ms'])} / {_fmt(ing['max_ms'])} ms |",
            f"| ingest, outbox rows / runs created by routing (no worker running)"
            f" | {ing['outbox_rows']:,} / {ing['journey_runs']:,} |",
            f"| ingest, requests answered 5xx and retried | {ing['retried_5xx']} |",
        ]
    bare, engine = result.get("bare"), result.get("engine")
    if bare:
        lines += [
            f"| bare Temporal, journeys/s ({bare['customers']:,} workflows, same shape)"
            f" | **{_fmt(bare['journeys_per_s'], 2)}** |",
            f"| bare Temporal, signal-with-starts/s | {_fmt(bare['starts_per_s'])} |",
        ]
    if engine:
        lines += [
            f"| engine, journeys/s ({engine['customers']:,} customers, HTTP to SMTP)"
            f" | **{_fmt(engine['journeys_per_s'], 2)}** |",
            f"| engine, replies lost (reached the run before its `wait_for` began) and"
            f" re-posted | {engine['replies_reposted']} of {engine['customers']:,}"
            f" ({engine['lost_reply_checks']:,} describe calls to find them) |",
        ]
    if bare and engine:
        lines.append(
            f"| Temporal history events per run, engine / bare"
            f" | {engine['history_events_per_run']} / {bare['history_events_per_run']} |"
        )
        ratio = engine["journeys_per_s"] / bare["journeys_per_s"]
        lines.append(f"| engine / bare Temporal | **{ratio:.0%}** |")
    lines += _cpu_table(result)
    if engine and engine["timeline"]["hops"]:
        lines += ["", "Engine, per customer (p50 / p99):", "", "| hop | p50 | p99 |"]
        lines.append("| --- | --- | --- |")
        for hop, q in engine["timeline"]["hops"].items():
            lines.append(f"| {hop} | {_fmt(q['p50_ms'])} ms | {_fmt(q['p99_ms'])} ms |")
        lines += ["", "Engine, last customer past each point (s after the first entry post):", ""]
        lines += [f"- {k}: {v:.2f} s" for k, v in engine["timeline"]["milestones_s"].items()]
    return "\n".join(lines)


def _cpu_table(result: dict[str, Any]) -> list[str]:
    phases = [(name, result[key]) for name, key in _PHASES if result.get(key)]
    if not phases:
        return []
    parts = list(phases[0][1]["cpu_seconds"])
    lines = [
        "",
        "CPU seconds used during each timed phase (and share of one core):",
        "",
        "| phase | wall s | " + " | ".join(parts) + " |",
        "| --- | --- |" + " --- |" * len(parts),
    ]
    for name, phase in phases:
        wall = phase["seconds"]
        cells = [f"{cpu:.1f} ({cpu / wall:.0%})" for cpu in phase["cpu_seconds"].values()]
        lines.append(f"| {name} | {wall:.1f} | " + " | ".join(cells) + " |")
    return lines


_PHASES = [("ingest", "ingest"), ("bare Temporal", "bare"), ("engine journeys", "engine")]


def write_json(result: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = RESULTS_DIR / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
