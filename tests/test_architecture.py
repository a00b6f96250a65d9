"""Dependencies point one way: workflows and channels never import the HTTP layer, channels
stand alone, and workflow modules keep their side effects behind activities."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imports(package: str) -> dict[str, set[str]]:
    """Module file -> absolute names it imports (relative imports resolved)."""
    found: dict[str, set[str]] = {}
    for path in sorted((REPO / package).rglob("*.py")):
        names: set[str] = set()
        module_parts = ["journeyman", *path.relative_to(REPO).with_suffix("").parts]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module_parts[: len(module_parts) - node.level]
                    names.add(".".join([*base, node.module] if node.module else base))
                elif node.module:
                    names.add(node.module)
        found[str(path.relative_to(REPO))] = names
    return found


FORBIDDEN = {
    "workflows": ("journeyman.orchestrator.api", "fastapi", "starlette", "uvicorn"),
    "channels": ("journeyman.orchestrator", "journeyman.workflows", "fastapi", "temporalio"),
}


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_package_does_not_import_the_layers_above(package: str) -> None:
    offending = {
        module: sorted(n for n in names if n.startswith(FORBIDDEN[package]))
        for module, names in _imports(package).items()
    }
    assert {m: n for m, n in offending.items() if n} == {}


def test_nothing_imports_the_bare_generic_names() -> None:
    # `channels`, `workflows`, `orchestrator` would be whatever else is installed under
    # those names (Django Channels is `channels`): always go through `journeyman.`.
    generic = ("channels", "workflows", "orchestrator")
    offending = {}
    for package in ("orchestrator", "workflows", "channels", "tests", "bench"):
        if not (REPO / package).exists():
            continue
        for module, names in _imports(package).items():
            bad = [n for n in names if n.split(".")[0] in generic]
            if bad:
                offending[module] = bad
    assert offending == {}


def test_the_journey_workflow_module_does_no_io() -> None:
    names = _imports("workflows")["workflows/journey.py"]
    io = ("asyncpg", "httpx", "smtplib", "socket", "os", "time", "random", "datetime.datetime")
    assert sorted(n for n in names if n.startswith(io)) == []
