"""Message rendering and the channel providers, behind one protocol."""

from .base import DeliveryReceipt, EmailMessage, EmailProvider, message_id_for
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
    "RenderError",
    "RenderedEmail",
    "Renderer",
    "RetryableDeliveryError",
    "SmtpProvider",
    "SmtpSecurity",
    "SmtpSink",
    "message_id_for",
]
