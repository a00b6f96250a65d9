"""The results: a Markdown report on stdout and a JSON file under bench/results/.

The report opens with the machine and the targets (PASS / FAIL / NOT MEASURED), then every
figure next to its ceiling, then the details (CPU per process, per-hop latencies, and the
growth tables of the scale phases, in ``report_details``).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import report_details, run_history
from .targets import evaluate

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def _fmt(value: float, digits: int = 1) -> str:
    return f"{value:,.{digits}f}"


def machine_lines(result: dict[str, Any]) -> list[str]:
    m = result["machine"]
    packages = m.get("packages", {})
    load = m.get("load_average_at_start") or []
    busy = m.get("busy_cores_before_start", 0.0)
    durable = result["config"]["durable"]
    return [
        f"- Machine: {m['cpu_model']}, {m['nproc']} CPUs, {m.get('memory_gib')} GiB RAM;"
        f" {m.get('platform', '')}",
        f"- Versions: Python {m['python']}, Postgres {m.get('postgres', '?')}"
        f" ({'durable, fsync on' if durable else 'fsync off'}),"
        f" {m.get('temporal_cli') or 'temporal CLI ?'},"
        f" temporalio {packages.get('temporalio')}, uvicorn {packages.get('uvicorn')},"
        f" asyncpg {packages.get('asyncpg')}",
        f"- Shared machine: {busy:.1f} cores busy with other work just before the start"
        f" (load average {' / '.join(f'{v:.2f}' for v in load)}); the CPU table shows what"
        " the rest of the machine used during each phase.",
        *_quiet_line(result),
    ]


def _quiet_line(result: dict[str, Any]) -> list[str]:
    quiet = result.get("quiet_before")
    if not quiet:
        return []
    each = ", ".join(
        f"{phase} {q['busy_cores']:.1f} (waited {q['waited_s']:.0f} s)"
        for phase, q in quiet.items()
    )
    return [f"- Other work on the machine just before each phase, in busy cores: {each}."]


def targets_table(result: dict[str, Any]) -> list[str]:
    lines = ["| target | wanted | measured | verdict | where |", "| --- | --- | --- | --- | --- |"]
    for outcome in result.get("targets", []):
        lines.append(
            f"| {outcome['target']} | {outcome['wanted']} | {outcome['shown']}"
            f" | **{outcome['verdict']}** | {outcome['note']} |"
        )
    return lines


def figures_table(result: dict[str, Any]) -> list[str]:
    lines = ["| measure | value |", "| --- | --- |"]
    ing, ceil = result.get("ingest"), result.get("ceilings")
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
    if ceil:
        each = f"{ceil['clients']} connections, {ceil['rows']:,} rows"
        lines += [
            f"| ceiling: COPY into `events`, {ceil['batch_size']} rows per transaction ({each})"
            f" | **{_fmt(ceil['copy']['events_per_s'], 0)}** |",
            f"| ceiling: batched `INSERT ... ON CONFLICT (message_id) DO NOTHING`,"
            f" {ceil['batch_size']} rows per statement ({each})"
            f" | **{_fmt(ceil['upsert']['events_per_s'], 0)}** |",
            f"| ceiling: COPY into `events`, one transaction per connection ({each})"
            f" | {_fmt(ceil['bulk_copy']['events_per_s'], 0)} |",
        ]
        if ing:
            share = ing["events_per_s"] / ceil["upsert"]["events_per_s"]
            copy_share = ing["events_per_s"] / ceil["copy"]["events_per_s"]
            lines.append(
                f"| ingest / batched-upsert ceiling (and / per-batch COPY)"
                f" | **{share:.0%}** ({copy_share:.0%}) |"
            )
    lines += _journeys_rows(result)
    lines += _reaction_rows(result.get("reaction"))
    return lines


def _journeys_rows(result: dict[str, Any]) -> list[str]:
    bare, engine = result.get("bare"), result.get("engine")
    lines = []
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
        if engine.get("history") and bare.get("history"):
            lines.append(
                "| among them, per run, engine / bare"
                f" | {run_history.describe(engine['history'], bare['history'])} |"
            )
        ratio = engine["journeys_per_s"] / bare["journeys_per_s"]
        lines.append(f"| engine / bare Temporal | **{ratio:.0%}** |")
    return lines


def _reaction_rows(reaction: dict[str, Any] | None) -> list[str]:
    if not reaction:
        return []
    r, answer = reaction["reaction"], reaction["answer"]
    missing = []
    if reaction["missing"]:
        missing = [
            f"| reaction: messages not arrived when the bench stopped waiting (counted as"
            f" arriving then) | **{reaction['missing']} of {reaction['customers']:,}** |"
        ]
    return [
        f"| reaction: `POST /v1/track` 2xx -> next message at the SMTP sink"
        f" ({reaction['customers']:,} parked customers, {reaction['posted_per_s']:g}/s)"
        f" p50 / p90 / p99 / max | **{_fmt(r['p50_ms'])}** / {_fmt(r['p90_ms'])} /"
        f" **{_fmt(r['p99_ms'])}** / {_fmt(r['max_ms'])} ms (min {_fmt(reaction['min_ms'])}) |",
        f"| reaction: the `POST /v1/track` itself, p50 / p99 | {_fmt(answer['p50_ms'])} /"
        f" {_fmt(answer['p99_ms'])} ms |",
        f"| reaction: parking the customers in the `wait_for` first"
        f" | {_fmt(reaction['park_seconds'])} s |",
        *missing,
    ]


def markdown(result: dict[str, Any]) -> str:
    """Machine, targets, figures with their ceilings, then the details."""
    lines = machine_lines(result)
    if "error" in result:
        first = str(result["error"]).splitlines()[0]
        lines += ["", f"**The run stopped early** ({first}); what it measured before is below."]
    if "targets" in result:
        lines += ["", *targets_table(result)]
    lines += ["", *figures_table(result)]
    lines += report_details.cpu_table(result)
    lines += report_details.hop_tables(result)
    lines += report_details.growth_tables(result)
    return "\n".join(lines)


def add_targets(result: dict[str, Any]) -> None:
    result["targets"] = [outcome.as_dict() for outcome in evaluate(result)]


def write_json(result: dict[str, Any], directory: Path = RESULTS_DIR) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    path = directory / f"{stamp}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path
