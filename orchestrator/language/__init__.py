"""The journey language: YAML journey files compiled into versioned ``Plan``s.

``compile_file`` and ``compile_source`` return a plan or raise ``JourneyError``, whose
``diagnostics`` name file, line, column and place of every problem found.
"""

from .compiler import build_plan, compile_file, compile_source, validate_paths
from .durations import DurationError, format_duration, parse_duration
from .locations import Diagnostic, JourneyError
from .plans import DEFAULT_MAX_DWELL_SECONDS, canonical_form, plan_hash

__all__ = [
    "DEFAULT_MAX_DWELL_SECONDS",
    "Diagnostic",
    "DurationError",
    "JourneyError",
    "build_plan",
    "canonical_form",
    "compile_file",
    "compile_source",
    "format_duration",
    "parse_duration",
    "plan_hash",
    "validate_paths",
]
