"""Settings, read from ``JOURNEYMAN_*`` environment variables (and OpenTelemetry's standard
``OTEL_EXPORTER_OTLP_ENDPOINT``).

Every address is configurable so the same processes run against the embedded stack or an
external Postgres and Temporal cluster. ``ENVIRONMENT`` below is the single list of variables
the code reads; the docker-compose test checks the production setup against it.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from journeyman.channels.smtp import SmtpSecurity

# field name -> environment variable; documented in the README.
ENVIRONMENT: dict[str, str] = {
    "data_dir": "JOURNEYMAN_DATA_DIR",
    "database_url": "JOURNEYMAN_DATABASE_URL",
    "temporal_address": "JOURNEYMAN_TEMPORAL_ADDRESS",
    "temporal_namespace": "JOURNEYMAN_TEMPORAL_NAMESPACE",
    "temporal_tls": "JOURNEYMAN_TEMPORAL_TLS",
    "temporal_tls_ca_file": "JOURNEYMAN_TEMPORAL_TLS_CA_FILE",
    "temporal_tls_cert_file": "JOURNEYMAN_TEMPORAL_TLS_CERT_FILE",
    "temporal_tls_key_file": "JOURNEYMAN_TEMPORAL_TLS_KEY_FILE",
    "temporal_tls_server_name": "JOURNEYMAN_TEMPORAL_TLS_SERVER_NAME",
    "temporal_api_key": "JOURNEYMAN_TEMPORAL_API_KEY",
    "task_queue": "JOURNEYMAN_TASK_QUEUE",
    "api_host": "JOURNEYMAN_API_HOST",
    "api_port": "JOURNEYMAN_API_PORT",
    "write_key": "JOURNEYMAN_WRITE_KEY",
    "admin_token": "JOURNEYMAN_ADMIN_TOKEN",
    "journeys_dir": "JOURNEYMAN_JOURNEYS_DIR",
    "max_body_bytes": "JOURNEYMAN_MAX_BODY_BYTES",
    "ingest_max_in_flight": "JOURNEYMAN_INGEST_MAX_IN_FLIGHT",
    "ingest_queue_seconds": "JOURNEYMAN_INGEST_QUEUE_SECONDS",
    "smtp_host": "JOURNEYMAN_SMTP_HOST",
    "smtp_port": "JOURNEYMAN_SMTP_PORT",
    "smtp_security": "JOURNEYMAN_SMTP_SECURITY",
    "smtp_username": "JOURNEYMAN_SMTP_USERNAME",
    "smtp_password": "JOURNEYMAN_SMTP_PASSWORD",
    "smtp_from": "JOURNEYMAN_SMTP_FROM",
    "email_provider": "JOURNEYMAN_EMAIL_PROVIDER",
    "sendgrid_api_key": "JOURNEYMAN_SENDGRID_API_KEY",
    "sendgrid_base_url": "JOURNEYMAN_SENDGRID_BASE_URL",
    "postmark_token": "JOURNEYMAN_POSTMARK_TOKEN",
    "postmark_message_stream": "JOURNEYMAN_POSTMARK_MESSAGE_STREAM",
    "postmark_base_url": "JOURNEYMAN_POSTMARK_BASE_URL",
    "twilio_account_sid": "JOURNEYMAN_TWILIO_ACCOUNT_SID",
    "twilio_auth_token": "JOURNEYMAN_TWILIO_AUTH_TOKEN",
    "twilio_from": "JOURNEYMAN_TWILIO_FROM",
    "twilio_base_url": "JOURNEYMAN_TWILIO_BASE_URL",
    "fcm_project_id": "JOURNEYMAN_FCM_PROJECT_ID",
    "fcm_credentials_file": "JOURNEYMAN_FCM_CREDENTIALS_FILE",
    "fcm_access_token": "JOURNEYMAN_FCM_ACCESS_TOKEN",
    "fcm_base_url": "JOURNEYMAN_FCM_BASE_URL",
    "fcm_token_uri": "JOURNEYMAN_FCM_TOKEN_URI",
    "webhook_signing_secret": "JOURNEYMAN_WEBHOOK_SIGNING_SECRET",
    "webhook_timeout": "JOURNEYMAN_WEBHOOK_TIMEOUT",
    "link_secret": "JOURNEYMAN_LINK_SECRET",
    "public_url": "JOURNEYMAN_PUBLIC_URL",
    "sendgrid_webhook_public_key": "JOURNEYMAN_SENDGRID_WEBHOOK_PUBLIC_KEY",
    "worker_metrics_port": "JOURNEYMAN_WORKER_METRICS_PORT",
    "log_level": "JOURNEYMAN_LOG_LEVEL",
    "log_format": "JOURNEYMAN_LOG_FORMAT",
    # The OpenTelemetry standard variable, so that a collector set up for other services
    # (an operator's injected environment, a sidecar) is found without a second name.
    "otel_endpoint": "OTEL_EXPORTER_OTLP_ENDPOINT",
    "embedded_postgres_port": "JOURNEYMAN_EMBEDDED_POSTGRES_PORT",
    "embedded_temporal_port": "JOURNEYMAN_EMBEDDED_TEMPORAL_PORT",
    "embedded_temporal_ui_port": "JOURNEYMAN_EMBEDDED_TEMPORAL_UI_PORT",
    "embedded_smtp_port": "JOURNEYMAN_EMBEDDED_SMTP_PORT",
}


# A base URL: scheme, host, optional port and path; no query (the exporter appends /v1/traces).
_OTLP_ENDPOINT = re.compile(r"https?://[^\s/?#@]+(/[^\s?#]*)?")

# A DNS name (what a server certificate names and SNI carries): labels of letters, digits and
# hyphens, separated by dots.
_SERVER_NAME = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.?)+")


class ConfigError(ValueError):
    """A setting has a value the engine cannot use; the message names the variable."""


class Settings(BaseModel):
    """Everything a Journeyman process needs to know about its surroundings."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    data_dir: Path = Path(".journeyman")
    # None means "start the embedded one" for `journeyman up`; worker and api require them.
    database_url: SecretStr | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    # A secured Temporal cluster or Temporal Cloud (docs/production.md). TLS left unset (None)
    # is on as soon as a CA, a client certificate, a server name or an API key is given.
    temporal_tls: bool | None = None
    temporal_tls_ca_file: Path | None = None  # None: the system's trusted roots
    temporal_tls_cert_file: Path | None = None  # mTLS: with temporal_tls_key_file
    temporal_tls_key_file: Path | None = None
    temporal_tls_server_name: str | None = None  # the name the server's certificate carries
    temporal_api_key: SecretStr | None = None  # sent as a bearer token (Temporal Cloud)
    task_queue: str = "journeyman"
    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8000, ge=0, le=65535)
    write_key: SecretStr | None = None
    admin_token: SecretStr | None = None
    journeys_dir: Path = Path("journeys")
    # Segment documents 500 KB per batch request; a little headroom for envelopes.
    max_body_bytes: int = Field(default=512 * 1024, gt=0)
    # Ingest requests at work at once per API process; past it, and past a short wait for a
    # turn or a database connection, ingest answers 503 with Retry-After instead of queueing.
    ingest_max_in_flight: int = Field(default=64, ge=1)
    ingest_queue_seconds: float = Field(default=1.0, ge=0, le=60)
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: SmtpSecurity = "none"
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_from: str = "Journeyman <journeys@localhost>"
    # Channel providers (docs/channels.md). A channel left unconfigured fails its sends
    # visibly; email goes through SMTP unless another provider is chosen.
    email_provider: Literal["smtp", "sendgrid", "postmark"] = "smtp"
    sendgrid_api_key: SecretStr | None = None
    sendgrid_base_url: str = "https://api.sendgrid.com"
    postmark_token: SecretStr | None = None
    postmark_message_stream: str = "outbound"
    postmark_base_url: str = "https://api.postmarkapp.com"
    twilio_account_sid: str | None = None
    twilio_auth_token: SecretStr | None = None
    twilio_from: str | None = None
    twilio_base_url: str = "https://api.twilio.com"
    fcm_project_id: str | None = None
    fcm_credentials_file: Path | None = None
    fcm_access_token: SecretStr | None = None
    fcm_base_url: str = "https://fcm.googleapis.com"
    fcm_token_uri: str | None = None
    webhook_signing_secret: SecretStr | None = None
    webhook_timeout: float = Field(default=10.0, gt=0, le=300)
    # Signs tracking and unsubscribe links (comma-separated: the first signs, all verify, so
    # a secret can be rotated). Development generates one into the data dir.
    link_secret: SecretStr | None = None
    # Where customers' browsers and providers reach the API (https in production).
    public_url: str | None = None
    # Verifies SendGrid's signed Event Webhook (the key SendGrid shows, base64 DER or PEM).
    sendgrid_webhook_public_key: str | None = None
    # Where a worker serves the Temporal SDK's metrics for Prometheus; None: not served.
    worker_metrics_port: int | None = Field(default=None, ge=1, le=65535)
    log_level: str = "INFO"
    # "text": the human format; "json": one JSON object per line, with the ids of the work.
    log_format: Literal["text", "json"] = "text"
    # Base URL of an OTLP/HTTP collector; spans go to {endpoint}/v1/traces. None: no tracing.
    otel_endpoint: str | None = None
    # Ports of the embedded stack (`journeyman up`); 0 picks a free one at each start.
    embedded_postgres_port: int = Field(default=0, ge=0, le=65535)
    embedded_temporal_port: int = Field(default=7233, ge=0, le=65535)
    embedded_temporal_ui_port: int = Field(default=8233, ge=0, le=65535)
    embedded_smtp_port: int = Field(default=2525, ge=0, le=65535)

    @field_validator("otel_endpoint")
    @classmethod
    def _check_otel_endpoint(cls, value: str | None) -> str | None:
        if value is not None and not _OTLP_ENDPOINT.fullmatch(value):
            raise ValueError(
                "must be the collector's OTLP/HTTP base URL, like http://otel-collector:4318"
            )
        return value

    @field_validator("temporal_tls_server_name")
    @classmethod
    def _check_server_name(cls, value: str | None) -> str | None:
        if value is not None and not _SERVER_NAME.fullmatch(value):
            raise ValueError(
                "must be a host name as the server's certificate names it, like "
                "temporal.internal (no scheme, no port)"
            )
        return value

    @model_validator(mode="after")
    def _check_temporal_tls(self) -> Settings:
        cert, key = self.temporal_tls_cert_file, self.temporal_tls_key_file
        if (cert is None) != (key is None):
            given, missing = (
                ("temporal_tls_cert_file", "temporal_tls_key_file")
                if key is None
                else ("temporal_tls_key_file", "temporal_tls_cert_file")
            )
            raise ValueError(
                f"{ENVIRONMENT[given]} is set but {ENVIRONMENT[missing]} is not: a client "
                "certificate (mTLS) needs both the certificate and its private key"
            )
        if self.temporal_tls is False:
            needs_tls = [
                ENVIRONMENT[name]
                for name in (
                    "temporal_tls_ca_file",
                    "temporal_tls_cert_file",
                    "temporal_tls_key_file",
                    "temporal_tls_server_name",
                )
                if getattr(self, name) is not None
            ]
            if needs_tls:
                raise ValueError(
                    f"{ENVIRONMENT['temporal_tls']} is false, yet TLS settings are set "
                    f"({', '.join(needs_tls)}): unset them, or turn TLS on"
                )
        return self

    @property
    def temporal_uses_tls(self) -> bool:
        """Whether clients reach Temporal over TLS: as set, else when anything implies it."""
        if self.temporal_tls is not None:
            return self.temporal_tls
        implied = (
            self.temporal_tls_ca_file,
            self.temporal_tls_cert_file,
            self.temporal_tls_server_name,
            self.temporal_api_key,
        )
        return any(value is not None for value in implied)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> Settings:
        """Read settings from the environment; ``overrides`` win over it."""
        source = os.environ if env is None else env
        values: dict[str, object] = {
            field: source[var] for field, var in ENVIRONMENT.items() if source.get(var, "") != ""
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        try:
            return cls.model_validate(values)
        except ValidationError as exc:
            problems = []
            for err in exc.errors():
                if not err["loc"]:  # a rule across settings: its message names them
                    cause = (err.get("ctx") or {}).get("error")
                    problems.append(str(cause) if cause is not None else err["msg"])
                    continue
                field = str(err["loc"][0])
                var = ENVIRONMENT.get(field, field)
                problems.append(f"{var}: {err['msg']}")
            raise ConfigError("invalid configuration: " + "; ".join(problems)) from None

    def secret_values(self) -> list[str]:
        """Every secret this process was given, for the log output to mask wherever it shows."""
        found: list[str] = []
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                # The link secret may list several (rotation); each one is a secret.
                found.extend(part for part in value.get_secret_value().split(",") if part)
        database = self.database_url.get_secret_value() if self.database_url else ""
        password = urlsplit(database).password if "://" in database else None
        if password:
            found.append(password)
        return found

    def require_database_url(self) -> str:
        if self.database_url is None:
            raise ConfigError(f"{ENVIRONMENT['database_url']} is not set")
        return self.database_url.get_secret_value()

    def require_temporal_address(self) -> str:
        if self.temporal_address is None:
            raise ConfigError(f"{ENVIRONMENT['temporal_address']} is not set")
        return self.temporal_address
