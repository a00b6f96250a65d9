"""The KPI reports checked against an independent count of what a scripted population did.

About forty customers, each on a planned path (``kpi_scenario``), go through a three-stage
journey by the real route: Segment batches to the ingest API, the outbox and the dispatcher,
the journey workflow on the time-skipping server with a worker, email to an SMTP server,
texts to a local Twilio twin whose signed status callbacks come back to the API, erasure
through the customer API. Time moves only between the script's hours (``env.sleep``), after
everything sent at the hour has been delivered. Once every run has ended, each report's numbers
must equal the ledger's, which is added up from the script and never from the engine's tables.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parseaddr
from typing import Any

import asyncpg
import httpx
import pytest
from pydantic import SecretStr
from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.testing import WorkflowEnvironment

from journeyman.channels import SmtpProvider, SmtpSink, TwilioSms
from journeyman.channels.http import shared_client
from journeyman.orchestrator.api import Services, create_app
from journeyman.orchestrator.api.routes.provider_webhooks import (
    ProviderWebhookKeys,
    install_provider_webhooks,
)
from journeyman.orchestrator.dispatcher import Dispatcher
from journeyman.orchestrator.embedded import EmbeddedPostgres, TemporalDevServer
from journeyman.orchestrator.ingest import workflow_id_for
from journeyman.orchestrator.language import compile_source
from journeyman.orchestrator.storage import connect, create_pool, migrate
from journeyman.orchestrator.tracking.config import tracking_config
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.journey import is_held_out
from journeyman.workflows.plan import Plan
from journeyman.workflows.providers import ChannelProviders
from journeyman.workflows.worker import build_worker

from ..channels.messaging_servers import TwilioServer, twilio_signature
from .kpi_scenario import (
    END_HOURS,
    ERASURE_PATHS,
    ERASURE_POPULATION,
    JOURNEY,
    PATHS,
    POPULATION,
    SIGNED_UP,
    STAGES,
    Customer,
    Ledger,
    population,
)

WRITE_KEY = "wk_kpi_accounting"
ADMIN_TOKEN = "adm_kpi_accounting"
PUBLIC_URL = "http://journeyman.test"  # where the API is reached; Twilio signs its callbacks
ACCOUNT_SID = "AC" + "1" * 32
TWILIO_TOKEN = "twilio-kpi-token-0123456789abcdef"
LINK_SECRET = "kpi-accounting-link-secret-0123456789"
FROM_NUMBER = "+15005550006"
# The re-entry cool-down (``reentry: {after: 1s}``) is measured on the API's clock from the
# moment the previous run ended, so a re-entry waits that long in real time.
COOL_DOWN_SECONDS = 1.0
SETTLE_SECONDS = 30.0


@dataclass
class Rig:
    """The API, a dispatcher and a worker over one database and one Temporal."""

    http: httpx.AsyncClient
    pool: asyncpg.Pool
    sink: SmtpSink
    twilio: TwilioServer

    @property
    def admin(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {ADMIN_TOKEN}"}

    async def deploy(self, source: str) -> str:
        response = await self.http.post("/api/journeys", content=source, headers=self.admin)
        assert response.status_code == 201, response.text
        version: str = response.json()["version"]
        return version

    async def send(self, messages: list[dict[str, Any]]) -> None:
        """Ingest a Segment batch and wait until the dispatcher has handed it to Temporal."""
        response = await self.http.post("/v1/batch", json={"batch": messages}, auth=(WRITE_KEY, ""))
        assert response.status_code == 200, response.text
        assert response.json()["accepted"] == len(messages), response.text
        await self.dispatched()

    async def dispatched(self) -> None:
        """Wait until every outbox row is delivered (a refused one fails with its error)."""
        for _ in range(int(SETTLE_SECONDS / 0.02)):
            row = await self.pool.fetchrow(
                "SELECT count(*) AS waiting, max(last_error) AS error FROM outbox"
                " WHERE delivered_at IS NULL"
            )
            assert row is not None and row["error"] is None, row
            if row["waiting"] == 0:
                return
            await asyncio.sleep(0.02)
        raise AssertionError("the dispatcher did not deliver the outbox in time")

    async def report(self, path: str, **params: str) -> Any:
        response = await self.http.get(path, params=params, headers=self.admin)
        assert response.status_code == 200, response.text
        return response.json()

    async def report_texts(self, customers: Sequence[Customer]) -> None:
        """Post each text's status callback, signed as Twilio signs it, for the customers whose
        path reports one."""
        by_phone = {phone(c): c for c in customers}
        for text in self.twilio.created:
            status = by_phone[text["To"]].path.sms_report
            if status is None:
                continue
            assert text["StatusCallback"] == f"{PUBLIC_URL}/webhooks/twilio"
            params = [
                ("AccountSid", ACCOUNT_SID),
                ("ApiVersion", "2010-04-01"),
                ("From", text["From"]),
                ("MessageSid", text["sid"]),
                ("MessageStatus", status),
                ("SmsSid", text["sid"]),
                ("SmsStatus", status),
                ("To", text["To"]),
            ]
            if status == "undelivered":
                params.append(("ErrorCode", "30003"))
            signature = twilio_signature(text["StatusCallback"], params, TWILIO_TOKEN)
            response = await self.http.post(
                "/webhooks/twilio", data=dict(params), headers={"X-Twilio-Signature": signature}
            )
            assert response.status_code == 200, response.text
            assert response.json()["matched"] is True, response.text

    async def erase(self, customer: Customer) -> dict[str, Any]:
        response = await self.http.delete(f"/api/customers/{customer.id}", headers=self.admin)
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


def phone(customer: Customer) -> str:
    """A mobile number of the customer's own (E.164, as Twilio takes it)."""
    return f"+8869{zlib.crc32(customer.id.encode()) % 10**8:08d}"


