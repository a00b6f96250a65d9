"""Satisfaction answers counted per journey stage and touchpoint as they arrive: the emotion curve.

The convention (docs/emotions.md): a tracked event carries an answer in a property named after
its measure.

=========  =======  ==================================================================
measure    range    where it is read
=========  =======  ==================================================================
``csat``   1 to 5   property ``csat`` of any tracked event
``nps``    0 to 10  property ``nps`` of any tracked event; whole numbers only
``score``  1 to 10  the survey event's score property (``Survey Answered`` / ``score``
                    unless ``customers.yaml`` names others under ``satisfaction``)
=========  =======  ==================================================================

A value is a number or numeric text; ``null`` is no answer. Anything else, or a number out of
its range, is rejected: counted as rejected where the answer would have gone, never averaged,
and never an error (ingest must not fail on a survey tool's odd payload).

``SatisfactionTally`` runs inside the ingest transaction. For an event with an answer it reads
the customer's active runs (not held out) with the stage each is in and the last message each
had sent before the answer (``deliveries``, a message belongs to the run whose workflow id
its send key starts with); events without one cost a dictionary lookup. The counters are
written once, at the end of the transaction, in key order, so concurrent ingest transactions
take the counter rows' locks in the same order and cannot deadlock on them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, Literal

import asyncpg

from .kpis import TOUCHED

Measure = Literal["csat", "nps", "score"]
MEASURES: Final[tuple[Measure, ...]] = ("csat", "nps", "score")
# Each measure's range, both ends included.
RANGES: Final[dict[Measure, tuple[int, int]]] = {"csat": (1, 5), "nps": (0, 10), "score": (1, 10)}
# Longer numeric text is no answer anyone typed.
_MAX_TEXT: Final = 32


@dataclass(frozen=True)
class Reading:
    """One measure of an answer: its value, or None when the value was rejected."""

    measure: Measure
    value: Decimal | None


def _number(value: Any) -> Decimal | None:
    if isinstance(value, bool):
        return None  # JSON true is not 1 here
    found: Decimal | None
    if isinstance(value, int):
        found = Decimal(value)
    elif isinstance(value, float):
        # Through its shortest text, so 4.7 is stored as 4.7, not its binary neighbour.
        found = Decimal(repr(value)) if math.isfinite(value) else None
    elif isinstance(value, str) and len(value) <= _MAX_TEXT:
        try:
            found = Decimal(value.strip())
        except InvalidOperation:
            return None
    else:
        return None
    return found if found is not None and found.is_finite() else None


def _valid(measure: Measure, value: Any) -> Decimal | None:
    number = _number(value)
    if number is None:
        return None
    low, high = RANGES[measure]
    if not low <= number <= high:
        return None
    if measure == "nps" and number != number.to_integral_value():
        return None  # promoters, passives and detractors are defined on whole points
    return number


def read_answers(
    *, event: str | None, properties: Mapping[str, Any], survey_event: str, score_property: str
) -> list[Reading]:
    """The answers a tracked event carries, by the convention above; [] for most events."""
    found: list[Reading] = []
    for measure in ("csat", "nps"):
        value = properties.get(measure)
        if value is not None:
            found.append(Reading(measure, _valid(measure, value)))
    # A score property configured as csat or nps was read as that measure just above.
    if event == survey_event and score_property not in ("csat", "nps"):
        value = properties.get(score_property)
        if value is not None:
            found.append(Reading("score", _valid("score", value)))
    return found


# The customer's active runs with their stage, and the last message each had sent (accepted by
# the provider, not bounced) at or before the answer. Runs by customer through
# journey_runs_active_customer (migration 0013), messages through deliveries_customer.
_ATTRIBUTION_SQL: Final = """
SELECT r.journey_id, r.version, r.stage, coalesce(last.step_id, '') AS step_id
FROM journey_runs r
LEFT JOIN LATERAL (
    SELECT d.step_id FROM deliveries d
    WHERE d.customer_id = r.customer_id AND d.journey_id = r.journey_id
      AND starts_with(d.send_key, r.workflow_id || '@')
      AND d.status = ANY($3::text[]) AND d.created_at <= $2
    ORDER BY d.created_at DESC, d.send_key DESC
    LIMIT 1
) last ON true
WHERE r.customer_id = $1 AND r.status = 'active' AND NOT r.holdout AND r.stage IS NOT NULL
"""

_BUMP_SQL: Final = """
INSERT INTO satisfaction_kpis AS k (journey_id, version, stage, step_id, measure, answers,
    score_sum, promoters, passives, detractors, rejected)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (journey_id, version, stage, step_id, measure) DO UPDATE SET
    answers = k.answers + excluded.answers,
    score_sum = k.score_sum + excluded.score_sum,
    promoters = k.promoters + excluded.promoters,
    passives = k.passives + excluded.passives,
    detractors = k.detractors + excluded.detractors,
    rejected = k.rejected + excluded.rejected
