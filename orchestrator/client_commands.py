"""CLI commands that talk to a running API: deploy journeys, show a funnel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx


def _expand(paths: list[Path]) -> list[Path]:
    """Files as given; a directory stands for its journey files, sorted."""
    out: list[Path] = []
    for path in paths:
        if path.is_dir():
            out.extend(sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml")))
        else:
            out.append(path)
    return out


def deploy_files(base: str, token: str, files: list[Path]) -> int:
    """POST each journey file (or a directory's) to the API; prints versions or errors."""
    failed = 0
    files = _expand(files)
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        for path in files:
            try:
                source = path.read_text(encoding="utf-8")
            except OSError as exc:
                print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
                failed += 1
                continue
            try:
                response = http.post(
                    "/api/journeys", content=source, headers={"Content-Type": "application/yaml"}
                )
            except httpx.TransportError as exc:
                print(f"cannot reach the API at {base}: {exc}", file=sys.stderr)
                return 2
            body = response.json()
            if response.status_code == 201:
                state = "activated" if body["activated"] else "already active"
                print(f"{path}: {body['id']} version {body['version']} {state}")
                continue
            failed += 1
            print(f"{path}: {body.get('message', response.status_code)}", file=sys.stderr)
            for field in body.get("fields", []):
                line = f":{field['line']}" if field.get("line") else ""
                print(f"  {path}{line}: {field['field']}: {field['message']}", file=sys.stderr)
    return 1 if failed else 0


def format_funnel(funnel: dict[str, Any]) -> str:
    header = (
        f"{'stage':<15}{'entered':>9}{'now':>7}{'converted':>11}"
        f"{'rate':>8}{'moved on':>10}{'exited':>8}"
    )
    lines = [f"Funnel of {funnel['journey_id']}", header, "-" * len(header)]
    for s in funnel["stages"]:
        lines.append(
            f"{s['stage']:<15}{s['entered']:>9}{s['current']:>7}{s['converted']:>11}"
            f"{s['conversion_rate']:>8.1%}{s['moved_on']:>10}{s['exited']:>8}"
        )
    return "\n".join(lines)


def show_funnel(base: str, token: str, journey: str) -> int:
    try:
        response = httpx.get(
            f"{base}/api/journeys/{journey}/funnel",
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.TransportError as exc:
        print(f"cannot reach the API at {base}: {exc}", file=sys.stderr)
        return 2
    if response.status_code != 200:
        print(response.json().get("message", response.text), file=sys.stderr)
        return 1
    print(format_funnel(response.json()))
    return 0
