"""Render message templates with Jinja2 in a strict, bounded sandbox.

Templates come from journey definitions and the values from customer events, so rendering
runs in Jinja2's immutable sandbox: no attributes starting with ``_``, no mutating the
context (``{{ profile.update(...) }}``), no ``str.format`` field access to private names.
On top of it:

- **Strict undefined.** A missing value is an error naming it (``'profile.nickname' is
  undefined``) so a typo fails loudly instead of sending "Hi ,". ``| default("there")``
  and ``is defined`` are the explicit ways to allow a missing value.
- **Calls are allow-listed.** A template may call macros, ``loop``/``cycler``/``joiner``/
  ``namespace``/``range``/``dict`` and the plain text methods of strings (``upper``,
  ``split``, ``replace``...) and mappings (``get``, ``items``...); nothing else.
- **Work is bounded.** Loop iterations, calls, filters and operators count against an
  operation budget; every value the template builds (``"a" * n``, ``~``, ``replace``,
  ``join``, ``center``, format widths) is sized before it is built; the output is cut off
  past a limit. A template over a limit fails cleanly instead of taking the worker down.

HTML is autoescaped; subject and text are not, because escaping there would show ``&amp;``
to the reader. Text templates get a ``tojson`` filter that writes plain JSON (for webhook
bodies); HTML templates keep Jinja's HTML-safe one. Any failure becomes a
``TemplateRenderError`` (a ``RenderError``) naming the part, the line and the reason.

This module holds the ``Renderer`` (compiling, caching, rendering a message's fields per
channel) and names the public API of the pieces beside it: ``message_templates`` (what a send
renders), ``template_context`` (what templates read), ``locales`` (which translation),
``sandbox`` (the environment), ``sized_operations`` and ``render_budget`` (the bounds) and
``render_errors`` (what a failure says).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import jinja2
from jinja2 import nodes
from jinja2.exceptions import TemplateSyntaxError

from .locales import locale_candidates, pick_locale
from .message_templates import (
    CHANNEL_FIELDS,
    EmailTemplate,
    MessageTemplate,
    RenderedEmail,
    RenderedMessage,
)
from .render_budget import (
    BUDGET,
    MAX_FORMAT_WIDTH,
    MAX_INT_BITS,
    Budget,
    LimitExceeded,
    RenderLimits,
)
from .render_errors import Reason, TemplateRenderError, failure
from .sandbox import SafeEnvironment
from .sized_operations import Guard
from .template_context import template_context

__all__ = [
    "CHANNEL_FIELDS",
    "MAX_FORMAT_WIDTH",
    "MAX_INT_BITS",
    "CacheInfo",
    "EmailTemplate",
    "LimitExceeded",
    "MessageTemplate",
    "Part",
    "Reason",
    "RenderLimits",
    "RenderedEmail",
    "RenderedMessage",
    "Renderer",
    "TemplateRenderError",
    "locale_candidates",
    "one_line",
    "pick_locale",
    "render_text",
    "template_context",
]

Part = Literal["subject", "body", "html"]


class CacheInfo(NamedTuple):
    """Compiled-template cache statistics."""

    hits: int
    misses: int
    size: int
    maxsize: int


def one_line(text: str) -> str:
    """Collapse ``text`` to one line: each line stripped, blank lines dropped, joined by spaces.

    ``splitlines`` also splits on the other Unicode line breaks, none of which may reach a
    mail header.
    """
    return " ".join(stripped for line in text.splitlines() if (stripped := line.strip()))


class Renderer:
    """Renders templates in a sandbox, compiling each distinct source once (LRU cache).

    Safe to share between threads and tasks: compiled templates are immutable, the cache
    is guarded by a lock, and each render's budget lives in a context variable.
    """

    def __init__(self, *, cache_size: int = 512, limits: RenderLimits | None = None) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self.limits = limits or RenderLimits()
        self._environments = {
            False: SafeEnvironment(autoescape=False),
            True: SafeEnvironment(autoescape=True),
        }
        # Keyed by escaping mode too: the same source compiles differently with autoescape.
        self._cache: OrderedDict[tuple[bool, str], jinja2.Template] = OrderedDict()
        self._maxsize = cache_size
        self._lock = threading.Lock()
        self._hits = 0
        self._misses = 0

    def render_email(self, template: EmailTemplate, context: Mapping[str, Any]) -> RenderedEmail:
        """Render subject, body and html with ``context``; raise ``RenderError`` on failure."""
        subject = one_line(self.render(template.subject, context, part="subject"))
        text = self.render(template.body, context, part="body")
        html = None
        if template.html is not None:
            html = self.render(template.html, context, part="html", html=True)
        return RenderedEmail(subject=subject, text=text, html=html)

    def render_text(self, source: str, context: Mapping[str, Any], *, part: str = "text") -> str:
        """Render a text template (SMS, push, in-app, webhook body): no HTML escaping, and
        ``| tojson`` writes plain JSON."""
        return self.render(source, context, part=part)

    def render_message(
        self, channel: str, template: MessageTemplate, context: Mapping[str, Any]
    ) -> RenderedMessage:
        """Render the fields ``channel`` reads; ``RenderError`` names the failing part
        (``subject``, or ``title`` for push and in-app; ``data.cta``, ``headers.X-Token``...).

        ``ValueError`` when the template fills a field the channel does not read (an SMS
        with a subject), since that text would silently go nowhere.
        """
        fields = CHANNEL_FIELDS.get(channel)
        if fields is None:
            raise ValueError(f"unknown channel {channel!r}; one of {', '.join(CHANNEL_FIELDS)}")
        stray = sorted(
            name
            for name in template.model_fields_set
            if getattr(template, name) and name not in fields
        )
        if stray:
            raise ValueError(f"{channel} messages have no {' or '.join(stray)}")
        out: dict[str, Any] = {}
        if "subject" in fields:
            # Push and in-app messages call it a title, as the send path's errors do.
            part = "subject" if channel == "email" else "title"
            out["subject"] = one_line(self.render(template.subject, context, part=part))
        out["body"] = self.render(template.body, context, part="body")
        if "html" in fields and template.html is not None:
            out["html"] = self.render(template.html, context, part="html", html=True)
        if "data" in fields:
            out["data"] = {
                k: self.render(v, context, part=f"data.{k}") for k, v in template.data.items()
            }
        if "url" in fields and template.url is not None:
            out["url"] = one_line(self.render(template.url, context, part="url"))
        if "headers" in fields:
            out["headers"] = {
                k: one_line(self.render(v, context, part=f"headers.{k}"))
                for k, v in template.headers.items()
            }
        return RenderedMessage(**out)

    def render(
        self,
        source: str,
        context: Mapping[str, Any],
        *,
        part: str = "template",
        html: bool = False,
    ) -> str:
        """Render one template source; ``html`` turns autoescaping on.

        ``part`` names the template in the error message.
        """
        template = self._compiled(source, html=html, part=part)
        values = dict(context)
        token = BUDGET.set(Budget(self.limits, values))
        try:
            chunks: list[str] = []
            size = 0
            for chunk in template.generate(values):
                size += len(chunk)
                if size > self.limits.max_output_chars:
                    raise LimitExceeded(
                        f"output is longer than {self.limits.max_output_chars} characters"
                    )
                chunks.append(chunk)
            return "".join(chunks)
        except Exception as exc:
            raise failure(part, exc) from exc
        finally:
            BUDGET.reset(token)

    def cache_info(self) -> CacheInfo:
        """Hits, misses and size of the compiled-template cache."""
        with self._lock:
            return CacheInfo(self._hits, self._misses, len(self._cache), self._maxsize)

    def _compiled(self, source: str, *, html: bool, part: str) -> jinja2.Template:
        key = (html, source)
        with self._lock:
            template = self._cache.get(key)
            if template is not None:
                self._cache.move_to_end(key)
                self._hits += 1
                return template
            self._misses += 1
        # Compile outside the lock: two threads may compile the same source at once, which
        # costs a little work but never blocks renders of cached templates.
        environment = self._environments[html]
        token = BUDGET.set(Budget(self.limits, {}))
        try:
            tree: nodes.Template = Guard().visit(environment.parse(source))
            template = environment.from_string(tree)
        except TemplateSyntaxError as exc:
            raise TemplateRenderError(
                f"{part} template has a syntax error on line {exc.lineno}: {exc.message}",
                part=part,
                line=exc.lineno,
                reason="syntax",
            ) from exc
        except jinja2.TemplateError as exc:
            raise TemplateRenderError(
                f"{part} template failed to compile: {exc}", part=part, line=None, reason="error"
            ) from exc
        finally:
            BUDGET.reset(token)
        with self._lock:
            self._cache[key] = template
            self._cache.move_to_end(key)
            while len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return template


_default_renderer = Renderer()


def render_text(template: str, context: Mapping[str, Any], *, part: str = "text") -> str:
    """Render a text template (SMS, push title and body, webhook body) with a shared renderer.

    No HTML escaping; ``| tojson`` writes plain JSON. Raises ``RenderError`` on failure.
    """
    return _default_renderer.render_text(template, context, part=part)
