"""Ingest: Segment-spec messages in; events and profiles stored; relevant events to the outbox."""

from .routing import TriggerIndex
from .segment import Batch, Identify, IncomingEvent, Track, normalise
from .store import IngestResult, ingest, workflow_id_for

__all__ = [
    "Batch",
    "Identify",
    "IncomingEvent",
    "IngestResult",
    "Track",
    "TriggerIndex",
    "ingest",
    "normalise",
    "workflow_id_for",
]
