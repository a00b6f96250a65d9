"""Ingest: Segment-spec messages in; events and profiles stored; relevant events to the outbox."""

from .entry import workflow_id_for
from .routing import TriggerIndex
from .segment import Batch, Identify, IncomingEvent, Track, normalise
from .store import API_ENTRY_EVENT, Admission, IngestResult, admit, ingest

__all__ = [
    "API_ENTRY_EVENT",
    "Admission",
    "Batch",
    "Identify",
    "IncomingEvent",
    "IngestResult",
    "Track",
    "TriggerIndex",
    "admit",
    "ingest",
    "normalise",
    "workflow_id_for",
]
