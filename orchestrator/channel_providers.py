"""The worker's channel providers, built from the settings (docs/channels.md).

Every HTTP provider shares one ``httpx.AsyncClient`` with bounded connections and timeouts,
opened with the worker and closed with it. A provider whose settings are incomplete is a
configuration error at start-up, naming the missing variables, not a failure at the first send.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import asyncpg

from journeyman.channels import (
    EmailProvider,
    FcmPush,
    PostmarkProvider,
    SendGridProvider,
    ServiceAccountTokenSource,
    SmtpProvider,
    StaticTokenSource,
    TwilioSms,
    WebhookSender,
)
from journeyman.channels.fcm import AccessTokenSource
from journeyman.channels.http import shared_client
from journeyman.workflows.providers import ChannelProviders

from .config import ENVIRONMENT, ConfigError, Settings
from .inapp.provider import InboxProvider


def _require(settings: Settings, channel: str, *fields: str) -> None:
    missing = [ENVIRONMENT[f] for f in fields if getattr(settings, f) in (None, "")]
    if missing:
        raise ConfigError(f"{channel} needs {', '.join(missing)}")


@contextlib.asynccontextmanager
async def channel_providers(
    settings: Settings, *, smtp: SmtpProvider, pool: asyncpg.Pool
) -> AsyncIterator[ChannelProviders]:
    """Providers for every configured channel; the HTTP client closes on exit."""
    client = shared_client()
    try:
        email: EmailProvider = smtp
        if settings.email_provider == "sendgrid":
            _require(settings, "email through SendGrid", "sendgrid_api_key")
            assert settings.sendgrid_api_key is not None
            email = SendGridProvider(
                client, api_key=settings.sendgrid_api_key, base_url=settings.sendgrid_base_url
            )
        elif settings.email_provider == "postmark":
            _require(settings, "email through Postmark", "postmark_token")
            assert settings.postmark_token is not None
            email = PostmarkProvider(
                client,
                server_token=settings.postmark_token,
                message_stream=settings.postmark_message_stream,
                base_url=settings.postmark_base_url,
            )
        sms = None
        if settings.twilio_account_sid or settings.twilio_auth_token or settings.twilio_from:
            _require(settings, "SMS", "twilio_account_sid", "twilio_auth_token", "twilio_from")
            assert settings.twilio_account_sid and settings.twilio_auth_token
            assert settings.twilio_from
            sms = TwilioSms(
                client,
                account_sid=settings.twilio_account_sid,
                auth_token=settings.twilio_auth_token,
                from_number=settings.twilio_from,
                base_url=settings.twilio_base_url,
            )
        push = None
        if settings.fcm_project_id:
            tokens: AccessTokenSource
            if settings.fcm_credentials_file is not None:
                tokens = ServiceAccountTokenSource.from_service_account_file(
                    client, settings.fcm_credentials_file, token_uri=settings.fcm_token_uri
                )
            elif settings.fcm_access_token is not None:
                tokens = StaticTokenSource(settings.fcm_access_token)
            else:
                raise ConfigError(
                    f"push needs {ENVIRONMENT['fcm_credentials_file']}"
                    f" or {ENVIRONMENT['fcm_access_token']}"
                )
            push = FcmPush(
                client,
                project_id=settings.fcm_project_id,
                token_source=tokens,
                base_url=settings.fcm_base_url,
            )
        webhook = None
        if settings.webhook_signing_secret is not None:
            webhook = WebhookSender(
                client,
                signing_secret=settings.webhook_signing_secret,
                timeout=settings.webhook_timeout,
            )
        yield ChannelProviders(
            email=email, sms=sms, push=push, webhook=webhook, in_app=InboxProvider(pool)
        )
    finally:
        await client.aclose()
