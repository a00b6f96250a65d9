"""CLI commands that talk to a running API: deploy segments and journeys, show a funnel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import httpx

from .customers.segment_files import discover


def deploy_files(base: str, token: str, files: list[Path]) -> int:
    """POST each segment file, then each journey file (a directory stands for its journey
    files and its ``segments/`` folder) to the API; prints versions or errors.

    Segments go first: journeys enter, exit and wait on them.
    """
    failed = 0
    found = discover(files)
    for path in found.skipped:
        print(f"{path}: skipped (a configuration file, neither a journey nor a segment)")
    uploads = [(path, "/api/segments") for path in found.segments]
    uploads += [(path, "/api/journeys") for path in found.journeys]
    with httpx.Client(
        base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=30
    ) as http:
        for path, route in uploads:
            try:
                source = path.read_text(encoding="utf-8")
            except OSError as exc:
                print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
                failed += 1
                continue
            try:
                response = http.post(
                    route, content=source, headers={"Content-Type": "application/yaml"}
                )
            except httpx.TransportError as exc:
                print(f"cannot reach the API at {base}: {exc}", file=sys.stderr)
                return 2
            try:
                body = response.json()
            except ValueError:
                body = {"message": f"{response.status_code} {response.text[:200]}"}
            if response.status_code == 201 and route == "/api/segments":
                print(f"{path}: segment {body['id']} version {body['version']} {body['result']}")
                continue
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
    """The funnel as a table, then why customers left each stage without converting."""
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
    # An older API has no exits_by_reason: the table alone is still the whole funnel.
    reasons = [(s["stage"], s.get("exits_by_reason") or {}) for s in funnel["stages"]]
    if any(by_reason for _, by_reason in reasons):
        lines += ["", "Left without converting, by reason"]
        for stage, by_reason in reasons:
            if by_reason:
                said = ", ".join(f"{reason} {n}" for reason, n in by_reason.items())
                lines.append(f"{stage:<15}{said}")
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


class ApiClient:
    """A small admin client for the CLI: JSON in, JSON out, errors printed plainly."""

    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self._http = httpx.Client(
            base_url=base, headers={"Authorization": f"Bearer {token}"}, timeout=60
        )

    def call(self, method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise SystemExit(f"cannot reach the API at {self.base}: {exc}") from None
        try:
            body = response.json()
        except ValueError:
            body = {"message": response.text}
        return response.status_code, body


def _fail(status: int, body: Any) -> int:
    message = body.get("message", status) if isinstance(body, dict) else status
    print(f"journeyman: {message}", file=sys.stderr)
    for field in body.get("fields", []) if isinstance(body, dict) else []:
        print(f"  {field.get('field')}: {field.get('message')}", file=sys.stderr)
    return 1


def set_status(api: ApiClient, journey: str, action: str) -> int:
    """pause, resume or archive."""
    status, body = api.call("POST", f"/api/journeys/{journey}/{action}")
    if status != 200:
        return _fail(status, body)
    print(f"{body['id']}: {body['status']}")
    return 0


def format_diff(body: dict[str, Any]) -> str:
    old = body.get("from_version") or "(not deployed)"
    lines = [f"{body['journey_id']}: {old} -> {body['to_version']}"]
    if body.get("unchanged"):
        lines.append("  no changes")
        return "\n".join(lines)
    labels = (
        ("settings_changed", "settings changed"),
        ("stages_added", "stages added"),
        ("stages_removed", "stages removed"),
        ("stages_changed", "stages changed"),
        ("steps_added", "steps added"),
        ("steps_removed", "steps removed"),
        ("steps_changed", "steps changed"),
    )
    for key, label in labels:
        if body.get(key):
            lines.append(f"  {label}: {', '.join(body[key])}")
    affected = body.get("customers_in_affected_steps")
    if affected is None:
        if body.get("from_version"):
            lines.append("  customers per step: unknown (Temporal not reachable from the API)")
    elif affected:
        lines.append(
            "  customers waiting at changed or removed steps (they stay on their version):"
        )
        lines.extend(f"    {step}: {count}" for step, count in sorted(affected.items()))
    else:
        lines.append("  no customer waits at a changed or removed step")
    return "\n".join(lines)


def show_diff(api: ApiClient, file: Path) -> int:
    try:
        source = file.read_text(encoding="utf-8")
    except OSError as exc:
        print(f"{file}: cannot read: {exc.strerror}", file=sys.stderr)
        return 1
    status, body = api.call(
        "POST", "/api/journeys/diff", content=source, headers={"Content-Type": "application/yaml"}
    )
    if status != 200:
        return _fail(status, body)
    print(format_diff(body))
    return 0


def parse_pairs(pairs: list[str], what: str) -> dict[str, str]:
    """``a=b`` pairs from the command line; a malformed one stops with a clear message."""
    found: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key or not value:
            raise SystemExit(f"journeyman: {what} must look like NAME=VALUE, got {pair!r}")
        found[key] = value
    return found


def migrate(
    api: ApiClient, journey: str, to_version: str, mapping: dict[str, str], apply: bool
) -> int:
    status, body = api.call(
        "POST",
        f"/api/journeys/{journey}/migrations",
        json={"to_version": to_version, "steps": mapping, "apply": apply},
    )
    if status != 200:
        return _fail(status, body)
    verb = "moving" if apply else "would move"
    print(f"{journey} -> {to_version}: {verb} {body['customers']} waiting customers")
    for move, count in sorted(body["moves"].items()):
        print(f"  {move}: {count}")
    for reason, count in sorted(body["stays"].items()):
        print(f"  staying ({reason}): {count}")
    if apply:
        print(f"migration {body['id']}: see `journeyman migration {journey} {body['id']}`")
    else:
        print("preview only: add --apply to move them")
    return 0


def migration_report(api: ApiClient, journey: str, migration_id: int) -> int:
    status, body = api.call("GET", f"/api/journeys/{journey}/migrations/{migration_id}")
    if status != 200:
        return _fail(status, body)
    print(
        f"migration {body['id']} of {journey} to {body['to_version']}: {body['moved']} of"
        f" {body['signalled']} moved, {body['not_moved']} not (finished or left the step first)"
    )
    return 0


def enter(api: ApiClient, journey: str, customer: str, properties: dict[str, str]) -> int:
    status, body = api.call(
        "POST",
        f"/api/journeys/{journey}/entries",
        json={"customer_id": customer, "properties": properties},
    )
    if status != 202:
        return _fail(status, body)
    if body["entered"]:
        print(f"{customer} entered {journey} ({body['workflow_id']})")
        return 0
    print(f"{customer} did not enter {journey}: {body['reason']}")
    return 1
