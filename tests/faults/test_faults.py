"""Fault drills: hundreds of customers through a journey while its processes are killed and its
servers restarted. Afterwards nothing accepted is lost, nothing is stored or sent twice, and
every customer is where their own events say.

Each drill draws its customers and faults from a seed, printed when it fails;
``JOURNEYMAN_FAULT_SEED=N`` replays the same ones.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from . import checks
from .chaos import scale_out_faults, single_node_faults
from .cluster import ADMIN_TOKEN, WRITE_KEY, Cluster, running_cluster
from .conftest import drill_report
from .drill import Outcome, run_drill
from .traffic import JOURNEY, Customer, customers

pytestmark = [pytest.mark.e2e, pytest.mark.faults]

DRILL = Path(__file__).with_name("drill.yaml")
CUSTOMERS = 300
# Two of everything on the same two cores: fewer customers keep the drill as short.
SCALE_OUT_CUSTOMERS = 100


async def _verify(cluster: Cluster, outcome: Outcome, group: list[Customer]) -> checks.Messages:
    """Every check, all problems at once."""
    url = cluster.database_url
    problems = await checks.stored_events(url, outcome.client.accepted, outcome.sent_ids)
    problems += await checks.outbox(url)
    problems += await checks.places(url, group)
    queue = cluster.workers[0].env["JOURNEYMAN_TASK_QUEUE"]
    problems += await checks.temporal_view(cluster.temporal.address, queue, group)
    problems += checks.funnel(await cluster.funnel(JOURNEY), group)
    mail = await checks.messages(url, cluster.sink.messages, group)
    problems += mail.problems
    problems += checks.secrets_in_logs(cluster.logs(), [WRITE_KEY, ADMIN_TOKEN])
    if not outcome.settled:
        problems.insert(0, "the drill did not settle in time")
    assert not problems, "\n".join(problems[:40])
    return mail


def _summary(cluster: Cluster, outcome: Outcome, mail: checks.Messages) -> str:
    restarts = {role.name: role.starts - 1 for role in (*cluster.workers, *cluster.apis)}
    return (
        f"{len(outcome.client.accepted)} events accepted in {outcome.seconds:.0f}s; "
        f"answers {dict(outcome.client.answers)}; {mail.delivered} messages delivered; "
        f"{len(mail.interrupted)} sends interrupted by a kill ({len(mail.lost)} never reached "
        f"the server: {mail.lost}); restarts {restarts}; "
        f"exits on their own {cluster.unexpected_exits}"
    )


# Ten worker restarts take a while on a busy machine; the drill itself stops waiting sooner.
@pytest.mark.timeout(420)
async def test_killed_worker_restarted_api_postgres_and_temporal_lose_nothing(
    request: pytest.FixtureRequest, fault_seed: int, drill_dir: Path
) -> None:
    rng = random.Random(fault_seed)
    group = customers(CUSTOMERS, rng, prefix="solo", spread=20)
    faults = single_node_faults(rng)
    async with running_cluster(drill_dir, workers=1, apis=1) as cluster:
        drill_report(request, "what happened", cluster.story)
        await cluster.deploy(DRILL.read_bytes())
        outcome = await run_drill(cluster, group, faults, rng, first_fault_after=2)
        mail = await _verify(cluster, outcome, group)
        print(cluster.story(), _summary(cluster, outcome, mail), sep="\n")
        assert cluster.workers[0].starts == 11  # ten kills, ten restarts
        assert not cluster.unexpected_exits


async def test_two_workers_and_two_apis_share_the_work_when_one_worker_dies(
    request: pytest.FixtureRequest, fault_seed: int, drill_dir: Path
) -> None:
    rng = random.Random(fault_seed)
    group = customers(SCALE_OUT_CUSTOMERS, rng, prefix="pair", spread=10)
    faults = scale_out_faults(rng)
    async with running_cluster(drill_dir, workers=2, apis=2) as cluster:
        drill_report(request, "what happened", cluster.story)
        await cluster.deploy(DRILL.read_bytes())
        outcome = await run_drill(cluster, group, faults, rng, first_fault_after=5)
        mail = await _verify(cluster, outcome, group)
        print(cluster.story(), _summary(cluster, outcome, mail), sep="\n")
        # Both APIs took traffic, and the surviving worker did the dead one's share, its
        # dispatcher taking over the outbox.
        assert all(outcome.client.served[url] > 0 for url in cluster.api_urls())
        assert sum(1 for role in cluster.workers if role.running) == 1
        assert cluster.lost_dispatcher
        assert not cluster.unexpected_exits
