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
from .fcm import (
    AccessTokenSource,
    DeviceTokenUnregistered,
    FcmPush,
    ServiceAccountTokenSource,
    StaticTokenSource,
)
from .postmark import InactiveRecipient, PostmarkProvider
from .render import EmailTemplate, RenderedEmail, Renderer
from .sendgrid import SendGridProvider
from .sink import SmtpSink
from .smtp import SmtpProvider, SmtpSecurity
from .twilio import (
    RecipientUnsubscribed,
    StatusUpdate,
    TwilioSms,
    parse_status_callback,
    verify_status_callback,
)
from .webhook import WebhookSender, verify_signature

__all__ = [
    "AccessTokenSource",
    "ChannelError",
    "DeliveryError",
    "DeliveryReceipt",
    "DeviceTokenUnregistered",
    "EmailMessage",
    "EmailProvider",
    "EmailTemplate",
    "FcmPush",
    "InactiveRecipient",
    "PermanentDeliveryError",
    "PostmarkProvider",
    "PushMessage",
    "PushProvider",
    "RecipientUnsubscribed",
    "RenderError",
    "RenderedEmail",
    "Renderer",
    "RetryableDeliveryError",
    "SendGridProvider",
    "ServiceAccountTokenSource",
    "SmsMessage",
    "SmsProvider",
    "SmtpProvider",
    "SmtpSecurity",
    "SmtpSink",
    "StaticTokenSource",
    "StatusUpdate",
    "TwilioSms",
    "WebhookMessage",
    "WebhookProvider",
    "WebhookSender",
    "idempotency_key_for",
    "message_id_for",
    "parse_status_callback",
    "verify_signature",
    "verify_status_callback",
]
