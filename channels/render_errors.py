"""What a failed render says: the part, the template line and the reason."""

from __future__ import annotations

from typing import Literal

import jinja2
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from .errors import RenderError
from .render_budget import LimitExceeded

Reason = Literal["syntax", "undefined", "unsafe", "too_large", "error"]


class TemplateRenderError(RenderError):
    """A template failed; ``line`` is the template line (None when unknown) and ``reason``
    says why: ``syntax``, ``undefined``, ``unsafe`` (refused by the sandbox), ``too_large``
    (over a ``RenderLimits`` bound) or ``error`` (anything else the template did)."""

    def __init__(self, message: str, *, part: str, line: int | None, reason: Reason) -> None:
        super().__init__(message, part=part)
        self.line = line
        self.reason = reason


def _template_line(exc: BaseException) -> int | None:
    """The template line an error was raised on, from the traceback Jinja rewrites."""
    if isinstance(exc, TemplateSyntaxError):
        return exc.lineno
    line = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def _reason(exc: BaseException) -> Reason:
    if isinstance(exc, LimitExceeded):
        return "too_large"
    if isinstance(exc, SecurityError):
        return "unsafe"
    if isinstance(exc, UndefinedError):
        return "undefined"
    return "error"


def failure(part: str, exc: BaseException) -> TemplateRenderError:
    """The error a render of ``part`` raises for ``exc``, whatever the template did."""
    line = _template_line(exc)
    where = f" on line {line}" if line is not None else ""
    reason = _reason(exc)
    # Anything but a template error is also the template's doing ({{ 1 / 0 }}, {{ n + "" }}).
    template_error = isinstance(exc, jinja2.TemplateError)
    detail = str(exc) if template_error else f"{type(exc).__name__}: {exc}"
    return TemplateRenderError(
        f"{part} template failed{where}: {detail}", part=part, line=line, reason=reason
    )
