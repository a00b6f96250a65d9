"""Observability: Prometheus metrics of the API and the workers, logs, and tracing.

- ``metrics``: the API process's ``/metrics`` and the database gauges read per scrape.
- ``worker_metrics``: sends, provider latency, transitions and the dispatcher's counters,
  on the worker's Temporal runtime (its Prometheus port).
- ``logs``: the text or JSON log format, ids bound with ``log_context``, masking of
  personal data and secrets; ``activity_logs`` binds the ids in every activity.
- ``tracing``: OpenTelemetry spans of the Temporal calls, when a collector is configured.
"""

from .activity_logs import ActivityLogContext
from .logs import configure_logging, log_context, mask_secrets
from .metrics import (
    MIXED_TYPES,
    DatabaseSnapshot,
    ProcessMetrics,
    read_database,
    render,
    type_label,
)
from .tracing import Tracing, tracing_for
from .worker_metrics import DispatcherMetrics

__all__ = [
    "MIXED_TYPES",
    "ActivityLogContext",
    "DatabaseSnapshot",
    "DispatcherMetrics",
    "ProcessMetrics",
    "Tracing",
    "configure_logging",
    "log_context",
    "mask_secrets",
    "read_database",
    "render",
    "tracing_for",
    "type_label",
]
