"""Message rendering and the channel providers, behind one protocol."""

from .base import (
    DeliveryReceipt,
    EmailMessage,
    EmailProvider,
    PushMessage,
    PushProvider,
    SmsMessage,
    SmsProvider,
    WebhookMessage,
    WebhookProvider,
    idempotency_key_for,
    message_id_for,
)
from .errors import (
    ChannelError,
    DeliveryError,
    PermanentDeliveryError,
    RenderError,
    RetryableDeliveryError,
)
from .render import EmailTemplate, RenderedEmail, Renderer
from .sink import SmtpSink
from .smtp import SmtpProvider, SmtpSecurity

__all__ = [
    "ChannelError",
    "DeliveryError",
    "DeliveryReceipt",
    "EmailMessage",
    "EmailProvider",
    "EmailTemplate",
    "PermanentDeliveryError",
    "PushMessage",
    "PushProvider",
    "RenderError",
    "RenderedEmail",
    "Renderer",
    "RetryableDeliveryError",
    "SmsMessage",
    "SmsProvider",
    "SmtpProvider",
    "SmtpSecurity",
    "SmtpSink",
    "WebhookMessage",
    "WebhookProvider",
    "idempotency_key_for",
    "message_id_for",
]
