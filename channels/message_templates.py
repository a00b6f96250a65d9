"""What a send step renders and what comes out: the template texts of a message per channel.

A journey's send step names the texts its channel reads (``CHANNEL_FIELDS``); the renderer
fills each in and hands back the same fields.
"""

from __future__ import annotations

from typing import Final

from pydantic import BaseModel, ConfigDict, Field


class EmailTemplate(BaseModel):
    """The three template sources of an email; ``html`` is optional."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    body: str
    html: str | None = None


class RenderedEmail(BaseModel):
    """An email's rendered parts: a one-line subject, the text body and optional HTML."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str
    text: str
    html: str | None = None


class MessageTemplate(BaseModel):
    """The template texts of one send on any channel, named as a journey's send step names
    them: email ``subject``/``body``/``html``; sms ``body``; push and in_app ``subject``
    (the title), ``body`` and ``data``; webhook ``url``, ``headers`` and ``body``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = ""
    body: str = ""
    html: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


class RenderedMessage(BaseModel):
    """A ``MessageTemplate`` rendered: the same fields, filled in."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    subject: str = ""
    body: str = ""
    html: str | None = None
    data: dict[str, str] = Field(default_factory=dict)
    url: str | None = None
    headers: dict[str, str] = Field(default_factory=dict)


# The fields each channel reads; any other non-empty field is a mistake worth reporting.
CHANNEL_FIELDS: Final[dict[str, frozenset[str]]] = {
    "email": frozenset({"subject", "body", "html"}),
    "sms": frozenset({"body"}),
    "push": frozenset({"subject", "body", "data"}),
    "in_app": frozenset({"subject", "body", "data"}),
    "webhook": frozenset({"url", "headers", "body"}),
}
