"""The worker's own metrics, served with the Temporal SDK's on the worker's Prometheus port.

They are recorded through the Temporal runtime's metric meter: ``activity.metric_meter()`` in
activities (which adds ``namespace``, ``task_queue`` and ``activity_type``), the client's
runtime meter in the dispatcher. A worker started without ``JOURNEYMAN_WORKER_METRICS_PORT``
has a no-op meter, so recording costs nothing there.

Names carry their unit and counters their ``_total``, as the API's ``/metrics`` does; the
SDK's Prometheus exporter writes names as given.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Final

from temporalio.common import MetricMeter

from journeyman.channels import PermanentDeliveryError, RetryableDeliveryError

PROVIDER_SECONDS: Final = "journeyman_provider_request_duration_seconds"
SENDS: Final = "journeyman_sends_total"
TRANSITIONS: Final = "journeyman_journey_transitions_total"
DISPATCHER_LEADER: Final = "journeyman_dispatcher_leader"
DISPATCHER_BATCHES: Final = "journeyman_dispatcher_batches_total"
DISPATCHER_SIGNALS: Final = "journeyman_dispatcher_signals_total"
DISPATCHER_FAILURES: Final = "journeyman_dispatcher_signal_failures_total"
DISPATCHER_DELIVERED: Final = "journeyman_dispatcher_rows_delivered_total"
DISPATCHER_LAG: Final = "journeyman_dispatcher_delivery_lag_seconds"

# The SDK's default buckets are milliseconds; these histograms are in seconds. Providers
# answer in tens of milliseconds; the tail up to their timeouts is what matters.
PROVIDER_BUCKETS: Final = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
# From a notification's prompt delivery to an outage's backlog.
LAG_BUCKETS: Final = (0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 3600.0)
BUCKETS: Final[Mapping[str, Sequence[float]]] = {
    PROVIDER_SECONDS: PROVIDER_BUCKETS,
    DISPATCHER_LAG: LAG_BUCKETS,
}


@contextlib.contextmanager
def provider_request(meter: MetricMeter, *, channel: str, provider: str) -> Iterator[None]:
    """Time one call to a provider and label it with how it ended.

    ``sent``: accepted; ``retryable``: refused for now, not taken; ``permanent``: refused
    for good; ``unknown``: the provider may or may not hold the message (a timeout after the
    request went out), or the call failed in an unexpected way.
    """
    started = time.perf_counter()
    outcome = "unknown"
    try:
        yield
        outcome = "sent"
    except RetryableDeliveryError as exc:
        outcome = "unknown" if exc.maybe_delivered else "retryable"
        raise
    except PermanentDeliveryError:
        outcome = "permanent"
        raise
    finally:
        meter.create_histogram_float(
            PROVIDER_SECONDS, "Time a channel provider took to answer a send, by outcome", "s"
        ).record(
            time.perf_counter() - started,
            {"channel": channel, "provider": provider, "outcome": outcome},
        )


def count_send(meter: MetricMeter, *, channel: str, state: str) -> None:
    """One send activity finished with ``state`` (its result: sent, failed, skipped, ...)."""
    meter.create_counter(SENDS, "Send activities by channel and the state they ended in").add(
        1, {"channel": channel, "state": state}
    )


def count_transition(meter: MetricMeter, *, journey_id: str, outcome: str) -> None:
    """One stage transition recorded for the first time (retries are not counted again)."""
    meter.create_counter(TRANSITIONS, "Stage transitions recorded, by journey and outcome").add(
        1, {"journey_id": journey_id, "outcome": outcome}
    )


class DispatcherMetrics:
    """The outbox dispatcher's counters, on the meter of its Temporal client's runtime."""

    def __init__(self, meter: MetricMeter) -> None:
        self.enabled = meter is not MetricMeter.noop
        self._leader = meter.create_gauge(
            DISPATCHER_LEADER, "1 while this process's dispatcher is the active one, else 0"
        )
        self._batches = meter.create_counter(
            DISPATCHER_BATCHES, "Batches of outbox rows claimed and delivered"
        )
        self._signals = meter.create_counter(
            DISPATCHER_SIGNALS,
            "Events handed to Temporal, by kind (start: signal-with-start of an entry; signal)"
            " and outcome (sent; run_closed: the run had finished and needs it no more)",
        )
        self._failures = meter.create_counter(
            DISPATCHER_FAILURES,
            "Signals Temporal did not take, by kind and reason (unavailable: retried without"
            " counting an attempt; refused: counts towards the dead letter)",
        )
        self._delivered = meter.create_counter(
            DISPATCHER_DELIVERED, "Outbox rows delivered to Temporal and marked delivered"
        )
        self._lag = meter.create_histogram_float(
            DISPATCHER_LAG, "Time from an outbox row's commit to its delivery to Temporal", "s"
        )

    def leader(self, active: bool) -> None:
        self._leader.set(1 if active else 0)

    def batch(self) -> None:
        self._batches.add(1)

    def signal(self, kind: str, outcome: str) -> None:
        self._signals.add(1, {"kind": kind, "outcome": outcome})

    def failure(self, kind: str, reason: str) -> None:
        self._failures.add(1, {"kind": kind, "reason": reason})

    def delivered(self, count: int, lags: Sequence[float]) -> None:
        """``count`` rows marked delivered; ``lags``: seconds from commit to delivery of those
        still there to ask (an erasure may have deleted some meanwhile)."""
        if count:
            self._delivered.add(count)
        for seconds in lags:
            self._lag.record(max(seconds, 0.0))