def identify(customer: Customer) -> dict[str, Any]:
    return {
        "type": "identify",
        "messageId": str(uuid.uuid4()),
        "userId": customer.id,
        "traits": {
            "email": customer.email,
            "phone": phone(customer),
            "consent": {"email": True, "sms": True},
        },
    }


def track(customer: Customer, event: str) -> dict[str, Any]:
    return {
        "type": "track",
        "messageId": str(uuid.uuid4()),
        "userId": customer.id,
        "event": event,
        "properties": {},
    }


async def _database(pg_server: EmbeddedPostgres) -> str:
    url = await pg_server.create_database(f"test_{uuid.uuid4().hex}")
    conn = await connect(url)
    await migrate(conn)
    await conn.close()
    return url


@contextlib.asynccontextmanager
async def running_rig(client: Client, database_url: str) -> AsyncIterator[Rig]:
    pool = await create_pool(database_url)
    services = Services(
        pool=pool,
        database_url=database_url,
        write_key=WRITE_KEY,
        admin_token=ADMIN_TOKEN,
        max_body_bytes=1024 * 1024,
        temporal=client,
    )
    app = create_app(services, follow_deploys=False)
    install_provider_webhooks(
        app,
        ProviderWebhookKeys(twilio_auth_token=SecretStr(TWILIO_TOKEN), public_url=PUBLIC_URL),
    )
    sink = SmtpSink()
    port = sink.start()
    queue = f"kpi-{uuid.uuid4().hex[:8]}"
    dispatcher: asyncio.Task[None] | None = None
    try:
        async with (
            TwilioServer(account_sid=ACCOUNT_SID, auth_token=TWILIO_TOKEN) as twilio,
            shared_client() as outbound,
            httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=PUBLIC_URL) as http,
        ):
            activities = JourneyActivities(
                pool,
                email=SmtpProvider("127.0.0.1", port, local_hostname="localhost"),
                from_address="Shop <journeys@shop.example>",
                providers=ChannelProviders(
                    sms=TwilioSms(
                        outbound,
                        account_sid=ACCOUNT_SID,
                        auth_token=TWILIO_TOKEN,
                        from_number=FROM_NUMBER,
                        base_url=twilio.url,
                    )
                ),
                # Links on: every text carries the API's status-callback URL.
                links=tracking_config(secret=LINK_SECRET, public_url=PUBLIC_URL, development=True),
            )
            dispatcher = asyncio.create_task(
                Dispatcher(database_url, client, task_queue=queue).run()
            )
            async with build_worker(client, task_queue=queue, activities=activities):
                yield Rig(http, pool, sink, twilio)
    finally:
        if dispatcher is not None:
            dispatcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await dispatcher
        sink.stop()
        await pool.close()


# --- the scripted population on the time-skipping server ---------------------------------


@dataclass
class Played:
    rig: Rig
    plan: Plan
    ledger: Ledger
    results: dict[str, str]  # workflow id -> the run's result
    expected: dict[str, str]
    erasures: dict[str, dict[str, Any]]
    wall_seconds: float  # how long the script took in real time


async def play(rig: Rig, env: WorkflowEnvironment, ledger: Ledger) -> float:
    """Send the script hour by hour; time moves on only once the hour's events are in
    Temporal, and the server does not skip past work in flight. Returns the real seconds the
    script took: the most the runs' clock can have drifted from the scripted hours."""
    began = time.monotonic()
    now = 0.0
    for hour, doings in ledger.events().items():
        if hour > now:
            await env.sleep(timedelta(hours=hour - now))
            now = hour
        messages = [identify(c) for c, _ in doings] if hour == 0 else []
        if hour > 0 and any(name == SIGNED_UP for _, name in doings):
            await asyncio.sleep(COOL_DOWN_SECONDS + 0.5)
        await rig.send(messages + [track(c, name) for c, name in doings])
    await env.sleep(timedelta(hours=END_HOURS - now))
    return time.monotonic() - began


