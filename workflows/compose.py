"""Compose one send: the step's templates rendered for one customer, on the step's channel.

Pure apart from rendering: the caller loads the profile and context, and hands the result to
the channel's provider. A customer the channel cannot reach (no email address, no phone, no
device token) is a ``Skip`` with the reason, recorded in the ledger, not an error.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from journeyman.channels import EmailMessage, Renderer, message_id_for
from journeyman.channels.base import (
    InAppMessage,
    PushMessage,
    SmsMessage,
    WebhookMessage,
    idempotency_key_for,
)
from journeyman.channels.render import EmailTemplate, one_line

from .plan import SendStep

OutboundMessage = EmailMessage | SmsMessage | PushMessage | WebhookMessage | InAppMessage

# Where each channel finds its recipient in the profile.
PHONE_TRAIT = "phone"
PUSH_TOKEN_TRAIT = "push_token"
_E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")


class Skip(Exception):
    """The customer cannot get this message on this channel; ``reason`` says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Outbound:
    """A message ready for its provider, with what the ledger records of it."""

    message: OutboundMessage
    recipient: str | None  # address, number, token digest or URL host; never message content
    summary: str | None  # the subject or title, for reports


def compose(
    step: SendStep,
    *,
    send_key: str,
    customer_id: str,
    traits: Mapping[str, Any],
    context: Mapping[str, Any],
    renderer: Renderer,
    from_address: str,
) -> Outbound:
    """Render ``step`` for one customer; raise ``Skip`` or ``RenderError``."""
    locale = traits.get("locale")
    content = step.content_for(locale if isinstance(locale, str) else None)
    key = idempotency_key_for(send_key)

    def text(source: str, part: str) -> str:
        return renderer.render(source, context, part=part)

    if step.channel == "email":
        address = traits.get("email")
        if not isinstance(address, str) or "@" not in address:
            raise Skip("customer has no email address")
        rendered = renderer.render_email(
            EmailTemplate(subject=content.subject, body=content.body, html=content.html), context
        )
        name = traits.get("name") or " ".join(
            str(traits[k]) for k in ("first_name", "last_name") if traits.get(k)
        )
        email = EmailMessage(
            to_address=address,
            to_name=str(name) or None,
            from_address=from_address,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id_for(send_key, from_address=from_address),
        )
        return Outbound(email, address, rendered.subject)
    if step.channel == "sms":
        number = traits.get(PHONE_TRAIT)
        if not isinstance(number, str) or not _E164.fullmatch(number.strip()):
            raise Skip("customer has no phone number in E.164 form (+886912345678)")
        body = text(content.body, "body")
        if not body.strip():
            raise Skip("the message rendered empty")
        sms = SmsMessage(to_number=number.strip(), body=body[:1600], idempotency_key=key)
        return Outbound(sms, number.strip(), None)
    if step.channel == "push":
        token = traits.get(PUSH_TOKEN_TRAIT)
        if not isinstance(token, str) or not token:
            raise Skip("customer has no push token")
        title = one_line(text(content.subject, "title"))
        data = {name: text(value, f"data.{name}") for name, value in step.data.items()}
        push = PushMessage(
            device_token=token,
            title=title,
            body=text(content.body, "body"),
            data=data,
            idempotency_key=key,
        )
        return Outbound(push, f"device …{token[-6:]}", title)
    if step.channel == "in_app":
        title = one_line(text(content.subject, "title"))
        data = {name: text(value, f"data.{name}") for name, value in step.data.items()}
        inbox = InAppMessage(
            customer_id=customer_id,
            title=title,
            body=text(content.body, "body"),
            data=data,
            idempotency_key=key,
        )
        return Outbound(inbox, customer_id, title)
    assert step.channel == "webhook" and step.url is not None
    url = one_line(text(step.url, "url"))
    hook = WebhookMessage(
        url=url,
        method=step.method,
        headers={name: one_line(text(v, f"headers.{name}")) for name, v in step.headers.items()},
        body=text(content.body, "body"),
        idempotency_key=key,
    )
    return Outbound(hook, url.split("?", 1)[0], None)
