"""Connecting to Temporal with the converter every Journeyman process must share."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig


def metrics_runtime(port: int, *, host: str = "0.0.0.0") -> Runtime:
    """A Temporal runtime serving the SDK's own metrics (task latencies, polls, activity and
    workflow failures) in Prometheus format on ``host:port``."""
    return Runtime(
        telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=f"{host}:{port}"))
    )


async def connect_temporal(
    address: str, *, namespace: str = "default", runtime: Runtime | None = None
) -> Client:
    """A client whose payloads are pydantic models (plans, events, activity inputs)."""
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter, runtime=runtime
    )
