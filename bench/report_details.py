"""The report's details: CPU per process and phase, per-hop latencies, growth tables."""

from __future__ import annotations

from typing import Any

# (label, key in the result, how to find the phase's CPU seconds and wall time)
_CPU_PHASES: list[tuple[str, str, str | None]] = [
    ("ingest", "ingest", None),
    ("ceiling: COPY per batch", "ceilings", "copy"),
    ("ceiling: batched upsert", "ceilings", "upsert"),
    ("ceiling: bulk COPY", "ceilings", "bulk_copy"),
    ("bare Temporal", "bare", None),
    ("engine journeys", "engine", None),
    ("reaction (release window)", "reaction", None),
    ("scale: parked customers", "scale", None),
    ("scale: Postgres", "pg", None),
]


def _phases(result: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    found = []
    for label, key, part in _CPU_PHASES:
        phase = result.get(key)
        if phase and part is not None:
            phase = phase.get(part)
        if phase and phase.get("cpu_seconds") and phase.get("seconds"):
            found.append((label, phase))
    return found


def cpu_table(result: dict[str, Any]) -> list[str]:
    phases = _phases(result)
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
        cpu = phase["cpu_seconds"]
        cells = [f"{cpu.get(p, 0.0):.1f} ({cpu.get(p, 0.0) / wall:.0%})" for p in parts]
        lines.append(f"| {name} | {wall:.1f} | " + " | ".join(cells) + " |")
    return lines


def hop_tables(result: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    engine = result.get("engine")
    if engine and engine["timeline"]["hops"]:
        lines += ["", "Engine, per customer (p50 / p99):", "", "| hop | p50 | p99 |"]
        lines.append("| --- | --- | --- |")
        for hop, q in engine["timeline"]["hops"].items():
            lines.append(f"| {hop} | {q['p50_ms']:,.1f} ms | {q['p99_ms']:,.1f} ms |")
        lines += ["", "Engine, last customer past each point (s after the first entry post):", ""]
        lines += [f"- {k}: {v:.2f} s" for k, v in engine["timeline"]["milestones_s"].items()]
    reaction = result.get("reaction")
    if reaction and reaction["hops"]:
        lines += ["", "Reaction, per customer, from the engine's own timestamps (p50 / p99):", ""]
        lines += ["| hop | p50 | p99 |", "| --- | --- | --- |"]
        for hop, q in reaction["hops"].items():
            lines.append(f"| {hop} | {q['p50_ms']:,.1f} ms | {q['p99_ms']:,.1f} ms |")
    return lines


def _pair(summary: dict[str, float]) -> str:
    return f"{summary['p50_ms']:,.1f} / {summary['p99_ms']:,.1f}"


def _parked(point: dict[str, Any]) -> str:
    """The size measured; ``12,345 of 100,000`` when parking stopped short of the size."""
    size = point.get("size", point["parked"])
    if point["parked"] < size:
        return f"{point['parked']:,} of {size:,}"
    return f"{point['parked']:,}"


def _minutes(seconds: float | None) -> str:
    return "—" if seconds is None else f"{seconds / 60:,.1f} min"


def growth_tables(result: dict[str, Any]) -> list[str]:
    """Each scale figure by size, so the curve shows."""
    lines: list[str] = []
    scale = result.get("scale")
    if scale and scale["points"]:
        lines += [
            "",
            "Growth with customers parked in a `wait_for` (worker in its own process;"
            f" {scale['calls']} calls each, ms p50 / p99):",
            "",
            "| parked | parked/s (this step) | parking, all sizes | worker RSS (peak) MiB"
            " | Temporal server RSS MiB | funnel | look-up | look-ups answered by the run |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for p in scale["points"]:
            lines.append(
                f"| {_parked(p)} | {p['parked_per_s']:,.1f}"
                f" | {_minutes(p.get('park_total_seconds'))}"
                f" | {p['worker_rss_mib']:,.0f} ({p['worker_peak_rss_mib']:,.0f})"
                f" | {p['temporal_server_rss_mib']:,.0f} | {_pair(p['funnel'])}"
                f" | {_pair(p['lookup'])} | {p['lookup_positions_from_temporal']} of"
                f" {scale['calls']} |"
            )
        stopped = [p for p in scale["points"] if p.get("stopped")]
        if stopped:
            last = stopped[-1]
            lines += [
                "",
                f"Parking stopped at {last['parked']:,} of {last['size']:,} customers:"
                f" {last['stopped']}; the figures of that row are taken there.",
            ]
    pg = result.get("pg")
    if pg and pg["points"]:
        lines += [
            "",
            f"Growth with generated customers in Postgres ({pg['events_per_customer']} events"
            f" each; {pg['calls']} calls each, ms p50 / p99):",
            "",
            "| customers | events | database MiB | load rows/s | funnel | look-up |",
            "| --- | --- | --- | --- | --- | --- |",
        ]
        for p in pg["points"]:
            lines.append(
                f"| {p['customers']:,} | {p['events']:,} | {p['database_mib']:,.0f}"
                f" | {p['rows_per_s']:,.0f} | {_pair(p['funnel'])} | {_pair(p['lookup'])} |"
            )
    return lines
