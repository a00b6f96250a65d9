"""HTML form bodies, read with the standard library: URL-encoded and multipart.

RFC 8058 lets mail providers send the one-click body ``List-Unsubscribe=One-Click`` either way,
and the preference page posts URL-encoded forms. Files are not expected and are ignored.

Errors::

    ValueError
    └── FormError   the body is not a form this engine reads; the message says why
"""

from __future__ import annotations

from email.message import EmailMessage
from email.parser import BytesParser
from email.policy import HTTP
from typing import Final
from urllib.parse import parse_qsl

MAX_FORM_BYTES: Final = 64 * 1024
MAX_FIELDS: Final = 100


class FormError(ValueError):
    """A body that is not a form this engine reads."""


def form_fields(body: bytes, content_type: str | None) -> list[tuple[str, str]]:
    """The (name, value) pairs of a form body, in order."""
    if len(body) > MAX_FORM_BYTES:
        raise FormError(f"the form is larger than {MAX_FORM_BYTES} bytes")
    header = EmailMessage()
    header["Content-Type"] = content_type or "application/x-www-form-urlencoded"
    media = header.get_content_type()
    if media == "application/x-www-form-urlencoded":
        try:
            return parse_qsl(
                body.decode("utf-8"),
                keep_blank_values=True,
                strict_parsing=False,
                max_num_fields=MAX_FIELDS,
            )
        except (UnicodeDecodeError, ValueError) as exc:
            raise FormError(f"the form is not valid: {exc}") from None
    if media == "multipart/form-data":
        return _multipart(body, content_type or "")
    raise FormError(f"expected a form (URL-encoded or multipart), not {media}")


def _multipart(body: bytes, content_type: str) -> list[tuple[str, str]]:
    if "\r" in content_type or "\n" in content_type:
        raise FormError("the Content-Type header is not valid")
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body
    )
    if not message.is_multipart() or message.get_boundary() is None:
        raise FormError("the multipart form has no boundary or no parts")
    fields: list[tuple[str, str]] = []
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if not isinstance(name, str) or part.get_filename() is not None:
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            fields.append((name, payload.decode(part.get_content_charset() or "utf-8")))
        except (UnicodeDecodeError, LookupError):
            raise FormError(f"field {name!r} is not valid text") from None
        if len(fields) > MAX_FIELDS:
            raise FormError(f"the form has more than {MAX_FIELDS} fields")
    return fields
