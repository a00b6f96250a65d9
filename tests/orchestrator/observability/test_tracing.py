"""OpenTelemetry: with a collector configured, a customer's way from the dispatcher through
the journey workflow to each activity arrives at the collector as one trace."""

from __future__ import annotations

import pytest

from journeyman.orchestrator.api import Services
from journeyman.orchestrator.config import ConfigError, Settings
from journeyman.orchestrator.embedded import TemporalDevServer
from journeyman.orchestrator.observability import tracing, tracing_for
from journeyman.orchestrator.storage import create_pool
from journeyman.orchestrator.temporal_client import connect_temporal

from .collector import Collector
from .pipeline import running_pipeline


async def test_a_journey_run_arrives_at_the_collector_as_one_trace(
    database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    with Collector() as collector:
        settings = Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url})
        with tracing_for(settings, role="worker") as traced:
            assert traced is not None and tracing.installed() is traced
            async with running_pipeline(database_url, temporal_dev_server.address) as p:
                await p.sign_up("ana", first_name="Ana", email="ana@example.com")
                [workflow_id] = await p.finished(1)
        # Leaving sent what was still buffered, and uninstalled it.
        assert tracing.installed() is None
        spans = collector.spans()
        assert collector.refused == []

    by_name = {span.name: span for span in spans}
    # The dispatcher's signal-with-start is where the customer's trace begins.
    start = by_name["SignalWithStartWorkflow:JourneyWorkflow"]
    assert start.parent_span_id == ""
    assert start.attributes["temporalWorkflowID"] == workflow_id
    trace = [span for span in spans if span.trace_id == start.trace_id]
    names = {span.name for span in trace}
    assert {
        "RunWorkflow:JourneyWorkflow",
        "StartActivity:send_message",
        "RunActivity:send_message",
        "StartActivity:record_transition",
        "RunActivity:record_transition",
        "CompleteWorkflow:JourneyWorkflow",
    } <= names
    # Each span hangs under another of the same trace: one tree from the start.
    ids = {span.span_id for span in trace}
    assert all(span.parent_span_id in ids for span in trace if span is not start)
    assert {span.service_name for span in spans} == {"journeyman-worker"}


async def test_the_api_client_is_traced_too(
    database_url: str, temporal_dev_server: TemporalDevServer
) -> None:
    # The API reaches Temporal (health, journey control) through the same connect.
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key="wk_api_traced",
        admin_token="adm_api_traced",
        max_body_bytes=1024,
        temporal_address=temporal_dev_server.address,
    )
    settings = Settings(otel_endpoint="http://127.0.0.1:9")  # nothing is exported here
    try:
        with tracing_for(settings, role="api") as traced:
            assert traced is not None
            client = await services.temporal_client()
            assert client is not None
            assert traced.interceptor in client.config()["interceptors"]
    finally:
        await pool.close()


async def test_without_a_collector_nothing_is_installed(
    temporal_dev_server: TemporalDevServer,
) -> None:
    with tracing_for(Settings.from_env({}), role="worker") as traced:
        assert traced is None and tracing.installed() is None
        client = await connect_temporal(temporal_dev_server.address)
        assert list(client.config()["interceptors"]) == []


@pytest.mark.parametrize(
    "endpoint", ["collector:4318", "ftp://collector", "http://collector:4318/?token=x", "http://"]
)
def test_an_endpoint_that_is_not_a_base_url_names_the_variable(endpoint: str) -> None:
    with pytest.raises(ConfigError, match="OTEL_EXPORTER_OTLP_ENDPOINT"):
        Settings.from_env({"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint})


def test_spans_go_to_the_traces_path_of_the_endpoint() -> None:
    assert tracing.traces_url("http://collector:4318") == "http://collector:4318/v1/traces"
    assert tracing.traces_url("https://otel.example/base/") == "https://otel.example/base/v1/traces"
