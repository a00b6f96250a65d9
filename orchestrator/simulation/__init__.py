"""Project a journey's funnel by running it for a synthetic population on simulated time.

The journey workflow is the production one, unchanged, on Temporal's time-skipping test
server; only its activities are replaced by in-memory ones with the same names and types.
Customers come from a scenario file (``scenario``) and react to stages and messages after
random delays, as seeded draws (``customers``). ``simulate`` returns a ``Report``.

Errors::

    SimulationError          the simulation cannot run
    ├── ScenarioError        the scenario file has problems (``diagnostics``: file, line, place)
    └── ServerMissing        the time-skipping test server is not installed
"""

from .errors import ScenarioError, ServerMissing, SimulationError
from .report import Report, format_report
from .runner import DEFAULT_HORIZON_SECONDS, Tuning, simulate
from .scenario import NOBODY_REACTS, Scenario, load_scenario, parse_scenario

__all__ = [
    "DEFAULT_HORIZON_SECONDS",
    "NOBODY_REACTS",
    "Report",
    "Scenario",
    "ScenarioError",
    "ServerMissing",
    "SimulationError",
    "Tuning",
    "format_report",
    "load_scenario",
    "parse_scenario",
    "simulate",
]
