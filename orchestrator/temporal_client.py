"""Connecting to Temporal with the converter every Journeyman process must share.

A secured cluster or Temporal Cloud also needs TLS (a private CA, a client certificate for
mTLS, a server name) or an API key: ``temporal_security`` reads them from the settings at
start-up, failing with the variable's name when a file is missing or is not PEM, and
``connect_temporal`` uses them. Neither the key nor the private key ever shows in a repr.

Every client also gets what this process observes with: the Temporal runtime's own log lines
go through Python logging (so they take the process's log format and masking, rather than
being printed by the runtime), and when tracing is installed
(``observability.tracing``) the client carries Temporal's tracing interceptor, which the
workers built on it inherit.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

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
from temporalio.service import TLSConfig

from .config import ENVIRONMENT, ConfigError, Settings
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


@dataclass(frozen=True)
class TemporalSecurity:
    """How a client reaches a secured cluster: TLS (``True``: the system's trusted roots; a
    ``TLSConfig``: a private CA, a client certificate, a server name) and an API key.

    The default is a plaintext connection without a key (the embedded dev server)."""

    tls: bool | TLSConfig = field(default=False, repr=False)
    api_key: str | None = field(default=None, repr=False)

    def __repr__(self) -> str:
        # TLSConfig's own repr would print the client's private key.
        if isinstance(self.tls, TLSConfig):
            parts = ["tls=custom"]
            if self.tls.server_root_ca_cert is not None:
                parts.append("ca")
            if self.tls.client_cert is not None:
                parts.append("client certificate")
            if self.tls.domain is not None:
                parts.append(f"server name {self.tls.domain!r}")
        else:
            parts = [f"tls={self.tls}"]
        parts.append("api key" if self.api_key is not None else "no api key")
        return f"TemporalSecurity({', '.join(parts)})"


def _pem(setting: str, path: Path, kind: str) -> bytes:
    """The PEM file a setting names, or a ConfigError that names the variable and the file."""
    variable = ENVIRONMENT[setting]
    try:
        content = path.read_bytes()
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise ConfigError(f"{variable}: cannot read {path}: {reason}") from None
    if b"-----BEGIN " not in content or kind.encode() not in content:
        raise ConfigError(f"{variable}: {path} is not a PEM file holding a {kind}")
    return content


def temporal_security(settings: Settings) -> TemporalSecurity:
    """The TLS and API key settings for an external cluster, their files read now.

    Raises ``ConfigError`` naming the variable when a file cannot be read or is not PEM.
    """
    api_key = settings.temporal_api_key.get_secret_value() if settings.temporal_api_key else None
    if not settings.temporal_uses_tls:
        return TemporalSecurity(tls=False, api_key=api_key)
    ca = settings.temporal_tls_ca_file
    cert, key = settings.temporal_tls_cert_file, settings.temporal_tls_key_file
    name = settings.temporal_tls_server_name
    if ca is None and cert is None and name is None:
        return TemporalSecurity(tls=True, api_key=api_key)
    tls = TLSConfig(
        server_root_ca_cert=_pem("temporal_tls_ca_file", ca, "CERTIFICATE") if ca else None,
        domain=name,
        client_cert=_pem("temporal_tls_cert_file", cert, "CERTIFICATE") if cert else None,
        client_private_key=_pem("temporal_tls_key_file", key, "PRIVATE KEY") if key else None,
    )
    return TemporalSecurity(tls=tls, api_key=api_key)


class TemporalConnectError(RuntimeError):
    """Temporal could not be reached; the message says where, and over what."""


async def connect_temporal(
    address: str,
    *,
    namespace: str = "default",
    runtime: Runtime | None = None,
    security: TemporalSecurity | None = None,
) -> Client:
    """A client whose payloads are pydantic models (plans, events, activity inputs), traced
    when this process has tracing installed; over TLS and with an API key when ``security``
    says so.

    Raises ``TemporalConnectError`` (a ``RuntimeError``, like the SDK's own) naming the
    address and the transport when the connection fails.
    """
    security = security if security is not None else TemporalSecurity()
    traced = tracing.installed()
    interceptors: Sequence[Interceptor] = [traced.interceptor] if traced is not None else []
    try:
        return await Client.connect(
            address,
            namespace=namespace,
            api_key=security.api_key,
            tls=security.tls,
            data_converter=pydantic_data_converter,
            runtime=runtime if runtime is not None else _logging_runtime(),
            interceptors=interceptors,
        )
    except RuntimeError as exc:
        transport = "TLS" if security.tls is not False else "plaintext (TLS off)"
        raise TemporalConnectError(
            f"cannot connect to Temporal at {address} (namespace {namespace!r}, over "
            f"{transport}){_hint(security, str(exc))}: {exc}"
        ) from exc


def _hint(security: TemporalSecurity, error: str) -> str:
    """What to check, for the failures a TLS setting explains."""
    if security.tls is False:
        return f"; if the server speaks TLS, set {ENVIRONMENT['temporal_tls']}=true"
    if "UnknownIssuer" in error:
        return (
            "; the server's certificate is not signed by a CA this process trusts: set "
            f"{ENVIRONMENT['temporal_tls_ca_file']} to the CA that signed it"
        )
    if "NotValidForName" in error:
        return (
            "; the server's certificate does not name the address dialled: set "
            f"{ENVIRONMENT['temporal_tls_server_name']} to the name it carries"
        )
    has_client_cert = isinstance(security.tls, TLSConfig) and security.tls.client_cert is not None
    if not has_client_cert and security.api_key is None:
        return (
            "; if the server requires a client certificate (mTLS), set "
            f"{ENVIRONMENT['temporal_tls_cert_file']} and {ENVIRONMENT['temporal_tls_key_file']}"
        )
    return ""