"""

# (journey_id, version, stage, step_id, measure)
Key = tuple[str, str, str, str, str]


@dataclass
class _Counts:
    answers: int = 0
    score_sum: Decimal = Decimal(0)
    promoters: int = 0
    passives: int = 0
    detractors: int = 0
    rejected: int = 0

    def add(self, reading: Reading) -> None:
        if reading.value is None:
            self.rejected += 1
            return
        self.answers += 1
        self.score_sum += reading.value
        if reading.measure == "nps":
            if reading.value >= 9:
                self.promoters += 1
            elif reading.value >= 7:
                self.passives += 1
            else:
                self.detractors += 1


@dataclass
class SatisfactionTally:
    """Satisfaction counters gathered through one ingest transaction, written by ``flush``."""

    counts: dict[Key, _Counts] = field(default_factory=dict)

    async def add(
        self,
        conn: asyncpg.Connection,
        *,
        customer_id: str,
        event: str | None,
        properties: Mapping[str, Any],
        occurred_at: datetime,
        survey_event: str,
        score_property: str,
    ) -> int:
        """Attribute the event's answers to the customer's active runs; the counts it adds."""
        readings = read_answers(
            event=event,
            properties=properties,
            survey_event=survey_event,
            score_property=score_property,
        )
        if not readings:
            return 0
        at = occurred_at if occurred_at.tzinfo is not None else occurred_at.replace(tzinfo=UTC)
        # A client clock running fast must not make a message sent after the answer its cause.
        at = min(at, datetime.now(UTC))
        runs = await conn.fetch(_ATTRIBUTION_SQL, customer_id, at, list(TOUCHED))
        for run in runs:
            for reading in readings:
                key = (run["journey_id"], run["version"], run["stage"], run["step_id"])
                self.counts.setdefault((*key, reading.measure), _Counts()).add(reading)
        return len(runs) * len(readings)

    async def flush(self, conn: asyncpg.Connection) -> None:
        """Write the gathered counts, in key order (see the module docstring), and forget them."""
        rows = [
            (*key, c.answers, c.score_sum, c.promoters, c.passives, c.detractors, c.rejected)
            for key, c in sorted(self.counts.items())
        ]
        if rows:
            await conn.executemany(_BUMP_SQL, rows)
        self.counts.clear()


# --- reading the curve ---------------------------------------------------------------------


def to_common_scale(measure: Measure, value: float) -> float:
    """A value of ``measure`` on the curve's common 0-10 scale: the range's low end is 0 and
    its high end 10 (CSAT 1-5 -> 0-10, NPS as it is, a 1-10 score -> 0-10)."""
    low, high = RANGES[measure]
    return (value - low) * 10 / (high - low)


@dataclass(frozen=True)
class EmotionPoint:
    """Satisfaction at one stage or touchpoint: answers and averages per measure."""

    stage: str | None  # a touchpoint's stage in the plan; None for a step only older versions had
    step_id: str | None  # None for a stage
    answers: int  # every measure of every answer counted here
    rejected: int
    average: float | None  # on the common 0-10 scale, over every measure: the curve
    csat_answers: int
    csat_average: float | None  # 1-5
    nps_answers: int
    nps_average: float | None  # 0-10
    nps: float | None  # % promoters - % detractors, from -100 to 100
    promoters: int
    passives: int
    detractors: int
    score_answers: int
    score_average: float | None  # 1-10


@dataclass(frozen=True)
class EmotionCurve:
    stages: list[EmotionPoint]
    touchpoints: list[EmotionPoint]


_CURVE_SQL: Final = """
SELECT stage, step_id, measure, sum(answers) AS answers, sum(score_sum) AS score_sum,
       sum(promoters) AS promoters, sum(passives) AS passives, sum(detractors) AS detractors,
       sum(rejected) AS rejected
