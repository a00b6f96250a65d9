"""The simulation's errors; see the package docstring for the hierarchy."""

from __future__ import annotations

from collections.abc import Sequence

from journeyman.orchestrator.language.locations import Diagnostic


class SimulationError(Exception):
    """A simulation that cannot run; the message says why, for the person who started it."""


class ScenarioError(SimulationError, ValueError):
    """A scenario file with problems; ``diagnostics`` names file, line, column and place."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sorted(diagnostics, key=lambda d: (d.file, d.line or 0, d.column or 0))
        super().__init__("\n".join(str(d) for d in self.diagnostics))


class ServerMissing(SimulationError):
    """The Temporal time-skipping test server binary is not installed."""
