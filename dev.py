#!/usr/bin/env python3
"""Bootstrap and run Journeyman from a fresh clone with nothing but python3.

    python3 dev.py demo   # embedded stack, journeys deployed, synthetic traffic, live funnel
    python3 dev.py test   # the whole test suite (what CI runs)
    python3 dev.py lint   # ruff and mypy
    python3 dev.py bench  # benchmarks (bench/README.md)
    python3 dev.py journeyman ARGS...   # any CLI command inside the project's environment

The first call creates `.venv/` beside this file and installs the project into it; later
calls reinstall only when `pyproject.toml` changed.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / "bin"
STAMP = VENV / ".journeyman-installed"


def _ensure_env() -> None:
    wanted = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    if STAMP.exists() and STAMP.read_text() == wanted:
        return
    if not (BIN / "python").exists():
        print(f"Creating {VENV} ...", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    pip = [str(BIN / "python"), "-m", "pip", "--disable-pip-version-check", "-q"]
    print("Installing Journeyman and its tools (first run only) ...", flush=True)
    subprocess.run([*pip, "install", "-U", "pip", "setuptools>=77", "wheel"], check=True)
    subprocess.run([*pip, "install", "-e", f"{ROOT}[test]"], check=True)
    STAMP.write_text(wanted)


CHROMIUM = Path("/usr/bin/chromium")


def _ensure_chromium() -> None:
    """Debian's Chromium for the browser tests (tests/browser), installed with apt-get as root."""
    if CHROMIUM.exists():
        return
    if getattr(os, "geteuid", lambda: -1)() != 0:
        print(
            f"{CHROMIUM} is missing, so the browser tests will be skipped. To run them, install"
            " Debian's Chromium: sudo apt-get install -y chromium",
            file=sys.stderr,
        )
        return
    print("Installing Debian's chromium package for the browser tests (apt-get) ...", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "install", "-y", "-q", "chromium"]
    # A fresh machine has no package lists yet: read them once, then try again.
    if subprocess.run(install, env=env).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env)
        subprocess.run(install, env=env)
    if not CHROMIUM.exists():
        print(
            "Could not install chromium with apt-get (see above): the browser tests will be"
            " skipped.",
            file=sys.stderr,
        )


def _run(argv: list[str]) -> int:
    env = dict(os.environ, PATH=f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}")
    return subprocess.run(argv, cwd=ROOT, env=env).returncode


def main(args: list[str]) -> int:
    if not args or args[0] in {"-h", "--help", "help"}:
        print(__doc__)
        return 0 if args else 2
    _ensure_env()
    command, rest = args[0], args[1:]
    python = str(BIN / "python")
    if command == "demo":
        return _run([str(BIN / "journeyman"), "demo", *rest])
    if command == "test":
        _ensure_chromium()
        if rest:
            return _run([python, "-m", "pytest", *rest])
        # Most tests wait on their servers (Postgres, Temporal, SMTP), so several processes
        # share the cores well; each has its own servers. The fault drills time real restarts
        # and kills, so they run alone afterwards. The browser tests run in a process of their
        # own: Playwright's driver and Chromium share nothing with the other servers.
        processes = str(max(2, min(os.cpu_count() or 1, 4)))
        parallel = ["-n", processes, "--dist", "loadfile"]
        code = _run(
            [python, "-m", "pytest", *parallel, "--ignore=tests/browser", "--ignore=tests/faults"]
        )
        code |= _run([python, "-m", "pytest", "tests/faults"])
        return code | _run([python, "-m", "pytest", "tests/browser"])
    if command == "lint":
        code = _run([python, "-m", "ruff", "check", "."])
        code |= _run([python, "-m", "ruff", "format", "--check", "."])
        code |= _run([python, "-m", "mypy", "-p", "journeyman"])
        return code | _run([python, "-m", "mypy", "tests", "bench"])
    if command == "bench":
        return _run([python, "-m", "bench", *rest])
    if command == "journeyman":
        return _run([str(BIN / "journeyman"), *rest])
    print(f"unknown command {command!r}\n{__doc__}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
