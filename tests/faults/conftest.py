"""Fault drills: a seed per test (printed when it fails, so the same faults can be replayed),
and a directory for a whole deployment's data and logs."""

from __future__ import annotations

import os
import random
import shutil
import tempfile
from collections.abc import Callable, Generator, Iterator
from pathlib import Path

import pytest

SEED_VARIABLE = "JOURNEYMAN_FAULT_SEED"
# What a failed drill adds to its report: the seed, and what happened when.
REPORT = pytest.StashKey[list[tuple[str, Callable[[], str]]]]()
FAILED = pytest.StashKey[bool]()


@pytest.fixture
def fault_seed(request: pytest.FixtureRequest) -> int:
    """The drill's seed: ``JOURNEYMAN_FAULT_SEED`` when set, else a fresh one."""
    given = os.environ.get(SEED_VARIABLE)
    seed = int(given) if given else random.SystemRandom().randrange(2**32)
    rerun = f"{SEED_VARIABLE}={seed} python3 dev.py test {request.node.nodeid}"
    drill_report(
        request, "fault seed", lambda: f"seed {seed}; replay the same faults with:\n{rerun}"
    )
    return seed


def drill_report(request: pytest.FixtureRequest, title: str, text: Callable[[], str]) -> None:
    """Show ``text()`` under ``title`` if the test fails."""
    request.node.stash.setdefault(REPORT, []).append((title, text))


@pytest.fixture
def drill_dir(request: pytest.FixtureRequest) -> Iterator[Path]:
    """A directory for a drill's servers, that the unprivileged user Postgres runs as (when
    we are root) can enter. When the test fails, every log in it is kept under /tmp.

    In memory (tmpfs) where there is one: the Temporal dev server writes its SQLite file
    synchronously, and on a shared disk that alone makes a drill take twice as long. A
    process restart keeps the files all the same, which is all a drill needs.
    """
    base = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None
    path = Path(tempfile.mkdtemp(prefix="jm-faults-", dir=base))
    path.chmod(0o755)
    kept = Path(tempfile.gettempdir()) / f"{path.name}-logs"
    drill_report(request, "logs", lambda: f"every process's log is kept in {kept}")
    yield path
    if request.node.stash.get(FAILED, False):
        for log in path.rglob("*.log"):
            target = kept / log.relative_to(path)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, target)
    shutil.rmtree(path, ignore_errors=True)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        item.stash[FAILED] = True
        for title, text in item.stash.get(REPORT, []):
            report.sections.append((title, text()))
    return report
