"""Child-process plumbing shared by the embedded Postgres and Temporal launchers."""

from __future__ import annotations

import asyncio
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TypedDict

LOCALHOST = "127.0.0.1"


class EmbeddedServerError(RuntimeError):
    """An embedded server could not be started or stopped; the message says why."""


def free_port(host: str = LOCALHOST) -> int:
    """A TCP port that is free right now (another process may still take it before we bind)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def ensure_port_free(port: int, what: str, host: str = LOCALHOST) -> None:
    """Raise if something already listens on ``port``, before a server fails on it obscurely."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As servers do, so a port in TIME_WAIT from our own previous run counts as free.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise EmbeddedServerError(f"{what}: port {port} on {host} is in use ({exc})") from None


def log_tail(path: Path, offset: int = 0, lines: int = 40) -> str:
    """The last ``lines`` lines written to ``path`` after byte ``offset``."""
    try:
        with path.open("rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", errors="replace")
    except OSError as exc:
        return f"(log {path} unreadable: {exc})"
    return "\n".join(text.splitlines()[-lines:]) or "(log is empty)"


class _AsUser(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def as_user(user: pwd.struct_passwd | None) -> _AsUser:
    """``subprocess`` keyword arguments that run the child as ``user`` (no change if None)."""
    if user is None:
        return {}
    return {"user": user.pw_uid, "group": user.pw_gid, "extra_groups": []}


def _die_with_parent(sig: signal.Signals) -> list[str]:
    """A command prefix that signals the child when we die, so a killed run leaves no servers."""
    # setpriv sets PR_SET_PDEATHSIG and execs, which avoids preexec_fn (unsafe with the
    # threads temporalio's runtime starts). The signal fires when the *thread* that spawned the
    # child exits, so children must be spawned from a long-lived thread (the event loop's).
    setpriv = shutil.which("setpriv")
    if sys.platform != "linux" or setpriv is None:
        return []
    return [setpriv, f"--pdeathsig={sig.name}"]


def spawn(
    argv: Sequence[str],
    *,
    log_path: Path,
    cwd: Path,
    user: pwd.struct_passwd | None = None,
    death_signal: signal.Signals = signal.SIGTERM,
) -> tuple[subprocess.Popen[bytes], int]:
    """Start a server with output appended to ``log_path``; returns it and the log offset.

    With ``user`` the child drops to that user's uid, gid and no supplementary groups.
    """
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("ab") as log:
        offset = log.tell()
        log.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')} {' '.join(argv)}\n".encode())
        log.flush()
        proc = subprocess.Popen(
            [*_die_with_parent(death_signal), *argv],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            **as_user(user),
            # Own session: a Ctrl-C in the terminal reaches only us, and we stop servers in order.
            start_new_session=True,
        )
    return proc, offset


async def stop_process(proc: subprocess.Popen[bytes], sig: signal.Signals, grace: float) -> int:
    """Send ``sig``, wait up to ``grace`` seconds, then SIGKILL; returns the exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        return await asyncio.to_thread(proc.wait, grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        return await asyncio.to_thread(proc.wait)