FROM satisfaction_kpis
WHERE journey_id = $1 AND ($2::text IS NULL OR version = $2)
GROUP BY stage, step_id, measure
"""


def _point(stage: str | None, step_id: str | None, rows: list[asyncpg.Record]) -> EmotionPoint:
    per: dict[str, _Counts] = {m: _Counts() for m in MEASURES}
    for row in rows:
        counts = per[row["measure"]]
        counts.answers += int(row["answers"])
        counts.score_sum += Decimal(row["score_sum"])
        counts.promoters += int(row["promoters"])
        counts.passives += int(row["passives"])
        counts.detractors += int(row["detractors"])
        counts.rejected += int(row["rejected"])

    def mean(measure: Measure) -> float | None:
        c = per[measure]
        return float(c.score_sum) / c.answers if c.answers else None

    answers = sum(c.answers for c in per.values())
    # The scale is linear, so each measure's common-scale sum follows from its count and sum.
    common = sum(
        to_common_scale(m, float(per[m].score_sum) / per[m].answers) * per[m].answers
        for m in MEASURES
        if per[m].answers
    )
    nps = per["nps"]
    return EmotionPoint(
        stage=stage,
        step_id=step_id,
        answers=answers,
        rejected=sum(c.rejected for c in per.values()),
        average=common / answers if answers else None,
        csat_answers=per["csat"].answers,
        csat_average=mean("csat"),
        nps_answers=nps.answers,
        nps_average=mean("nps"),
        nps=(nps.promoters - nps.detractors) * 100 / nps.answers if nps.answers else None,
        promoters=nps.promoters,
        passives=nps.passives,
        detractors=nps.detractors,
        score_answers=per["score"].answers,
        score_average=mean("score"),
    )


async def emotion_curve(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    stages: list[str],
    steps: list[tuple[str, str]],
    version: str | None = None,
) -> EmotionCurve:
    """Per stage and per touchpoint: ``stages`` in plan order, then stages only the counters
    know (older versions) by name; ``steps`` (send step id, stage) likewise. All versions
    unless one is named. Answers given before any message count for their stage only."""
    rows = await conn.fetch(_CURVE_SQL, journey_id, version)
    by_stage: dict[str, list[asyncpg.Record]] = {}
    by_step: dict[str, list[asyncpg.Record]] = {}
    for row in rows:
        by_stage.setdefault(row["stage"], []).append(row)
        if row["step_id"]:
            by_step.setdefault(row["step_id"], []).append(row)
    stage_names = stages + sorted(set(by_stage) - set(stages))
    step_stage: dict[str, str | None] = dict(steps)
    step_ids = [s for s, _ in steps] + sorted(set(by_step) - set(step_stage))
    return EmotionCurve(
        stages=[_point(name, None, by_stage.get(name, [])) for name in stage_names],
        touchpoints=[
            _point(step_stage.get(step_id), step_id, by_step.get(step_id, []))
            for step_id in step_ids
        ],
    )
