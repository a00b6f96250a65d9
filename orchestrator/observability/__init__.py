"""Observability: Prometheus metrics of the API process and of the database it serves."""

from .metrics import (
    MIXED_TYPES,
    DatabaseSnapshot,
    ProcessMetrics,
    read_database,
    render,
    type_label,
)

__all__ = [
    "MIXED_TYPES",
    "DatabaseSnapshot",
    "ProcessMetrics",
    "read_database",
    "render",
    "type_label",
]