@pytest.fixture(scope="module")
async def played(
    time_skipping_env: WorkflowEnvironment, pg_server: EmbeddedPostgres
) -> AsyncIterator[Played]:
    env = time_skipping_env
    jid = f"kpi-{uuid.uuid4().hex[:8]}"  # the test server lives for the session
    source = JOURNEY.format(jid=jid)
    plan = compile_source(source)
    customers = population(PATHS, POPULATION, lambda c: is_held_out(plan, c))
    expected = {
        workflow_id_for(jid, c.id, n): r.ending
        for c in customers
        for n, r in enumerate(c.path.runs, 1)
    }
    async with running_rig(env.client, await _database(pg_server)) as rig:
        try:
            assert await rig.deploy(source) == plan.version
            ledger = Ledger(customers, started=await env.get_current_time())
            wall = await play(rig, env, ledger)
            results = {}
            for workflow_id in expected:
                handle = env.client.get_workflow_handle(workflow_id)
                results[workflow_id] = await asyncio.wait_for(handle.result(), 10)
            await rig.report_texts(customers)
            erasures = {c.id: await rig.erase(c) for c in customers if c.path.erase}
            yield Played(rig, plan, ledger, results, expected, erasures, wall)
        finally:
            # A run left open would make the shared server skip ahead under later tests.
            for workflow_id in expected:
                with contextlib.suppress(Exception):
                    await env.client.get_workflow_handle(workflow_id).terminate("test over")


def base(played: Played) -> str:
    return f"/api/journeys/{played.plan.journey_id}"


