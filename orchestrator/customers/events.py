"""Events the engine itself records about customers, stored and routed like tracked ones.

Journeys react to them with the same entry, exit, goal and wait_for rules as to any event,
so entering a segment or becoming inactive triggers journeys at once, with no polling.
"""

from __future__ import annotations

from typing import Final

from journeyman.workflows.inputs import RUN_ENDED_EVENT

# A customer started or stopped matching a segment or persona; property `segment` is its id.
SEGMENT_ENTERED: Final = "Segment Entered"
SEGMENT_EXITED: Final = "Segment Exited"
SEGMENT_PROPERTY: Final = "segment"

# The recency class changed (property `from` and `to`), by an event or by the scheduled sweep.
BECAME_ACTIVE: Final = "Became Active"
BECAME_INACTIVE: Final = "Became Inactive"
BECAME_LOST: Final = "Became Lost"

# Ends the run it is routed to, counted as an exit (property `reason`); see identity.py.
RUN_ENDED: Final = RUN_ENDED_EVENT

# The `context.source` of every engine-made event, so reports can tell them from tracked ones.
ENGINE_SOURCE: Final = "journeyman"

SYSTEM_EVENTS: Final = frozenset(
    {SEGMENT_ENTERED, SEGMENT_EXITED, BECAME_ACTIVE, BECAME_INACTIVE, BECAME_LOST, RUN_ENDED}
)
