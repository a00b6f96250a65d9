"""Rewriting a message's HTML: web links tracked, everything else left byte for byte."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP

import pytest

from journeyman.orchestrator.tracking import (
    LinkSigner,
    tracked_html,
    unsubscribe_headers,
    unsubscribe_url,
)

SECRET = "a-link-secret-of-at-least-32-characters"
PUBLIC = "https://links.example.test"
SEND_KEY = "journey/news/c-9@run/awareness/monthly/0"
NOW = datetime(2025, 5, 1, tzinfo=UTC)
TRACKED = re.compile(r"https://links\.example\.test/t/c/([A-Za-z0-9_.-]+)")


def rewrite(html: str) -> str:
    return tracked_html(
        html, send_key=SEND_KEY, customer_id="c-9", public_url=PUBLIC, secret=SECRET, now=NOW
    )


def clicked(tracked_href: str) -> str:
    """Where a tracked link goes."""
    match = TRACKED.fullmatch(tracked_href)
    assert match, tracked_href
    url = LinkSigner(SECRET).verify(match.group(1), kind="click").url
    assert url is not None
    return url


def test_web_links_are_tracked_and_the_rest_is_untouched() -> None:
    unsubscribe = unsubscribe_url(
        send_key=SEND_KEY, customer_id="c-9", public_url=PUBLIC, secret=SECRET
    )
    html = (
        "<html><head><style>a { color: red }</style></head>\n<body>\n"
        "<p>Hi <b>there</b> &amp; welcome <!-- a comment --></p>\n"
        '<a class="btn" href="https://shop.test/cream?utm_source=news&amp;id=7">Shop</a>\n'
        "<A HREF='http://blog.test/post'>Blog</A>\n"
        '<a href="mailto:help@shop.test">Mail us</a> <a href="tel:+331">Call</a>\n'
        '<a href="/relative">Rel</a> <a href="#top">Top</a> <a name="anchor">x</a>\n'
        f'<a href="{unsubscribe}">Unsubscribe</a>\n'
        '<map><area shape="rect" coords="0,0,1,1" href="https://shop.test/map"></map>\n'
        "<script>var s = '<a href=\"https://not.a.link/\">';</script>\n"
        "</body></html>"
    )
    out = rewrite(html)
    hrefs = re.findall(r'href="([^"]*)"', out)
    assert [clicked(h) for h in hrefs if h.startswith(f"{PUBLIC}/t/c/")] == [
        "https://shop.test/cream?utm_source=news&id=7",  # the real URL, entities decoded
        "http://blog.test/post",
        "https://shop.test/map",
    ]
    # Nothing else moved: undo the three rewrites and the pixel and the input comes back.
    restored = out
    for tag in re.findall(r"<(?:a|A|area)\b[^>]*/t/c/[^>]*>", out):
        url = clicked(re.search(r'href="([^"]*)"', tag).group(1))  # type: ignore[union-attr]
        restored = restored.replace(tag, "<TRACKED " + url + ">", 1)
    restored = re.sub(r'<img src="[^"]*/t/o/[^"]*"[^>]*>', "", restored)
    assert restored == (
        html.replace(
            '<a class="btn" href="https://shop.test/cream?utm_source=news&amp;id=7">',
            "<TRACKED https://shop.test/cream?utm_source=news&id=7>",
        )
        .replace("<A HREF='http://blog.test/post'>", "<TRACKED http://blog.test/post>")
        .replace(
            '<area shape="rect" coords="0,0,1,1" href="https://shop.test/map">',
            "<TRACKED https://shop.test/map>",
        )
    )
    assert '<a class="btn" href="https://links.example.test/t/c/' in out  # attributes kept
    assert "<A href=" in out  # the tag as written, its attribute name as parsed


def test_the_pixel_goes_before_the_closing_body_or_at_the_end() -> None:
    out = rewrite("<html><body><p>Hi</p></body></html>")
    pixel = re.search(r'<img src="https://links\.example\.test/t/o/([^"]+)\.gif"[^>]*>', out)
    assert pixel is not None
    assert out.endswith('alt="" style="display:block;border:0;width:1px;height:1px"></body></html>')
    token = LinkSigner(SECRET).verify(pixel.group(1), kind="open")
    assert (token.send_key, token.customer_id, token.issued_at) == (SEND_KEY, "c-9", NOW)
    fragment = rewrite("<p>Hi</p>\r\n<p>there</p>")
    assert fragment.startswith("<p>Hi</p>\r\n<p>there</p><img src=")


def test_positions_are_right_across_lines_and_entities() -> None:
    html = '<p>\u00e9t\u00e9 \u2014 caf\u00e9</p>\r\n\r\n  <a\n   href="https://x.test/\u00e9"\n>go</a>'
    out = rewrite(html)
    assert out.startswith('<p>\u00e9t\u00e9 \u2014 caf\u00e9</p>\r\n\r\n  <a href="https://links')
    assert out.count(">go</a>") == 1


def test_unsubscribe_headers_follow_rfc_8058() -> None:
    headers = unsubscribe_headers(
        send_key=SEND_KEY,
        customer_id="c-9",
        public_url=PUBLIC,
        secret=SECRET,
        mailto="leave@shop.test",
    )
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    link, mailto = headers["List-Unsubscribe"].split(", ")
    assert mailto == "<mailto:leave@shop.test?subject=unsubscribe>"
    assert link.startswith(f"<{PUBLIC}/u/") and link.endswith(">")
    token = LinkSigner(SECRET).verify(link[len(PUBLIC) + 4 : -1], kind="unsubscribe")
    assert (token.group, token.customer_id) == ("email:marketing", "c-9")
    # Long as it is, the header survives being written by the standard library for SMTP.
    message = EmailMessage()
    message["From"] = Address("Shop", "news", "shop.test")
    for name, value in headers.items():
        message[name] = value
    written = message.as_bytes(policy=SMTP)
    assert all(len(line) <= 998 for line in written.split(b"\r\n"))
    with pytest.raises(ValueError, match="bare address"):
        unsubscribe_headers(
            send_key=SEND_KEY,
            customer_id="c-9",
            public_url=PUBLIC,
            secret=SECRET,
            mailto="x@y.test>\r\nBcc: z@y.test",
        )
