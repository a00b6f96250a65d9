"""In-app messages: stored per customer by in_app sends, read and acknowledged through the API.

``storage`` keeps the messages (once per send key); ``tokens`` signs the per-customer tokens
that the browser routes can require beside the public write key.
"""

from .storage import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    InAppMessage,
    MessageError,
    MessagePage,
    Stored,
    acknowledge,
    erase,
    get,
    list_for_customer,
    mark_read,
    store,
)
from .tokens import CustomerToken, issue, require_tokens, tokens_required, verify

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "CustomerToken",
    "InAppMessage",
    "MessageError",
    "MessagePage",
    "Stored",
    "acknowledge",
    "erase",
    "get",
    "issue",
    "list_for_customer",
    "mark_read",
    "require_tokens",
    "store",
    "tokens_required",
    "verify",
]
