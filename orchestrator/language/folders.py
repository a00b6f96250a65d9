"""Journey folders on disk: which files are journeys, the segment ids declared beside them,
and reading a file's text.

A folder of journeys holds ``*.yaml``/``*.yml`` journey files, configuration files (customer
data settings) and a ``segments/`` folder of segment and persona files.
"""

from __future__ import annotations

from pathlib import Path as FilePath

import yaml

from journeyman.orchestrator.customers.settings import SETTINGS_FILES

from .locations import Diagnostic, JourneyError

JOURNEY_SUFFIXES = (".yaml", ".yml")
# Beside the journeys: the folder of segment and persona files, and configuration files
# (customer data settings) that are neither journeys nor segments.
SEGMENTS_FOLDER = "segments"
CONFIGURATION_FILES = frozenset(SETTINGS_FILES)


def read_source(path: FilePath) -> str:
    """The text of a journey or segment file; unreadable files raise ``JourneyError``."""
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise JourneyError([file_problem(path, "no such file or directory")]) from None
    except UnicodeDecodeError:
        raise JourneyError([file_problem(path, "the file is not valid UTF-8")]) from None
    except OSError as exc:
        raise JourneyError([file_problem(path, exc.strerror or str(exc))]) from None


def yaml_files(folder: FilePath) -> list[FilePath]:
    """A folder's ``*.yaml``/``*.yml`` files, sorted, not descending into sub-folders."""
    # Hidden files are editor backups and lock files, never journeys or segments.
    return sorted(
        child
        for child in folder.iterdir()
        if child.suffix in JOURNEY_SUFFIXES and child.is_file() and not child.name.startswith(".")
    )


def journey_files(path: FilePath) -> list[FilePath]:
    """A file as given; a directory stands for its journey files (configuration files such as
    ``customers.yaml`` and the ``segments/`` folder are not journeys)."""
    if not path.is_dir():
        return [path]
    return [file for file in yaml_files(path) if file.name not in CONFIGURATION_FILES]


def segment_ids(folder: FilePath) -> frozenset[str] | None:
    """The segment ids declared in ``folder``'s ``segments/`` files; None without that folder.

    Only each file's ``id`` is read: a segment file with other errors still declares its id,
    so a journey naming it gets no second, misleading error.
    """
    segments = folder / SEGMENTS_FOLDER
    if not segments.is_dir():
        return None
    found: set[str] = set()
    for file in yaml_files(segments):
        try:
            data = yaml.safe_load(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, yaml.YAMLError):
            continue
        if isinstance(data, dict) and isinstance(data.get("id"), str):
            found.add(data["id"])
    return frozenset(found)


def file_problem(path: FilePath, message: str) -> Diagnostic:
    """A problem with a whole file (missing, unreadable): no line, no place in it."""
    return Diagnostic(str(path), None, None, "", message)
