"""The channel error hierarchy: what went wrong, and whether trying again can help.

::

    ChannelError                    anything a channel raises on purpose
    ├── RenderError                 a template cannot produce a message (permanent)
    └── DeliveryError               the provider did not take the message
        ├── PermanentDeliveryError  rejected for good: bad recipient, 5xx reply,
        │                           authentication refused, TLS certificate refused
        └── RetryableDeliveryError  try again later: connection refused, timeout, 4xx
                                    reply; ``maybe_delivered`` says whether the provider
                                    may already hold the message

``RenderError`` and ``PermanentDeliveryError`` are deterministic: the same input fails the
same way, so callers turn them into non-retryable failures. ``RetryableDeliveryError`` is
worth retrying, but when ``maybe_delivered`` is true the provider may already have accepted
the message (the connection dropped while waiting for the reply to the message data), so a
retry can produce a duplicate; the deterministic ``Message-ID`` lets receivers spot it.

No message here ever carries a credential.
"""

from __future__ import annotations


class ChannelError(Exception):
    """Base class for every error a channel raises deliberately."""


class RenderError(ChannelError):
    """A template failed to render; ``part`` names which one (subject, body, html)."""

    def __init__(self, message: str, *, part: str) -> None:
        super().__init__(message)
        self.part = part


class DeliveryError(ChannelError):
    """A provider did not accept a message.

    ``provider`` is the provider's name; ``code`` is the provider's status code when it gave
    one (an SMTP reply code), else None.
    """

    def __init__(self, message: str, *, provider: str, code: int | None = None) -> None:
        super().__init__(message)
        self.provider = provider
        self.code = code


class PermanentDeliveryError(DeliveryError):
    """The provider refused the message for good; retrying cannot help."""


class RetryableDeliveryError(DeliveryError):
    """The message may go through if sent again later.

    ``maybe_delivered`` is False when the failure came before the message was handed over
    (connect failure, 4xx reply), True when the provider may have accepted it regardless.
    It is a required argument so every raise site has to decide.
    """

    def __init__(
        self,
        message: str,
        *,
        provider: str,
        maybe_delivered: bool,
        code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message, provider=provider, code=code)
        self.maybe_delivered = maybe_delivered
        # Seconds the provider asked to wait (HTTP 429/503 ``Retry-After``), when it said.
        self.retry_after = retry_after
