"""Render message templates with Jinja2 in a sandbox.

Templates come from journey definitions and the values from customer events, so rendering
runs in Jinja2's immutable sandbox: no attributes starting with ``_``, no unsafe callables,
no mutating the context (``{{ profile.update(...) }}``). Undefined names are errors
(``StrictUndefined``) so a typo fails loudly instead of sending "Hi ,"; the ``default``
filter still works for values that may legitimately be missing.

HTML is autoescaped; subject and text are not, because escaping there would show ``&amp;``
to the reader. Any failure becomes a ``RenderError`` naming the part that failed.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, Literal, NamedTuple

import jinja2
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ConfigDict

from .errors import RenderError

Part = Literal["subject", "body", "html"]


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


class CacheInfo(NamedTuple):
    """Compiled-template cache statistics."""

    hits: int
    misses: int
    size: int
    maxsize: int


def _environment(*, autoescape: bool) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=jinja2.StrictUndefined,
        autoescape=autoescape,
        # Templates are single strings; there is nothing to load or reload.
        auto_reload=False,
        cache_size=0,
    )


def one_line(text: str) -> str:
    """Collapse ``text`` to one line: each line stripped, blank lines dropped, joined by spaces.

    ``splitlines`` also splits on the other Unicode line breaks, none of which may reach a
    mail header.
    """
    return " ".join(stripped for line in text.splitlines() if (stripped := line.strip()))


class Renderer:
    """Renders templates in a sandbox, compiling each distinct source once (LRU cache).

    Safe to share between threads and tasks: compiled templates are immutable and the cache
    is guarded by a lock.
    """

    def __init__(self, *, cache_size: int = 512) -> None:
        if cache_size < 1:
            raise ValueError("cache_size must be at least 1")
        self._environments = {
            False: _environment(autoescape=False),
            True: _environment(autoescape=True),
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

    def render(
        self,
        source: str,
        context: Mapping[str, Any],
        *,
        part: str = "template",
        html: bool = False,
    ) -> str:
        """Render one template source; ``html`` turns autoescaping on.

        ``part`` only names the template in the error message.
        """
        template = self._compiled(source, html=html, part=part)
        try:
            return template.render(dict(context))
        except jinja2.TemplateError as exc:
            raise RenderError(f"{part} template failed: {exc}", part=part) from exc
        except Exception as exc:
            # Anything else is also the template's doing ({{ 1 / 0 }}, {{ name + 1 }}) and
            # fails the same way on every retry, so it is a RenderError too.
            message = f"{part} template failed: {type(exc).__name__}: {exc}"
            raise RenderError(message, part=part) from exc

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
        try:
            template = self._environments[html].from_string(source)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(
                f"{part} template has a syntax error on line {exc.lineno}: {exc.message}",
                part=part,
            ) from exc
        except jinja2.TemplateError as exc:
            raise RenderError(f"{part} template failed to compile: {exc}", part=part) from exc
        with self._lock:
            self._cache[key] = template
            self._cache.move_to_end(key)
            while len(self._cache) > self._maxsize:
                self._cache.popitem(last=False)
        return template
