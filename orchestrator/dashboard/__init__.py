"""The dashboard's content: the journey map and charts as SVG, the pages' data, live numbers.

The HTTP side (sign-in, pages, the event stream) is ``orchestrator.api.routes.dashboard``;
this package does no HTTP, so its drawings and readings are tested on their own.
"""

from . import charts, formatting, metro, session, time_charts
from .board import Board, Stage, Station, Totals, build, numbers
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
    "Feeds",
    "JourneyPage",
    "JourneyReader",
    "JourneyRef",
    "JourneyRow",
    "SectionHook",
    "Stage",
    "Station",
    "Totals",
    "UnknownJourney",
    "build",
    "charts",
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
    "session",
    "stream",
    "time_charts",
]
