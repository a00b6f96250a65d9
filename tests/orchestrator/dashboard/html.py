"""Reading the dashboard's HTML in tests: live numbers by key, charts, and table rows."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from html.parser import HTMLParser

from journeyman.orchestrator.dashboard.svg import SVG_NS

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}


class _Live(HTMLParser):
    """Each ``data-live`` element's shown value: its text, or the attribute it names."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: dict[str, list[str]] = {}
        self._open: list[tuple[str, str | None, list[str]]] = []  # (tag, key, text parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        key = found.get("data-live")
        attribute = found.get("data-live-attr")
        if key is not None and attribute:
            self.values.setdefault(key, []).append(found.get(attribute) or "")
            key = None
        if tag not in VOID:
            self._open.append((tag, key, []))

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag not in VOID:
            self.handle_endtag(tag)

    def handle_data(self, data: str) -> None:
        for _, _, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            open_tag, key, parts = self._open.pop()
            if key is not None:
                self.values.setdefault(key, []).append("".join(parts))
            if open_tag == tag:
                return


def live_values(html: str) -> dict[str, str]:
    """Every live key's value; a key shown in several places must read the same in all."""
    parser = _Live()
    parser.feed(html)
    parser.close()
    out: dict[str, str] = {}
    for key, shown in parser.values.items():
        assert len(set(shown)) == 1, f"{key} reads {shown}"
        out[key] = shown[0]
    return out


def svg(html: str, css_class: str) -> ET.Element:
    """The inline ``<svg class=...>`` of the page, parsed."""
    start = html.index(f'<svg xmlns="{SVG_NS}"')
    while f'class="{css_class}"' not in html[start : html.index(">", start)]:
        start = html.index(f'<svg xmlns="{SVG_NS}"', start + 1)
    end = html.index("</svg>", start) + len("</svg>")
    return ET.fromstring(html[start:end])


class _Table(HTMLParser):
    """The body rows of one ``<table class=...>``: each row's attributes and its cells'
    text by ``data-field``."""

    def __init__(self, css_class: str) -> None:
        super().__init__(convert_charrefs=True)
        self.css_class = css_class
        self.rows: list[tuple[dict[str, str], dict[str, str]]] = []
        self._inside = False
        self._body = False
        self._open: list[tuple[str, str | None, list[str]]] = []  # (tag, field, text parts)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {k: v or "" for k, v in attrs}
        if tag == "table" and self.css_class in found.get("class", "").split():
            self._inside = True
        if not self._inside:
            return
        if tag == "tbody":
            self._body = True
        elif tag == "tr" and self._body:
            self.rows.append((found, {}))
        if tag not in VOID:
            self._open.append((tag, found.get("data-field"), []))

    def handle_data(self, data: str) -> None:
        for _, _, parts in self._open:
            parts.append(data)

    def handle_endtag(self, tag: str) -> None:
        if not self._inside:
            return
        while self._open:
            open_tag, field, parts = self._open.pop()
            if field is not None and self.rows:
                self.rows[-1][1][field] = " ".join("".join(parts).split())
            if open_tag == tag:
                break
        if tag == "tbody":
            self._body = False
        elif tag == "table":
            self._inside = False


def table(html: str, css_class: str) -> list[tuple[dict[str, str], dict[str, str]]]:
    """The body rows of the page's ``<table class=css_class>``: (row attributes, cells)."""
    parser = _Table(css_class)
    parser.feed(html)
    parser.close()
    assert parser.rows or f'class="{css_class}"' in html, f"no table {css_class!r}"
    return parser.rows
