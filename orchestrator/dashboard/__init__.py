"""The dashboard's content: the journey map and charts as SVG, the pages' data, live numbers.

The journey page's sections (exits and cohorts, experiments and holdout, the emotion curve)
fill their slots when this package is imported (``sections``); the compare page puts two
versions side by side (``comparison``).

The HTTP side (sign-in, pages, the event stream) is ``orchestrator.api.routes.dashboard``;
this package does no HTTP, so its drawings and readings are tested on their own.
"""

from . import charts, formatting, metro, session, time_charts
from . import sections as sections  # fills the journey page's section slots
from .board import Board, Measure, Observed, Stage, Station, Totals, build, numbers
from .comparison import ComparePage, SameVersion, compare_page
from .live import Feeds, JourneyReader, stream
from .readings import has_version, page_numbers, read_board
from .views import (
    SECTIONS,
    JourneyPage,
    JourneyRef,
    JourneyRow,
    SectionHook,
    UnknownJourney,
    customer_exists,
    customer_page,
    journey_page,
    journeys_list,
)

__all__ = [
    "SECTIONS",
    "Board",
    "ComparePage",
    "Feeds",
    "JourneyPage",
    "JourneyReader",
    "JourneyRef",
    "JourneyRow",
    "Measure",
    "Observed",
    "SameVersion",
    "SectionHook",
    "Stage",
    "Station",
    "Totals",
    "UnknownJourney",
    "build",
    "charts",
    "compare_page",
    "customer_exists",
    "customer_page",
    "formatting",
    "has_version",
    "journey_page",
    "journeys_list",
    "metro",
    "numbers",
    "page_numbers",
    "read_board",
    "sections",
    "session",
    "stream",
    "time_charts",
]
