"""Connecting to Temporal with the converter every Journeyman process must share.

Every client also gets what this process observes with: the Temporal runtime's own log lines
go through Python logging (so they take the process's log format and masking, rather than
being printed by the runtime), and when tracing is installed
(``observability.tracing``) the client carries Temporal's tracing interceptor, which the
workers built on it inherit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from functools import cache

from temporalio.client import Client, Interceptor
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import (
    LogForwardingConfig,
    LoggingConfig,
    PrometheusConfig,
    Runtime,
    TelemetryConfig,
    TelemetryFilter,
)

from .observability import tracing
from .observability.worker_metrics import BUCKETS

# The runtime's warnings (a poll failing while the server restarts) and errors; the rest is
# noise for an operator.
_CORE_LOGS = LoggingConfig(
    filter=TelemetryFilter(core_level="WARN", other_level="ERROR"),
    forwarding=LogForwardingConfig(logger=logging.getLogger("temporalio.runtime")),
)


def metrics_runtime(port: int, *, host: str = "0.0.0.0") -> Runtime:
    """A Temporal runtime serving the SDK's own metrics (task latencies, polls, activity and
    workflow failures) and the worker's (``observability.worker_metrics``) in Prometheus
    format on ``host:port``."""
    return Runtime(
        telemetry=TelemetryConfig(
            logging=_CORE_LOGS,
            metrics=PrometheusConfig(
                bind_address=f"{host}:{port}",
                histogram_bucket_overrides={k: list(v) for k, v in BUCKETS.items()},
            ),
        )
    )


@cache
def _logging_runtime() -> Runtime:
    """The runtime of clients given none: no metrics, logs forwarded. One per process, as
    each runtime has its own threads."""
    return Runtime(telemetry=TelemetryConfig(logging=_CORE_LOGS))


async def connect_temporal(
    address: str, *, namespace: str = "default", runtime: Runtime | None = None
) -> Client:
    """A client whose payloads are pydantic models (plans, events, activity inputs), traced
    when this process has tracing installed."""
    traced = tracing.installed()
    interceptors: Sequence[Interceptor] = [traced.interceptor] if traced is not None else []
    return await Client.connect(
        address,
        namespace=namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime if runtime is not None else _logging_runtime(),
        interceptors=interceptors,
    )
