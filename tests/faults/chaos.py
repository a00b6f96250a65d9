"""The faults of a drill, drawn from its seed, and the driver that inflicts them one by one."""

from __future__ import annotations

import asyncio
import random
import signal
from dataclasses import dataclass
from pathlib import Path

import asyncpg

# The advisory lock that elects the active dispatcher (a bigint key: Postgres shows its high
# and low halves as classid and objid).
from journeyman.orchestrator.dispatcher import _LEADER_LOCK

from .cluster import Cluster, Role


@dataclass(frozen=True)
class Fault:
    kind: str  # kill_worker | lose_worker | restart_api | kill_api | postgres | temporal
    pause: float  # seconds after the previous fault ended
    down: float  # seconds the part stays away
    target: int = 0  # which worker or API

    def __str__(self) -> str:
        return f"{self.kind}#{self.target} after {self.pause:.1f}s, down {self.down:.1f}s"


def _pause(rng: random.Random) -> float:
    return rng.uniform(0.5, 3.0)


def _down(rng: random.Random, kind: str) -> float:
    # Servers stay away long enough for clients, pools and polls to notice.
    return rng.uniform(1.5, 4.0) if kind in ("postgres", "temporal") else rng.uniform(0.1, 1.5)


def single_node_faults(rng: random.Random, *, worker_kills: int = 10) -> list[Fault]:
    """Ten worker SIGKILLs, an API stopped and one killed, Postgres and Temporal restarted."""
    kinds = ["kill_worker"] * worker_kills + ["restart_api", "kill_api", "postgres", "temporal"]
    rng.shuffle(kinds)
    return [Fault(kind, _pause(rng), _down(rng, kind)) for kind in kinds]


def scale_out_faults(rng: random.Random) -> list[Fault]:
    """The dispatcher's worker killed for good, and one of the two APIs killed and restarted."""
    kinds = ["lose_worker", "kill_api"]
    rng.shuffle(kinds)
    return [Fault(kind, _pause(rng), _down(rng, kind), rng.randrange(2)) for kind in kinds]


async def inflict(cluster: Cluster, faults: list[Fault], *, first_after: float) -> None:
    """Each fault in turn, the next one only once the last part is back."""
    await asyncio.sleep(first_after)
    for fault in faults:
        await asyncio.sleep(fault.pause)
        cluster.note(f"fault: {fault}")
        if fault.kind == "kill_worker":
            await cluster.kill_worker(cluster.workers[fault.target], fault.down)
        elif fault.kind == "lose_worker":
            # The one running the dispatcher: its standby must take over the outbox too.
            leader = await dispatcher_leader(cluster)
            cluster.lost_dispatcher = leader is not None
            await cluster.lose_worker(leader or cluster.workers[fault.target])
        elif fault.kind == "restart_api":
            await cluster.restart_api(cluster.apis[fault.target], signal.SIGTERM, fault.down)
        elif fault.kind == "kill_api":
            await cluster.restart_api(cluster.apis[fault.target], signal.SIGKILL, fault.down)
        elif fault.kind == "postgres":
            await cluster.restart_postgres(fault.down)
        elif fault.kind == "temporal":
            await cluster.restart_temporal(fault.down)
        else:
            raise AssertionError(f"unknown fault {fault.kind}")
    cluster.note("faults over")


# --- which worker runs the dispatcher -------------------------------------------------------


async def dispatcher_leader(cluster: Cluster) -> Role | None:
    """The worker whose dispatcher holds the leader lock, if one does.

    Postgres knows the client port of the session holding the advisory lock; the worker is
    the process with a socket bound to that port.
    """
    conn = await asyncpg.connect(cluster.database_url)
    try:
        port = await conn.fetchval(
            "SELECT a.client_port FROM pg_locks l JOIN pg_stat_activity a USING (pid)"
            " WHERE l.locktype = 'advisory' AND l.granted AND l.database ="
            " (SELECT oid FROM pg_database WHERE datname = current_database())"
            " AND l.classid = $1 AND l.objid = $2 AND l.objsubid = 1",
            _LEADER_LOCK >> 32,
            _LEADER_LOCK & 0xFFFF_FFFF,
        )
    finally:
        await conn.close()
    if port is not None:
        inodes = _socket_inodes_on_port(int(port))
        for role in cluster.workers:
            if role.process is not None and _holds_any(role.process.pid, inodes):
                return role
    return None


def _socket_inodes_on_port(port: int) -> set[str]:
    found = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        path = Path(table)
        if not path.exists():
            continue
        for line in path.read_text().splitlines()[1:]:
            cols = line.split()
            if int(cols[1].rsplit(":", 1)[1], 16) == port:
                found.add(cols[9])
    return found


def _holds_any(pid: int, inodes: set[str]) -> bool:
    try:
        fds = list(Path(f"/proc/{pid}/fd").iterdir())
    except OSError:
        return False  # the process is gone
    for fd in fds:
        try:
            link = str(fd.readlink())
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:[") and link[8:-1] in inodes:
            return True
    return False
