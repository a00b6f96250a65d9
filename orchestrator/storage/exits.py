"""Why customers leave a stage without converting: counters per stage, outcome and reason.

Every transition that leaves a stage moved on, exited or migrated is counted into
``stage_exit_kpis`` (migration 0012) in the transaction that records it (``runs.py``), with
held-out and treated customers apart, so a report reads a few rows. For one stage and outcome
the counts add up to that column of ``stage_kpis``: the funnel's ``moved_on``, ``exited`` and
``migrated`` split by reason.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, get_args

import asyncpg

from journeyman.workflows.inputs import ExitReason

EXIT_REASONS: Final[tuple[str, ...]] = get_args(ExitReason)
# The transitions that leave a stage without converting.
LEAVING: Final = ("moved_on", "exited", "migrated")
# The funnel's row for held-out customers: their exits, whatever the reason.
HOLDOUT: Final = "holdout"
MAX_DETAIL: Final = 200
# Erasure records its exits itself, under run keys ``<workflow id>@erased/<uuid>``.
_ERASURE_KEY: Final = "@erased/"


def leave_reason(*, outcome: str, reason: str | None, run_key: str) -> str | None:
    """The reason to record for a transition: None unless it leaves without converting.

    A migration is always ``migration``; a leave recorded without a reason is ``unknown``,
    unless its run key says erasure recorded it (erasure passes its reason; the key is how
    rows recorded before reasons existed are still told apart).
    """
    if outcome not in LEAVING:
        return None
    if outcome == "migrated":
        return "migration"
    if reason is not None:
        if reason not in EXIT_REASONS:
            raise ValueError(f"unknown exit reason {reason!r}; expected one of {EXIT_REASONS}")
        return reason
    return "erasure" if _ERASURE_KEY in run_key else "unknown"


async def count_exit(
    conn: asyncpg.Connection,
    *,
    journey_id: str,
    version: str,
    stage: str,
    outcome: str,
    reason: str,
    detail: str | None,
    holdout: bool,
) -> None:
    """Add one leave to its counter; the caller holds the transaction of the transition."""
    await conn.execute(
        "INSERT INTO stage_exit_kpis"
        " (journey_id, version, stage, outcome, reason, detail, holdout, customers)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, 1)"
        " ON CONFLICT (journey_id, version, stage, outcome, reason, detail, holdout)"
        " DO UPDATE SET customers = stage_exit_kpis.customers + 1",
        journey_id,
        version,
        stage,
        outcome,
        reason,
        (detail or "")[:MAX_DETAIL],
        holdout,
    )


@dataclass(frozen=True)
class StageExit:
    """Leaves of one stage with one outcome, reason and detail."""

    stage: str
    outcome: str  # moved_on, exited or migrated
    reason: str
    detail: str | None  # an exit step's text, the exit event, the goto step
    treated: int
    holdout: int  # held-out customers (entry.holdout), who get no messages
    total: int


def _reason_order(reason: str) -> int:
    return EXIT_REASONS.index(reason) if reason in EXIT_REASONS else len(EXIT_REASONS)


async def exits(
    conn: asyncpg.Connection | asyncpg.Pool,
    *,
    journey_id: str,
    stages: list[str],
    version: str | None = None,
) -> list[StageExit]:
    """One row per stage, outcome, reason and detail that has any leave: stages in the order
    given (then stages only older versions had), reasons in ``EXIT_REASONS`` order. All
    versions summed unless one is named."""
    rows = await conn.fetch(
        "SELECT stage, outcome, reason, detail,"
        " sum(customers) FILTER (WHERE NOT holdout) AS treated,"
        " sum(customers) FILTER (WHERE holdout) AS holdout"
        " FROM stage_exit_kpis"
        " WHERE journey_id = $1 AND ($2::text IS NULL OR version = $2)"
        " GROUP BY stage, outcome, reason, detail",
        journey_id,
        version,
    )
    order = {stage: index for index, stage in enumerate(stages)}
    found = [
        StageExit(
            stage=r["stage"],
            outcome=r["outcome"],
            reason=r["reason"],
            detail=r["detail"] or None,
            treated=int(r["treated"] or 0),
            holdout=int(r["holdout"] or 0),
            total=int(r["treated"] or 0) + int(r["holdout"] or 0),
        )
        for r in rows
    ]
    found.sort(
        key=lambda e: (
            order.get(e.stage, len(order)),
            e.stage,
            LEAVING.index(e.outcome) if e.outcome in LEAVING else len(LEAVING),
            _reason_order(e.reason),
            e.reason,
            e.detail or "",
        )
    )
    return [e for e in found if e.total]


async def exits_by_reason(
    conn: asyncpg.Connection | asyncpg.Pool, *, journey_id: str, version: str | None = None
) -> dict[str, dict[str, int]]:
    """Stage -> reason -> leaves of treated customers, plus ``holdout`` for held-out ones
    (every reason together); only counts above zero, reasons in ``EXIT_REASONS`` order."""
    rows = await conn.fetch(
        "SELECT stage, CASE WHEN holdout THEN $3 ELSE reason END AS reason,"
        " sum(customers) AS customers FROM stage_exit_kpis"
        " WHERE journey_id = $1 AND ($2::text IS NULL OR version = $2)"
        " GROUP BY 1, 2 HAVING sum(customers) > 0",
        journey_id,
        version,
        HOLDOUT,
    )
    result: dict[str, dict[str, int]] = {}
    for r in sorted(rows, key=lambda r: (_reason_order(r["reason"]), r["reason"])):
        result.setdefault(r["stage"], {})[r["reason"]] = int(r["customers"])
    return result
