"""From a validated journey to a versioned ``Plan``: entry, goal, exits, delivery and stages,
with defaults filled in, identified by a content hash (``plan_hash``).

The steps of each stage are built by ``step_builder.py``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from journeyman.workflows.plan import (
    Delivery,
    Entry,
    EntryCap,
    FrequencyCap,
    Goal,
    ObservedTouchpoint,
    Plan,
    QuietHours,
    Schedule,
    StagePlan,
)

from .locations import Loc
from .spec import DefaultsSpec, JourneySpec, StageSpec
from .step_builder import StepBuilder, entry_match, kpi_of, match_of

# A stage with a goal must not hold customers forever when no default is set.
DEFAULT_MAX_DWELL_SECONDS = 30 * 86400


def plan_hash(plan: Plan | Mapping[str, Any]) -> str:
    """The version of a plan: sha256 of its canonical JSON without ``version``, 16 hex chars.

    Fields at their default value are left out, so adding a field (with a default) to the
    plan model never changes the version of a journey that does not use it.
    """
    if not isinstance(plan, Plan):
        plan = Plan.model_validate({**plan, "version": ""})
    data = canonical_form(plan)
    del data["version"]
    canonical = json.dumps(data, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()[:16]


def canonical_form(value: Any) -> Any:
    """JSON-ready data of a plan with fields at their default left out, except ``kind``
    (which tells step types apart, so two different steps never look the same)."""
    if isinstance(value, BaseModel):
        data: dict[str, Any] = {}
        for name, info in type(value).model_fields.items():
            item = getattr(value, name)
            default = info.get_default(call_default_factory=True)
            if name != "kind" and name != "version" and item == default:
                continue
            data[name] = canonical_form(item)
        return data
    if isinstance(value, list | tuple):
        return [canonical_form(item) for item in value]
    if isinstance(value, dict):
        return {key: canonical_form(item) for key, item in value.items()}
    if isinstance(value, datetime):
        return value.isoformat()
    return value


def assemble_plan(spec: JourneySpec) -> tuple[Plan, dict[str, Loc]]:
    """The versioned plan of a validated journey, not yet checked, and where in the journey
    each of its steps came from (for the checks to place their problems)."""
    defaults = spec.defaults or DefaultsSpec()
    steps = StepBuilder(spec)
    entry = spec.entry
    plan = Plan(
        journey_id=spec.id,
        name=spec.name,
        version="",
        entry=Entry(
            match=entry_match(entry.event, entry.where, entry.segment),
            api=entry.api,
            schedule=(
                Schedule(**entry.schedule.model_dump()) if entry.schedule is not None else None
            ),
            reentry=entry.reentry,
            cap=EntryCap(**entry.cap.model_dump()) if entry.cap else EntryCap(),
            holdout_percent=entry.holdout,
        ),
        goal=(
            Goal(match=match_of(spec.goal), within_seconds=spec.goal.within)
            if spec.goal is not None
            else None
        ),
        exits=[match_of(e) for e in spec.exit],
        delivery=Delivery(
            timezone=spec.timezone,
            quiet_hours=(QuietHours(**spec.quiet_hours.model_dump()) if spec.quiet_hours else None),
            frequency_caps=[
                FrequencyCap(channel=c.channel, limit=c.limit, window_seconds=c.per)
                for c in spec.frequency_caps
            ],
            throttle_per_minute=spec.throttle,
            priority=spec.priority,
        ),
        stages=[_stage(stage, index, defaults, steps) for index, stage in enumerate(spec.stages)],
    )
    plan = plan.model_copy(update={"version": plan_hash(plan)})
    return plan, steps.locations


def _stage(spec: StageSpec, index: int, defaults: DefaultsSpec, steps: StepBuilder) -> StagePlan:
    max_dwell = spec.max_dwell if spec.max_dwell is not None else defaults.max_dwell
    if max_dwell is None and spec.goal is not None:
        max_dwell = DEFAULT_MAX_DWELL_SECONDS
    return StagePlan(
        name=spec.name,
        goal=match_of(spec.goal) if spec.goal is not None else None,
        steps=steps.build(spec.touchpoints, spec.name, ("stages", index, "touchpoints")),
        max_dwell_seconds=max_dwell,
        on_max_dwell=spec.on_max_dwell or defaults.on_max_dwell or "exit",
        observed=[
            ObservedTouchpoint(id=seen.id, goal=seen.goal, kpi=kpi_of(seen.kpi))
            for seen in spec.observe
        ],
    )
