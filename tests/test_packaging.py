"""Installing Journeyman adds one top-level name, `journeyman`, so it can sit beside Django
Channels (`channels`) or any other distribution with generic package names."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_the_wheel_installs_only_the_journeyman_package(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    [wheel] = tmp_path.glob("journeyman-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    top_level = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert top_level == {"journeyman"}
    for package in ("orchestrator", "workflows", "channels"):
        assert f"journeyman/{package}/__init__.py" in names
    assert "journeyman/orchestrator/storage/migrations/0001_initial.sql" in names
    # Every file the API serves or renders (snippet, stylesheet, templates) ships with it.
    served = [
        path
        for folder in ("static", "templates")
        for path in (REPO / "orchestrator" / "api" / folder).rglob("*")
        if path.is_file()
    ]
    assert any(path.suffix == ".css" for path in served)
    missing = [
        str(path.relative_to(REPO))
        for path in served
        if f"journeyman/{path.relative_to(REPO).as_posix()}" not in names
    ]
    assert missing == []
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert (
        "journeyman = journeyman.orchestrator.cli:main"
        in zipfile.ZipFile(wheel).read(entry_points).decode()
    )
