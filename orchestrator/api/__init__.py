"""The HTTP API: Segment-spec ingest under ``/v1``, administration under ``/api``, health."""

from .app import create_app
from .services import Services

__all__ = ["Services", "create_app"]
