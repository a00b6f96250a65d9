"""Ingest: Segment-spec messages in; events and profiles stored; relevant events to the outbox."""

from .admission import API_ENTRY_EVENT, Admission, admit
from .entry import workflow_id_for
from .routing import TriggerIndex
from .segment import Batch, Identify, IncomingEvent, Track, normalise
from .store import IngestResult, ingest

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
