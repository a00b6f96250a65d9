"""A segment or persona as deployed: a named condition over the customer's data.

Files beside the journeys compile into these; ingest and the sweep evaluate them to keep
membership live. Frozen, so one deployed version never changes under its readers.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

SegmentKind = Literal["segment", "persona"]


class SegmentDefinition(BaseModel):
    """One deployed segment: ``condition`` is text in the condition language."""

    model_config = ConfigDict(frozen=True)

    segment_id: str
    version: str  # content hash of the definition
    name: str
    kind: SegmentKind = "segment"
    description: str = ""
    condition: str
