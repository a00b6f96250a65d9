"""Links in outgoing messages: tracked links and an open pixel in HTML, unsubscribe headers.

``tracked_html`` reads the HTML with the standard library's parser and changes only the
``href`` of ``<a>`` and ``<area>`` tags that go to an absolute http(s) URL; everything else
(other tags, text, comments, ``mailto:`` and ``tel:`` links, relative links, the unsubscribe
and preference links, links already tracked) is left byte for byte. The open pixel goes just
before ``</body>``, or at the end when there is none.

``unsubscribe_headers`` gives the RFC 2369 ``List-Unsubscribe`` header and the RFC 8058
``List-Unsubscribe-Post`` header that make mail clients offer one-click unsubscribe.
"""

from __future__ import annotations

import html as html_escape
from datetime import UTC, datetime
from html.parser import HTMLParser

from .consent import DEFAULT_GROUP_NAME
from .links import Kind, LinkSigner, LinkToken, is_web_url

LINK_TAGS = frozenset({"a", "area"})
ONE_CLICK = "List-Unsubscribe=One-Click"
DEFAULT_GROUP = f"email:{DEFAULT_GROUP_NAME}"

Secret = str | LinkSigner


def _signer(secret: Secret) -> LinkSigner:
    return secret if isinstance(secret, LinkSigner) else LinkSigner(secret)


def _token(
    kind: Kind,
    *,
    send_key: str,
    customer_id: str,
    secret: Secret,
    now: datetime | None,
    url: str | None = None,
    group: str | None = None,
) -> str:
    return _signer(secret).sign(
        LinkToken(
            kind=kind,
            send_key=send_key,
            customer_id=customer_id,
            issued_at=now or datetime.now(UTC),
            url=url,
            group=group,
        )
    )


def open_pixel_url(
    *, send_key: str, customer_id: str, public_url: str, secret: Secret, now: datetime | None = None
) -> str:
    """The 1x1 image whose fetch records ``Email Opened``."""
    token = _token("open", send_key=send_key, customer_id=customer_id, secret=secret, now=now)
    return f"{public_url.rstrip('/')}/t/o/{token}.gif"


def click_url(
    url: str,
    *,
    send_key: str,
    customer_id: str,
    public_url: str,
    secret: Secret,
    now: datetime | None = None,
) -> str:
    """A link that records ``Link Clicked`` and redirects to ``url`` (absolute http(s))."""
    token = _token(
        "click", send_key=send_key, customer_id=customer_id, secret=secret, now=now, url=url
    )
    return f"{public_url.rstrip('/')}/t/c/{token}"


def unsubscribe_url(
    *,
    send_key: str,
    customer_id: str,
    public_url: str,
    secret: Secret,
    group: str = DEFAULT_GROUP,
    now: datetime | None = None,
) -> str:
    """The unsubscribe link: GET shows the preference page, POST unsubscribes at once (RFC
    8058). It never expires. ``group`` is the message's subscription group key."""
    token = _token(
        "unsubscribe",
        send_key=send_key,
        customer_id=customer_id,
        secret=secret,
        now=now,
        group=group,
    )
    return f"{public_url.rstrip('/')}/u/{token}"


def unsubscribe_headers(
    *,
    send_key: str,
    customer_id: str,
    public_url: str,
    secret: Secret,
    group: str = DEFAULT_GROUP,
    mailto: str | None = None,
    now: datetime | None = None,
) -> dict[str, str]:
    """``List-Unsubscribe`` (the HTTPS link, then ``mailto`` if given) and
    ``List-Unsubscribe-Post: List-Unsubscribe=One-Click``.

    A ``mailto`` address is only listed: reading that mailbox and suppressing the senders is
    the operator's job.
    """
    link = unsubscribe_url(
        send_key=send_key,
        customer_id=customer_id,
        public_url=public_url,
        secret=secret,
        group=group,
        now=now,
    )
    targets = [f"<{link}>"]
    if mailto is not None:
        if any(ch in mailto for ch in "<>?\r\n ") or "@" not in mailto:
            raise ValueError("mailto must be a bare address like unsubscribe@example.com")
        targets.append(f"<mailto:{mailto}?subject=unsubscribe>")
    return {"List-Unsubscribe": ", ".join(targets), "List-Unsubscribe-Post": ONE_CLICK}


class _LinkFinder(HTMLParser):
    """Finds link start tags and the last ``</body>``, by their place in the source."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.links: list[tuple[tuple[int, int], str, str, list[tuple[str, str | None]]]] = []
        self.body_end: tuple[int, int] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raw = self.get_starttag_text()
        if tag in LINK_TAGS and raw is not None:
            self.links.append((self.getpos(), tag, raw, attrs))

    def handle_endtag(self, tag: str) -> None:
        if tag == "body":
            self.body_end = self.getpos()


def _offsets(text: str) -> list[int]:
    """Where each line starts (the parser counts lines by ``\\n`` and columns from 0)."""
    starts = [0]
    starts.extend(index + 1 for index, ch in enumerate(text) if ch == "\n")
    return starts


def _tag(raw: str, tag: str, attrs: list[tuple[str, str | None]]) -> str:
    parts = [raw[: 1 + len(tag)]]  # "<a" as written (its case kept)
    for name, value in attrs:
        parts.append(f" {name}" if value is None else f' {name}="{html_escape.escape(value)}"')
    parts.append("/>" if raw.endswith("/>") else ">")
    return "".join(parts)


def tracked_html(
    html: str,
    *,
    send_key: str,
    customer_id: str,
    public_url: str,
    secret: Secret,
    now: datetime | None = None,
) -> str:
    """``html`` with its web links tracked and the open pixel added."""
    signer = _signer(secret)
    base = public_url.rstrip("/")
    ours = (f"{base}/u/", f"{base}/t/")
    moment = now or datetime.now(UTC)
    finder = _LinkFinder()
    finder.feed(html)
    finder.close()
    lines = _offsets(html)
    edits: list[tuple[int, int, str]] = []
    for (line, column), tag, raw, attrs in finder.links:
        start = lines[line - 1] + column
        if html[start : start + len(raw)] != raw:
            continue  # not where the parser said: leave it alone rather than guess
        href = next((value for name, value in attrs if name == "href"), None)
        target = None if href is None else href.strip()
        if target is None or not is_web_url(target) or target.startswith(ours):
            continue
        tracked = click_url(
            target,
            send_key=send_key,
            customer_id=customer_id,
            public_url=base,
            secret=signer,
            now=moment,
        )
        first = next(i for i, (name, _) in enumerate(attrs) if name == "href")
        rewritten = [(n, tracked if i == first else v) for i, (n, v) in enumerate(attrs)]
        edits.append((start, start + len(raw), _tag(raw, tag, rewritten)))
    source = open_pixel_url(
        send_key=send_key, customer_id=customer_id, public_url=base, secret=signer, now=moment
    )
    pixel = (
        f'<img src="{html_escape.escape(source)}" width="1" height="1" alt=""'
        ' style="display:block;border:0;width:1px;height:1px">'
    )
    if finder.body_end is not None:
        line, column = finder.body_end
        at = lines[line - 1] + column
        edits.append((at, at, pixel))
    else:
        edits.append((len(html), len(html), pixel))
    out, done = [], 0
    for start, end, text in sorted(edits, key=lambda edit: edit[0]):
        out.append(html[done:start])
        out.append(text)
        done = end
    out.append(html[done:])
    return "".join(out)
