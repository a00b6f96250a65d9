"""Capturing what the process's log handler writes, and putting logging back afterwards."""

from __future__ import annotations

import io
import logging
import sys
from collections.abc import Callable, Iterator

import pytest

from journeyman.orchestrator.observability.logs import (
    QUIET_LOGGERS,
    LogFormat,
    configure_logging,
    formatter_for,
)

Capture = Callable[[LogFormat], io.StringIO]


@pytest.fixture
def captured_logs() -> Iterator[Capture]:
    """``capture(format)``: the log output in that format from now on, as the CLI sets it up
    (the default level, libraries at WARNING). The first call installs the handler the CLI
    installs; later ones add a handler with the other format beside it."""
    root = logging.getLogger()
    excepthook = sys.excepthook  # the CLI's set-up replaces it
    levels = {name: logging.getLogger(name).level for name in ("", *QUIET_LOGGERS)}
    added: list[logging.Handler] = []

    def capture(log_format: LogFormat) -> io.StringIO:
        stream = io.StringIO()
        if not added:
            added.append(configure_logging(level="INFO", log_format=log_format, stream=stream))
        else:
            handler = logging.StreamHandler(stream)
            handler.setFormatter(formatter_for(log_format))
            root.addHandler(handler)
            added.append(handler)
        return stream

    yield capture
    for handler in added:
        root.removeHandler(handler)
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)
    sys.excepthook = excepthook
