"""`journeyman up`: the embedded stack starts, serves, stops cleanly on Ctrl-C and keeps
its journeys (and the customers inside them) across a restart."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from journeyman.orchestrator.language import compile_file
from journeyman.orchestrator.language.folders import journey_files

REPO = Path(__file__).resolve().parents[2]
JOURNEYS = REPO / "journeys"
WRITE_KEY, ADMIN_TOKEN = "wk_up", "adm_up"

pytestmark = pytest.mark.e2e


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def data_dir() -> Iterator[Path]:
    # Postgres runs as an unprivileged user: its data dir must be reachable by it.
    path = Path(tempfile.mkdtemp(prefix="jm-up-", dir="/tmp"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _env(data_dir: Path, api_port: int) -> dict[str, str]:
    return {
        **os.environ,
        "JOURNEYMAN_DATA_DIR": str(data_dir),
        "JOURNEYMAN_JOURNEYS_DIR": str(REPO / "journeys"),
        "JOURNEYMAN_API_PORT": str(api_port),
        "JOURNEYMAN_WRITE_KEY": WRITE_KEY,
        "JOURNEYMAN_ADMIN_TOKEN": ADMIN_TOKEN,
        "JOURNEYMAN_EMBEDDED_TEMPORAL_PORT": "0",
        "JOURNEYMAN_EMBEDDED_TEMPORAL_UI_PORT": "0",
        "JOURNEYMAN_EMBEDDED_SMTP_PORT": "0",
    }


def _cli(env: dict[str, str], *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "journeyman.orchestrator.cli", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _wait(check: object, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():  # type: ignore[operator]
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"timed out: {what}")


def _mail_subjects(data_dir: Path) -> list[str]:
    subjects = []
    for path in sorted((data_dir / "mail").glob("*.eml")):
        for line in path.read_text(errors="replace").splitlines():
            if line.startswith("Subject: "):
                subjects.append(line.removeprefix("Subject: "))
    return subjects


def _track(api: str, user: str, event: str) -> None:
    body = {"userId": user, "event": event, "messageId": str(uuid.uuid4())}
    response = httpx.post(f"{api}/v1/track", json=body, auth=(WRITE_KEY, ""), timeout=10)
    assert response.status_code == 200, response.text


def _stop(process: subprocess.Popen[str]) -> str:
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    return output


def _leftovers(data_dir: Path) -> str:
    found = subprocess.run(["pgrep", "-af", str(data_dir)], capture_output=True, text=True)
    return found.stdout.strip()


def test_up_serves_stops_cleanly_and_keeps_customers_across_restart(data_dir: Path) -> None:
    port = _free_port()
    api = f"http://127.0.0.1:{port}"
    env = _env(data_dir, port)

    first = _cli(env, "up")
    _wait(lambda: httpx.get(f"{api}/healthz").status_code == 200, "first start")
    health = httpx.get(f"{api}/healthz").json()
    assert health == {"status": "ok", "dependencies": {"postgres": "ok", "temporal": "ok"}}
    identify = {"userId": "u1", "traits": {"email": "u1@example.com", "first_name": "Una"}}
    assert httpx.post(f"{api}/v1/identify", json=identify, auth=(WRITE_KEY, "")).status_code == 200
    _track(api, "u1", "Signed Up")
    _wait(lambda: _mail_subjects(data_dir) == ["Welcome, Una!"], "welcome email")
    redeploy = subprocess.run(
        [sys.executable, "-m", "journeyman.orchestrator.cli", "deploy", "journeys/"],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert redeploy.returncode == 0, redeploy.stderr
    assert "lifecycle version" in redeploy.stdout and "already active" in redeploy.stdout
    assert "abandoned_cart version" in redeploy.stdout
    output = _stop(first)
    assert "deployed lifecycle version" in output
    assert _leftovers(data_dir) == ""

    second = _cli(env, "up")
    try:
        _wait(lambda: httpx.get(f"{api}/healthz").status_code == 200, "second start")
        journeys = httpx.get(
            f"{api}/api/journeys", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        shipped = {compile_file(path).journey_id for path in journey_files(JOURNEYS)}
        assert {j["id"] for j in journeys.json()} == shipped
        # The segments beside the journeys were deployed first.
        segments = httpx.get(
            f"{api}/api/segments", headers={"Authorization": f"Bearer {ADMIN_TOKEN}"}
        )
        assert {s["id"] for s in segments.json()} == {
            path.stem for path in (JOURNEYS / "segments").glob("*.yaml")
        }
        # The run started before the restart is still there and reacts to the next goal.
        _track(api, "u1", "Product Viewed")
        _wait(
            lambda: (
                _mail_subjects(data_dir)
                == ["Welcome, Una!", "How we compare, in our customers' words"]
            ),
            "the customer moved on after the restart",
        )
        _admin_commands(env, data_dir)
    finally:
        output = _stop(second)
    assert "deployed" not in output  # nothing changed, nothing redeployed
    assert _leftovers(data_dir) == ""


def _run(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "journeyman.orchestrator.cli", *args],
        env=env,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def _admin_commands(env: dict[str, str], data_dir: Path) -> None:
    """diff, pause/resume, enter and migrate against the running stack."""
    same = _run(env, "diff", "journeys/lifecycle.yaml")
    assert same.returncode == 0, same.stderr
    assert "no changes" in same.stdout

    changed = data_dir / "lifecycle.yaml"
    source = (JOURNEYS / "lifecycle.yaml").read_text()
    changed.write_text(source.replace("How we compare", "How we stack up"))
    diff = _run(env, "diff", str(changed))
    assert diff.returncode == 0, diff.stderr
    assert "steps changed: comparison" in diff.stdout
    assert "customers per step" not in diff.stdout  # Temporal answered

    paused = _run(env, "pause", "lifecycle")
    assert (paused.returncode, paused.stdout.strip()) == (0, "lifecycle: paused")
    assert _run(env, "resume", "lifecycle").stdout.strip() == "lifecycle: active"
    missing = _run(env, "pause", "nope")
    assert missing.returncode == 1 and "no journey 'nope'" in missing.stderr

    entered = _run(env, "enter", "win_back", "u9", "--property", "reason=api")
    assert entered.returncode == 0, entered.stderr + entered.stdout
    assert "u9 entered win_back" in entered.stdout
    refused = _run(env, "enter", "lifecycle", "u9")
    assert refused.returncode == 1 and "does not accept API entries" in refused.stderr

    preview = _run(env, "migrate", "lifecycle", "--to", "0000000000000000")
    assert preview.returncode == 1 and "has no version" in preview.stderr
    bad_map = _run(env, "migrate", "lifecycle", "--to", "x", "--map", "oops")
    assert bad_map.returncode != 0 and "NAME=VALUE" in bad_map.stderr
