"""Which translation of a message a customer gets: the locale's variants, most specific first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

T = TypeVar("T")


def locale_candidates(locale: str | None) -> list[str]:
    """The variants to try for a locale, most specific first: ``zh-Hant-TW`` gives
    ``zh-hant-tw``, ``zh-hant``, ``zh`` (then the caller's default). Tags are lowercase with
    ``-``, as journeys spell them; ``zh_TW`` counts as ``zh-tw``."""
    if not locale:
        return []
    parts = [p for p in locale.strip().replace("_", "-").lower().split("-") if p]
    return ["-".join(parts[:n]) for n in range(len(parts), 0, -1)]


def pick_locale(variants: Mapping[str, T], locale: str | None) -> T | None:
    """The variant for ``locale`` with fallback to shorter tags; None means the default."""
    for candidate in locale_candidates(locale):
        if candidate in variants:
            return variants[candidate]
    return None
