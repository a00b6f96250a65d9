"""What a deploy changes: steps and stages added, removed or changed between two plans.

Steps are compared by id. A step that holds others (branch, split, experiment, wait_for)
counts as changed when its own settings change, not when a step nested in it does: that
step is reported on its own.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from journeyman.workflows.plan import Plan, Step, walk

# Keys holding nested step lists, replaced by the nested ids before comparing.
_NESTED = ("on_event", "on_timeout", "cases", "otherwise", "paths", "variants")


@dataclass
class PlanDiff:
    journey_id: str
    from_version: str | None
    to_version: str
    steps_added: list[str] = field(default_factory=list)
    steps_removed: list[str] = field(default_factory=list)
    steps_changed: list[str] = field(default_factory=list)
    stages_added: list[str] = field(default_factory=list)
    stages_removed: list[str] = field(default_factory=list)
    stages_changed: list[str] = field(default_factory=list)
    settings_changed: list[str] = field(default_factory=list)  # entry, goal, exit, delivery

    @property
    def unchanged(self) -> bool:
        return not any(
            (
                self.steps_added,
                self.steps_removed,
                self.steps_changed,
                self.stages_added,
                self.stages_removed,
                self.stages_changed,
                self.settings_changed,
            )
        )

    def affected_steps(self) -> list[str]:
        """Steps of the old version whose customers the deploy concerns."""
        return sorted({*self.steps_removed, *self.steps_changed})


def _shape(step: Step) -> dict[str, Any]:
    """A step's own settings, with nested steps reduced to their ids and order."""
    data = step.model_dump(mode="json")
    for key in _NESTED:
        if key in data:
            data[key] = _ids_only(data[key])
    return data


def _ids_only(value: Any) -> Any:
    if isinstance(value, list):
        return [_ids_only(item) for item in value]
    if isinstance(value, dict):
        if "kind" in value and "id" in value:
            return value["id"]
        return {key: _ids_only(item) for key, item in value.items()}
    return value


def _steps(plan: Plan) -> dict[str, tuple[str, int, dict[str, Any]]]:
    """Step id -> (stage, position in the stage's walk, settings)."""
    found: dict[str, tuple[str, int, dict[str, Any]]] = {}
    for stage in plan.stages:
        for position, step in enumerate(walk(stage.steps)):
            found[step.id] = (stage.name, position, _shape(step))
    return found


def _stage_shape(plan: Plan) -> dict[str, dict[str, Any]]:
    shapes: dict[str, dict[str, Any]] = {}
    for stage in plan.stages:
        data = stage.model_dump(mode="json", exclude={"steps"})
        data["steps"] = [step.id for step in stage.steps]
        shapes[stage.name] = data
    return shapes


def diff_plans(old: Plan | None, new: Plan) -> PlanDiff:
    """Compare the deployed plan (None: nothing deployed yet) with a new one."""
    result = PlanDiff(new.journey_id, old.version if old else None, new.version)
    new_steps = _steps(new)
    if old is None:
        result.steps_added = list(new_steps)
        result.stages_added = [stage.name for stage in new.stages]
        return result
    old_steps = _steps(old)
    result.steps_added = [s for s in new_steps if s not in old_steps]
    result.steps_removed = [s for s in old_steps if s not in new_steps]
    result.steps_changed = [
        s for s in old_steps if s in new_steps and old_steps[s][2] != new_steps[s][2]
    ]
    old_stages, new_stages = _stage_shape(old), _stage_shape(new)
    result.stages_added = [s for s in new_stages if s not in old_stages]
    result.stages_removed = [s for s in old_stages if s not in new_stages]
    result.stages_changed = [
        s for s in old_stages if s in new_stages and old_stages[s] != new_stages[s]
    ]
    for key in ("name", "entry", "goal", "exits", "delivery"):
        if getattr(old, key) != getattr(new, key):
            result.settings_changed.append(key)
    return result