def only(rows: list[dict[str, Any]], like: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's rows cut down to the fields the ledger counts."""
    fields = set(like[0])
    return [{k: v for k, v in row.items() if k in fields} for row in rows]


async def test_every_run_ends_as_scripted_and_every_message_reaches_its_server(
    played: Played,
) -> None:
    rig, ledger = played.rig, played.ledger
    assert played.results == played.expected
    assert len(ledger.customers) >= 30 and len(played.expected) > len(ledger.customers)
    # The engine started the planned runs and no other: a second sign-up while a run is
    # active starts nothing. (Erased customers' runs are gone.)
    started = await rig.pool.fetch(
        "SELECT workflow_id FROM journey_runs WHERE journey_id = $1", played.plan.journey_id
    )
    erased = {c.id for c in ledger.customers if c.path.erase}
    assert {r["workflow_id"] for r in started} == {
        w for w in played.expected if w.split("/")[2] not in erased
    }
    received = Counter((parseaddr(m["To"])[1], m["Subject"]) for m in rig.sink.messages)
    assert received == ledger.emails()
    by_phone = {phone(c): c.id for c in ledger.customers}
    assert Counter(by_phone[t["To"]] for t in rig.twilio.created) == ledger.texts()
    held = {c.id for c in ledger.customers if c.held_out}
    assert held and not held & set(ledger.texts())
    # No message is left half-sent: every ledger row has its final state.
    unsettled = await rig.pool.fetchval(
        "SELECT count(*) FROM deliveries WHERE status IN ('sending', 'unknown')"
    )
    assert unsettled == 0
    # Erasing a customer whose runs have ended exits nothing more.
    assert {c: e["erased"]["runs_exited"] for c, e in played.erasures.items()} == dict.fromkeys(
        played.erasures, 0
    )


async def test_the_funnel_counts_every_visit_by_how_it_ended(played: Played) -> None:
    funnel = await played.rig.report(f"{base(played)}/funnel")
    assert funnel["stages"] == played.ledger.funnel()


async def test_exit_reasons_add_up_with_held_out_customers_apart(played: Played) -> None:
    exits = await played.rig.report(f"{base(played)}/exits")
    assert exits["exits"] == played.ledger.exits()


async def test_touchpoints_count_each_message_by_what_became_of_it(played: Played) -> None:
    report = await played.rig.report(f"{base(played)}/touchpoints")
    expected = played.ledger.touchpoints()
    assert only(report["touchpoints"], expected) == expected


async def test_stage_timing_counts_each_visit_by_how_it_ended(played: Played) -> None:
    report = await played.rig.report(f"{base(played)}/stages/timing")
    expected = played.ledger.timing()
    assert only(report["stages"], expected) == expected


async def test_cohorts_count_each_run_in_the_week_it_entered(played: Played) -> None:
    expected = played.ledger.cohorts()
    report = await played.rig.report(
        f"{base(played)}/cohorts", weeks=str(len(expected)), until=expected[-1]["week"]
    )
    assert report["stages"] == list(STAGES)
    assert report["cohorts"] == expected


async def test_the_holdout_compares_treated_and_held_out_runs_by_the_goal(
    played: Played,
) -> None:
    report = await played.rig.report(f"{base(played)}/experiments")
    assert report["experiments"] == []
    holdout = report["holdout"]
    assert holdout["versions"] == [played.plan.version]
    expected = played.ledger.holdout()
    for group in ("treated", "held_out"):
        found = {k: holdout[group][k] for k in expected[group]}
        assert found == pytest.approx(expected[group]), group
    treated, held = expected["treated"]["rate"], expected["held_out"]["rate"]
    assert holdout["uplift"] == pytest.approx(treated - held)
    assert holdout["relative_uplift"] == pytest.approx((treated - held) / held)


async def test_time_to_convert_is_the_median_of_the_scripted_delays(played: Played) -> None:
    report = await played.rig.report(f"{base(played)}/stages/timing")
    found = {r["stage"]: (r["median_seconds"], r["p90_seconds"]) for r in report["stages"]}
    # The runs' clock ran on in real time between the scripted hours: no visit can be off by
    # more than the real seconds the whole script took.
    drift = played.wall_seconds + 1
    expected = played.ledger.time_to_convert()
    for stage, (median, p90) in expected.items():
        assert found[stage] == (
            pytest.approx(median, abs=drift),
            pytest.approx(p90, abs=drift),
        ), stage


@pytest.mark.parametrize("window_hours", [7 * 24, 9])
async def test_each_conversion_goes_to_the_last_message_that_reached_the_customer(
    played: Played, window_hours: int
) -> None:
    report = await played.rig.report(f"{base(played)}/touchpoints", window=f"{window_hours}h")
    assert report["window_seconds"] == window_hours * 3600
    found = {r["step_id"]: r["conversions"] for r in report["touchpoints"]}
    assert found == played.ledger.conversions(window_hours)


# --- erased while waiting, on the dev server ------------------------------------------------


async def _eventually(pool: asyncpg.Pool, query: str, *args: object) -> None:
    for _ in range(int(SETTLE_SECONDS / 0.05)):
        if await pool.fetchval(query, *args):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never true: {query} {args}")


async def test_customers_erased_mid_journey_leave_their_stage_as_erasures(
    temporal_dev_server: TemporalDevServer, pg_server: EmbeddedPostgres
) -> None:
    # The time-skipping server cannot delete a running workflow, which erasure needs; the dev
    # server can, and nothing here waits for the journey's clock.
    client = await Client.connect(
        temporal_dev_server.address, data_converter=pydantic_data_converter
    )
    jid = f"kpi-erasure-{uuid.uuid4().hex[:8]}"
    source = JOURNEY.format(jid=jid)
    plan = compile_source(source)
    customers = population(ERASURE_PATHS, ERASURE_POPULATION, lambda c: is_held_out(plan, c))
    async with running_rig(client, await _database(pg_server)) as rig:
        await rig.deploy(source)
        ledger = Ledger(customers, started=datetime.now(UTC))
        await rig.send([m for c in customers for m in (identify(c), track(c, SIGNED_UP))])
        for customer in customers:
            await _eventually(
                rig.pool,
                "SELECT status = 'active' FROM journey_runs WHERE customer_id = $1",
                customer.id,
            )
        await rig.send([track(c, name) for c in customers for _, name in c.path.events])
        by_path = {c.path.name: c for c in customers if not c.held_out}
        await _eventually(
            rig.pool,
            "SELECT count(*) = 1 FROM deliveries WHERE customer_id = $1 AND status = 'sent'",
            by_path["erased-awaiting-reply"].id,
        )
        await _eventually(
            rig.pool,
            "SELECT status = 'exited' FROM journey_runs WHERE customer_id = $1",
            by_path["closes-account-at-once"].id,
        )
        for customer in customers:
            if customer.path.erase:
                erased = await rig.erase(customer)
                assert (erased["erased"]["runs_exited"], erased["temporal"]["runs_ended"]) == (
                    1,
                    1,
                )

        path = f"/api/journeys/{jid}"
        assert (await rig.report(f"{path}/funnel"))["stages"] == ledger.funnel()
        assert (await rig.report(f"{path}/exits"))["exits"] == ledger.exits()
        # The erased customers' transitions are gone: timing counts only the others' visits.
        timing = (await rig.report(f"{path}/stages/timing"))["stages"]
        assert only(timing, ledger.timing()) == ledger.timing()
        # Their messages' ledger rows stay, and count.
        touchpoints = (await rig.report(f"{path}/touchpoints"))["touchpoints"]
        assert only(touchpoints, ledger.touchpoints()) == ledger.touchpoints()
        [week] = ledger.cohorts()
        cohorts = await rig.report(f"{path}/cohorts", weeks="1", until=week["week"])
        assert cohorts["cohorts"] == [week]
