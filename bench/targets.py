"""The targets each figure is held to, and PASS / FAIL / NOT MEASURED for one run.

A target never fails the run: the report shows it next to the figure and its ceiling. Scale
targets are judged at the largest size measured; the worker's memory target is stated at
100,000 parked customers, so a run that parked fewer says NOT MEASURED and shows the largest
size it reached instead. (No extrapolation: the worker caches a bounded number of runs, so its
memory stops growing with the customers parked; a straight line through small sizes would
say many times what it really takes.)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Literal

PASS, FAIL, NOT_MEASURED = "PASS", "FAIL", "NOT MEASURED"
WORKER_TARGET_SIZE = 100_000


@dataclass(frozen=True)
class Target:
    name: str
    comparison: Literal["at least", "below"]
    threshold: float
    unit: str  # "events/s", "ms", "%", "MiB"

    def verdict(self, value: float | None) -> str:
        if value is None:
            return NOT_MEASURED
        if self.comparison == "at least":
            return PASS if value >= self.threshold else FAIL
        return PASS if value < self.threshold else FAIL

    @property
    def wanted(self) -> str:
        sign = "≥" if self.comparison == "at least" else "<"
        return f"{sign} {fmt(self.threshold, self.unit)}"


@dataclass(frozen=True)
class Outcome:
    target: Target
    measured: float | None
    verdict: str
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "target": self.target.name,
            "wanted": self.target.wanted,
            "measured": self.measured,
            "shown": "—" if self.measured is None else fmt(self.measured, self.target.unit),
            "verdict": self.verdict,
            "note": self.note,
            "definition": asdict(self.target),
        }


def fmt(value: float, unit: str) -> str:
    if unit == "%":
        return f"{value:.0f} %"
    if unit == "ms":
        return f"{value:,.1f} ms"
    return f"{value:,.0f} {unit}"


INGEST_RATE = Target("ingest, events/s", "at least", 25_000, "events/s")
INGEST_SHARE = Target("ingest / batched-upsert ceiling", "at least", 50, "%")
REACTION_P50 = Target("reaction, 2xx to message at the provider, p50", "below", 100, "ms")
REACTION_P99 = Target("reaction, 2xx to message at the provider, p99", "below", 500, "ms")
ENGINE_SHARE = Target("engine / bare Temporal, journeys/s", "at least", 80, "%")
WORKER_RSS = Target(
    f"worker RSS with {WORKER_TARGET_SIZE:,} customers parked", "below", 1024, "MiB"
)
PARKED_FUNNEL = Target("funnel p99, customers parked (largest size)", "below", 50, "ms")
PARKED_LOOKUP = Target("look-up p99, customers parked (largest size)", "below", 50, "ms")
PG_FUNNEL = Target("funnel p99, customers in Postgres (largest size)", "below", 50, "ms")
PG_LOOKUP = Target("look-up p99, customers in Postgres (largest size)", "below", 50, "ms")


def judge(target: Target, value: float | None, note: str = "") -> Outcome:
    return Outcome(target, value, target.verdict(value), note)


def evaluate(result: dict[str, Any]) -> list[Outcome]:
    """Every target against the figures in ``result`` (a run's JSON), in report order."""
    ingest, ceilings = result.get("ingest"), result.get("ceilings")
    reaction, bare, engine = result.get("reaction"), result.get("bare"), result.get("engine")
    out = [judge(INGEST_RATE, ingest["events_per_s"] if ingest else None)]
    share = None
    if ingest and ceilings:
        share = 100 * ingest["events_per_s"] / ceilings["upsert"]["events_per_s"]
    out.append(judge(INGEST_SHARE, share))
    late = ""
    if reaction and reaction["missing"]:
        late = (
            f"{reaction['missing']} of {reaction['customers']:,} messages had not arrived when"
            " the bench stopped waiting: counted as arriving then (a lower bound)"
        )
    out.append(judge(REACTION_P50, reaction["reaction"]["p50_ms"] if reaction else None, late))
    out.append(judge(REACTION_P99, reaction["reaction"]["p99_ms"] if reaction else None, late))
    ratio = None
    if bare and engine:
        ratio = 100 * engine["journeys_per_s"] / bare["journeys_per_s"]
    out.append(judge(ENGINE_SHARE, ratio))
    out += _worker_scale(result.get("scale"))
    out += _postgres_scale(result.get("pg"))
    return out


def _worker_scale(scale: dict[str, Any] | None) -> list[Outcome]:
    points = scale["points"] if scale else []
    if not points:
        return [judge(WORKER_RSS, None), judge(PARKED_FUNNEL, None), judge(PARKED_LOOKUP, None)]
    largest = points[-1]
    reached = [p for p in points if p["parked"] >= WORKER_TARGET_SIZE]
    if reached:
        rss = judge(WORKER_RSS, reached[0]["worker_rss_mib"], f"at {reached[0]['parked']:,}")
    else:
        how = f"run with --scale-sizes up to {WORKER_TARGET_SIZE:,} to measure"
        if largest.get("stopped"):
            how = f"parking stopped at {largest['parked']:,}: {largest['stopped']}"
        note = f"largest size {largest['parked']:,}: {largest['worker_rss_mib']:,.0f} MiB; {how}"
        rss = judge(WORKER_RSS, None, note)
    at = f"at {largest['parked']:,} parked"
    return [
        rss,
        judge(PARKED_FUNNEL, largest["funnel"]["p99_ms"], at),
        judge(PARKED_LOOKUP, largest["lookup"]["p99_ms"], at),
    ]


def _postgres_scale(pg: dict[str, Any] | None) -> list[Outcome]:
    points = pg["points"] if pg else []
    if not points:
        return [judge(PG_FUNNEL, None), judge(PG_LOOKUP, None)]
    largest = points[-1]
    at = f"at {largest['customers']:,} customers, {largest['events']:,} events"
    return [
        judge(PG_FUNNEL, largest["funnel"]["p99_ms"], at),
        judge(PG_LOOKUP, largest["lookup"]["p99_ms"], at),
    ]
