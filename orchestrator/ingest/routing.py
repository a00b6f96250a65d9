"""The in-memory trigger index: which journeys an event concerns (invariant: only relevant
events touch Temporal). Rebuilt from Postgres on start-up and on every deploy notification."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace

from journeyman.orchestrator.customers.definitions import SegmentDefinition
from journeyman.orchestrator.customers.membership import SegmentIndex
from journeyman.workflows.plan import Plan


@dataclass
class TriggerIndex:
    """Maps event names to the journeys that enter on them or react to them, and holds the
    deployed segments whose membership ingest keeps live."""

    active: dict[str, Plan] = field(default_factory=dict)  # journey id -> active plan
    segments: SegmentIndex = field(default_factory=SegmentIndex)
    # event name -> journeys that react to it in any deployed version (runs stay pinned to theirs)
    _concerned: dict[str, set[str]] = field(default_factory=dict)
    # the same, sorted once: ingest asks for every event it stores
    _sorted: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        active: Iterable[Plan],
        others: Iterable[Plan] = (),
        segments: Iterable[SegmentDefinition] = (),
    ) -> TriggerIndex:
        index = cls(segments=SegmentIndex.build(segments))
        for plan in active:
            index.active[plan.journey_id] = plan
            index._add(plan)
        for plan in others:
            index._add(plan)
        index._sorted = {name: tuple(sorted(ids)) for name, ids in index._concerned.items()}
        return index

    def _add(self, plan: Plan) -> None:
        for name in plan.event_names():
            self._concerned.setdefault(name, set()).add(plan.journey_id)

    def with_segments(self, segments: SegmentIndex) -> TriggerIndex:
        """The same journeys, evaluating other segments (the sweep picks its own)."""
        return replace(self, segments=segments)

    def journeys_for(self, event: str) -> list[str]:
        """Journey ids, sorted, for which an event with this name may matter."""
        return list(self.concerned(event))

    def concerned(self, event: str) -> tuple[str, ...]:
        """``journeys_for``, without a copy: empty for most events."""
        return self._sorted.get(event, ())

    def __len__(self) -> int:
        return len(self.active)
