"""The embedded stack: Postgres and the Temporal dev server as child processes of one command."""

from journeyman.orchestrator.embedded._process import EmbeddedServerError
from journeyman.orchestrator.embedded.postgres import EmbeddedPostgres
from journeyman.orchestrator.embedded.temporal import (
    SearchAttributeError,
    TemporalDevServer,
    ensure_search_attributes,
)

__all__ = [
    "EmbeddedPostgres",
    "EmbeddedServerError",
    "SearchAttributeError",
    "TemporalDevServer",
    "ensure_search_attributes",
]
