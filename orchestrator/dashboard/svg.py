"""Building SVG with the standard library: elements, the palette, the shared hatch pattern.

Charts are built as ``xml.etree`` trees and serialised once, so every label is escaped and
every document is well-formed; tests parse the same text back.

Colours come from the Okabe-Ito palette, which stays distinguishable with the common forms
of colour blindness. Colour is never the only carrier of meaning: every chart pairs it with
a shape, a pattern or a text label.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from typing import Final

SVG_NS: Final = "http://www.w3.org/2000/svg"

# Okabe & Ito (2008), "Color Universal Design".
ORANGE: Final = "#E69F00"
SKY_BLUE: Final = "#56B4E9"
BLUISH_GREEN: Final = "#009E73"
YELLOW: Final = "#F0E442"
BLUE: Final = "#0072B2"
VERMILLION: Final = "#D55E00"
REDDISH_PURPLE: Final = "#CC79A7"
BLACK: Final = "#000000"
# Stage lines, in order; yellow is left out: too light for a thin line on white.
LINE_COLOURS: Final = (BLUE, ORANGE, BLUISH_GREEN, REDDISH_PURPLE, SKY_BLUE, VERMILLION)
INK: Final = "#1d1d1f"
MUTED: Final = "#5f6368"  # 6:1 on white, readable for small labels
TRACK: Final = "#e6e6e6"
WARN_GROUND: Final = "#fdf0e6"  # the pale ground of the drop-off mark
WARN_TEXT: Final = "#9c4200"  # vermillion darkened to 5.7:1 on that ground, for its label

# The pattern that marks the busiest drop-off, shared by every chart of a page.
HATCH_ID: Final = "jm-dropoff-hatch"
FONT: Final = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"

Attr = str | int | float | None


def _text(value: Attr) -> str:
    if isinstance(value, float):
        # Two decimals are plenty for coordinates and keep documents small.
        return f"{value:.2f}".rstrip("0").rstrip(".")
    return str(value)


def element(
    parent: ET.Element | None, tag: str, text: str | None = None, /, **attrs: Attr
) -> ET.Element:
    """A child of ``parent`` (or a root); ``attr_name`` becomes ``attr-name``, None is left out."""
    values = {
        name.rstrip("_").replace("_", "-"): _text(value)
        for name, value in attrs.items()
        if value is not None
    }
    node = ET.Element(tag, values) if parent is None else ET.SubElement(parent, tag, values)
    if text is not None:
        node.text = text
    return node


def root(width: float, height: float, *, title: str, description: str, **attrs: Attr) -> ET.Element:
    """An ``<svg>`` that scales to its box, announced to screen readers as one image."""
    svg = element(
        None,
        "svg",
        xmlns=SVG_NS,
        viewBox=f"0 0 {_text(width)} {_text(height)}",
        role="img",
        font_family=FONT,
        **attrs,
    )
    element(svg, "title", title)
    element(svg, "desc", description)
    return svg


def stripes(svg: ET.Element, pattern_id: str, *, ground: str, stripe: str) -> None:
    """A pattern of diagonal stripes on a ground: a fill that still reads in grey print.

    Pattern ids are global to the HTML page, so each chart names its own.
    """
    defs = element(svg, "defs")
    pattern = element(
        defs,
        "pattern",
        id=pattern_id,
        patternUnits="userSpaceOnUse",
        width=8,
        height=8,
        patternTransform="rotate(45)",
    )
    element(pattern, "rect", width=8, height=8, fill=ground)
    element(pattern, "line", x1=0, y1=0, x2=0, y2=8, stroke=stripe, stroke_width=3)


def hatch_pattern(svg: ET.Element) -> None:
    """Diagonal vermillion stripes on a pale ground: the drop-off mark, visible in grey too."""
    stripes(svg, HATCH_ID, ground=WARN_GROUND, stripe=VERMILLION)


def whisker(x1: float, x2: float, y: float, cap: float = 6) -> str:
    """An interval as a path: a line from ``x1`` to ``x2`` with a cap at each end."""
    top, tall = f"{y - cap:.1f}", f"{2 * cap:g}"
    return f"M{x1:.1f} {y:.1f}H{x2:.1f}M{x1:.1f} {top}v{tall}M{x2:.1f} {top}v{tall}"


def to_string(svg: ET.Element) -> str:
    return ET.tostring(svg, encoding="unicode")


def clip(text: str, limit: int) -> str:
    """``text`` cut to ``limit`` characters with an ellipsis (the full text goes in a title)."""
    return text if len(text) <= limit else text[: limit - 1] + "…"
