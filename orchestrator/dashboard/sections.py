"""The journey page's sections, each in the slot of ``views.SECTIONS`` named after it.

Importing this module fills the slots (the package's ``__init__`` does); a test can still
swap a slot's hook for its own.
"""

from __future__ import annotations

from .emotions_section import emotions
from .exits_section import exits_and_cohorts
from .experiments_section import experiments
from .views import SECTIONS, SectionHook

HOOKS: dict[str, SectionHook] = {
    "exits_and_cohorts": exits_and_cohorts,
    "experiments": experiments,
    "emotions": emotions,
}
SECTIONS.update(HOOKS)
