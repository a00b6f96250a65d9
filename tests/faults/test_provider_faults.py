"""Misbehaving providers, through the real send activity on a worker (Temporal dev server, real
Postgres, the providers' local twins): every send retries as docs/channels.md says, reaches a
customer at most once, ends in the documented ledger state, and a provider that never answers
holds up nothing but its own send, for no longer than the timeout.

Each customer meets one fault, chosen by the twin from the request itself, so all of a
provider's faults run at once: a 429 with ``Retry-After``, a 503, a 500, an answer too late
(the provider took the message), no answer at all, an answer that trickles or never ends, and
a customer whose send simply works. SMTP gets 4xx and 5xx replies and sessions that stall
before or after the message.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from journeyman.channels import SendGridProvider, SmtpProvider, TwilioSms, WebhookSender
from journeyman.channels.http import shared_client
from journeyman.orchestrator.embedded import TemporalDevServer

from ..channels.provider_servers import Delay, Hang, Reply
from .provider_faults_harness import FaultWorker, fault_worker, finished, one_send_journey
from .provider_faults_rigs import HTTP_RIGS, SENDGRID_KEY, TWILIO_SID, TWILIO_TOKEN, Rig
from .provider_faults_smtp import FaultySmtpServer, Refuse, Stall
from .provider_faults_twins import Endless, SendGridFaults, Trickle, TwilioFaults, WebhookFaults

pytestmark = pytest.mark.faults

# Seconds a provider may take to answer in these tests (the shipped default is 10).
TIMEOUT = 1.5
RETRY_AFTER = 2  # what the 429s ask for; Temporal's own first retry comes after 1 s
SIGNING_SECRET = "faults-webhook-signing-secret-0123"
# A run's send, all attempts included, ends well within this (it fails the test otherwise).
RUN_LIMIT = 45.0
MB = 1024 * 1024


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shared_client(timeout=httpx.Timeout(TIMEOUT)) as shared:
        yield shared


async def enter_all(
    worker: FaultWorker, source: str, people: dict[str, dict[str, str]]
) -> dict[str, str]:
    """Deploy ``source`` and enter one customer per scenario; scenario -> customer id."""
    plan = await worker.deploy(source)
    customers = {scenario: worker.customer(scenario) for scenario in people}
    handles = []
    for scenario, traits in people.items():
        await worker.profile(customers[scenario], first_name="Ada", **traits)
        handles.append(await worker.enter(plan, customers[scenario]))
    assert await finished(handles, within=RUN_LIMIT) == ["completed"] * len(handles)
    return customers


def gap(arrivals: list[float]) -> float:
    first, second = arrivals
    return second - first


# --- providers without an idempotency key: SendGrid, Postmark, Twilio, FCM -----------------


@pytest.mark.parametrize("rig", HTTP_RIGS, ids=[rig.name for rig in HTTP_RIGS])
async def test_a_provider_without_idempotency_retries_only_what_it_surely_did_not_take(
    rig: Rig,
    client: httpx.AsyncClient,
    temporal_dev_server: TemporalDevServer,
    database_url: str,
) -> None:
    lost = ["broken", "slow", "hung"] + (["trickling", "endless"] if rig.trickles else [])
    scenarios = ["busy", "unavailable", *lost, "fine"]
    key = {name: rig.address(name, index) for index, name in enumerate(scenarios)}
    async with rig.running(client) as (twin, providers):
        busy = Reply(rig.busy.status, rig.busy.body, {"Retry-After": str(RETRY_AFTER)})
        twin.fail(key["busy"], busy)
        twin.fail(key["unavailable"], rig.unavailable)
        twin.fail(key["broken"], rig.error)
        twin.fail(key["slow"], Delay(TIMEOUT + 1))
        twin.fail(key["hung"], Hang())
        if rig.trickles:
            # Never a pause long enough for a read timeout; the whole answer takes 30 s.
            twin.fail(key["trickling"], Trickle(30))
            # A success whose body never ends: read up to the answer limit, no further.
            twin.fail(key["endless"], Endless())
        async with fault_worker(temporal_dev_server.address, database_url, **providers) as worker:
            customers = await enter_all(
                worker,
                one_send_journey(f"faults-{rig.name}", rig.send),
                {name: {rig.address_trait: key[name]} for name in scenarios},
            )
            ledger = await worker.ledgers(list(customers.values()))
    # Read once the twin has stopped: the slow answer's handler is done with the message.
    arrivals = {name: twin.arrivals(key[name]) for name in scenarios}
    tokens = {name: twin.tokens(key[name]) for name in scenarios}
    kept = {name: twin.kept(key[name]) for name in scenarios}

    # "Not now" is retried after the wait asked for (else Temporal's first interval, 1 s),
    # once, and the message goes out once.
    for name, wait in (("busy", RETRY_AFTER), ("unavailable", 1)):
        assert len(arrivals[name]) == 2, name
        assert gap(arrivals[name]) >= wait - 0.05, name
        assert kept[name] == 1, name
        assert ledger[customers[name]] == ("sent", None), name
        # The retry carries the send's idempotency key when the provider takes one (Twilio).
        first, retry = tokens[name]
        assert first == retry and (first is not None) == rig.idempotency_header, name
    # A 500, an answer lost to the timeout, no answer, an answer that takes too long to
    # arrive: the provider may hold the message and dedupes nothing, so it is never asked
    # again; the ledger says so.
    for name in lost:
        assert len(arrivals[name]) == 1, name
        state = ledger[customers[name]]
        assert state is not None and state[0] == "unknown", (name, state)
        reason = state[1] or ""
        expected = {"broken": "500", "endless": "without"}.get(name, "Timeout")
        assert expected in reason, (name, reason)
    assert kept["broken"] == 0 and kept["slow"] == 1  # the slow one reached its customer
    if rig.trickles:
        # The worker stopped reading at 1 MiB (the rest of what was sent sat in socket
        # buffers); reading on, it would have run into the timeout, not the limit.
        assert twin.streamed(key["endless"]) < 16 * MB
    assert len(arrivals["fine"]) == 1 and kept["fine"] == 1
    assert ledger[customers["fine"]] == ("sent", None)


# --- webhooks: the receiver drops repeats by Idempotency-Key, so every failure is retried --


async def test_a_webhook_is_retried_through_every_fault_and_its_receiver_acts_once(
    client: httpx.AsyncClient, temporal_dev_server: TemporalDevServer, database_url: str
) -> None:
    scenarios = ["busy", "broken", "slow", "hung", "trickling", "fine"]
    async with WebhookFaults(secret=SIGNING_SECRET) as receiver:
        receiver.faults.fail("/busy", Reply(429, {"error": "slow down"}, {"Retry-After": "2"}))
        receiver.faults.fail("/broken", Reply(500, {"error": "oops"}))
        receiver.faults.fail("/slow", Delay(TIMEOUT + 1))
        receiver.faults.fail("/hung", Hang())
        # A 200 at once, then a body that takes 30 s to arrive.
        receiver.faults.fail("/trickling", Trickle(30))
        webhook = WebhookSender(client, signing_secret=SIGNING_SECRET, timeout=TIMEOUT)
        send = (
            "{id: note, channel: webhook, method: POST, "
            f'url: "{receiver.url}/{{{{ profile.scenario }}}}", '
            "headers: {Content-Type: application/json}, "
            "body: '{\"customer\": {{ customer_id | tojson }}}'}"
        )
        started = time.monotonic()
        async with fault_worker(
            temporal_dev_server.address, database_url, webhook=webhook
        ) as worker:
            customers = await enter_all(
                worker,
                one_send_journey("faults-webhook", send),
                {name: {"scenario": name} for name in scenarios},
            )
            ledger = await worker.ledgers(list(customers.values()))
        took = time.monotonic() - started
        arrivals = {name: receiver.faults.arrivals(f"/{name}") for name in scenarios}
        tokens = {name: receiver.faults.tokens(f"/{name}") for name in scenarios}
        kept = {name: receiver.kept(f"/{name}") for name in scenarios}
        duplicates = receiver.duplicates

    for name in scenarios:
        assert ledger[customers[name]] == ("sent", None), name
        assert kept[name] == 1, name  # the receiver acted on each send once
        expected = 1 if name in ("trickling", "fine") else 2
        assert len(arrivals[name]) == expected, name
        assert len(set(tokens[name])) == 1, name  # every attempt carried the send's key
    assert len({token for name in scenarios for token in tokens[name]}) == len(scenarios)
    assert gap(arrivals["busy"]) >= 2 - 0.05
    # The slow receiver acted on the first attempt; the retry was a repeat, dropped.
    assert duplicates == 1
    # The status is the answer: a 200 whose body trickles in for 30 s is not waited for.
    assert took < 25


# --- SMTP -------------------------------------------------------------------------------------


async def test_smtp_retries_refusals_and_stalls_before_the_message_and_never_after(
    temporal_dev_server: TemporalDevServer, database_url: str
) -> None:
    scenarios = ["greylisted", "unknown-user", "stalled-early", "stalled-late", "fine"]
    with FaultySmtpServer() as server:
        server.fail("greylisted@example.com", Refuse("451 4.7.1 Greylisted, try again later"))
        server.fail("unknown-user@example.com", Refuse("550 5.1.1 No such user here"))
        server.fail("stalled-early@example.com", Stall("rcpt"))
        server.fail("stalled-late@example.com", Stall("data"))
        smtp = SmtpProvider("127.0.0.1", server.port, timeout=TIMEOUT, local_hostname="localhost")
        async with fault_worker(temporal_dev_server.address, database_url, email=smtp) as worker:
            customers = await enter_all(
                worker,
                one_send_journey(
                    "faults-smtp", '{id: note, subject: "Your order", body: "It ships today."}'
                ),
                {name: {"email": f"{name}@example.com"} for name in scenarios},
            )
            ledger = await worker.ledgers(list(customers.values()))
        attempts = {name: server.attempts(f"{name}@example.com") for name in scenarios}
        kept = {name: server.kept(f"{name}@example.com") for name in scenarios}

    # A 4xx, or silence before the message went out: retried, delivered once.
    for name in ("greylisted", "stalled-early"):
        assert len(attempts[name]) == 2 and kept[name] == 1, name
        assert gap(attempts[name]) >= 1 - 0.05, name  # Temporal's first retry interval
        assert ledger[customers[name]] == ("sent", None), name
    # A 5xx: failed for good, not retried.
    assert len(attempts["unknown-user"]) == 1 and kept["unknown-user"] == 0
    status, reason = ledger[customers["unknown-user"]] or ("", "")
    assert status == "failed" and "550" in (reason or "")
    # Silence after the message: the server has it, the client cannot know: not sent again.
    assert len(attempts["stalled-late"]) == 1 and kept["stalled-late"] == 1
    status, reason = ledger[customers["stalled-late"]] or ("", "")
    assert status == "unknown" and "during DATA" in (reason or "")
    assert len(attempts["fine"]) == 1 and kept["fine"] == 1
    assert ledger[customers["fine"]] == ("sent", None)


# --- a provider that never answers holds up nothing else ------------------------------------


async def test_a_hung_provider_holds_up_only_its_own_send_and_only_until_the_timeout(
    temporal_dev_server: TemporalDevServer, database_url: str
) -> None:
    patience = 6.0  # long enough for the other sends to finish first on a busy machine
    async with (
        shared_client(timeout=httpx.Timeout(patience)) as client,
        WebhookFaults(secret=SIGNING_SECRET) as receiver,
        TwilioFaults(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as twilio,
    ):
        with SendGridFaults(api_key=SENDGRID_KEY) as sendgrid:
            sendgrid.faults.fail("hung@example.com", Hang())
            providers: dict[str, Any] = {
                "email": SendGridProvider(client, api_key=SENDGRID_KEY, base_url=sendgrid.base_url),
                "sms": TwilioSms(
                    client,
                    account_sid=TWILIO_SID,
                    auth_token=TWILIO_TOKEN,
                    from_number="+15005550006",
                    base_url=twilio.url,
                ),
                "webhook": WebhookSender(client, signing_secret=SIGNING_SECRET, timeout=patience),
            }
            async with fault_worker(
                temporal_dev_server.address, database_url, **providers
            ) as worker:
                journey = one_send_journey(
                    "faults-hung", '{id: note, subject: "Your order", body: "It ships today."}'
                )
                email = await worker.deploy(journey)
                hung = worker.customer("hung")
                await worker.profile(hung, email="hung@example.com")
                hung_run = await worker.enter(email, hung)
                async with asyncio.timeout(RUN_LIMIT):
                    # The twin's own thread notes the request.
                    while not sendgrid.faults.arrivals("hung@example.com"):  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                hung_since = sendgrid.faults.arrivals("hung@example.com")[0]

                # While that request hangs: more email to the same provider, texts, webhooks.
                sms = await worker.deploy(one_send_journey("faults-hung-sms", HTTP_RIGS[2].send))
                hook = await worker.deploy(
                    one_send_journey(
                        "faults-hung-hook",
                        f'{{id: note, channel: webhook, url: "{receiver.url}/crm", body: "{{}}"}}',
                    )
                )
                others = []
                for n in range(4):
                    customer = worker.customer(f"other-{n}")
                    phone = f"+1555030{n:04d}"
                    await worker.profile(customer, email=f"other-{n}@example.com", phone=phone)
                    others += [await worker.enter(plan, customer) for plan in (email, sms, hook)]
                assert await finished(others, within=RUN_LIMIT) == ["completed"] * len(others)
                others_done = time.monotonic()
                still = await worker.ledger(hung)
                assert await finished([hung_run], within=RUN_LIMIT) == ["completed"]
                hung_done = time.monotonic()
                status, reason = await worker.ledger(hung) or ("", "")

    assert others_done - hung_since < patience, "the other sends waited for the hung one"
    assert still == ("sending", None)  # the hung send was still waiting for its answer
    assert len(sendgrid.accepted) == 5 and len(twilio.created) == 4
    assert len(receiver.accepted) == 4
    # The hung send ended when its timeout did, as unknown: SendGrid may have the message.
    assert patience - 0.05 <= hung_done - hung_since < patience + 10
    assert status == "unknown" and "Timeout" in (reason or "")
    assert len(sendgrid.faults.arrivals("hung@example.com")) == 1


async def test_stalled_smtp_sessions_do_not_hold_up_the_other_channels(
    temporal_dev_server: TemporalDevServer, database_url: str
) -> None:
    # More stalled sessions than the event loop's default thread pool has threads: SMTP runs
    # in threads, and the default pool also resolves host names for every HTTP provider.
    default_pool = min(32, (os.cpu_count() or 1) + 4)
    stalled = [f"stalled-{n}@example.com" for n in range(default_pool + 2)]
    patience = 5.0
    with FaultySmtpServer() as server:
        for address in stalled:
            server.fail(address, Stall("rcpt"))
        smtp = SmtpProvider("127.0.0.1", server.port, timeout=patience, local_hostname="localhost")
        async with (
            shared_client(timeout=httpx.Timeout(patience)) as client,
            TwilioFaults(account_sid=TWILIO_SID, auth_token=TWILIO_TOKEN) as twilio,
        ):
            sms = TwilioSms(
                client,
                account_sid=TWILIO_SID,
                auth_token=TWILIO_TOKEN,
                from_number="+15005550006",
                # By name, as in production: the connection starts with a DNS lookup.
                base_url=twilio.url.replace("127.0.0.1", "localhost"),
            )
            async with fault_worker(
                temporal_dev_server.address, database_url, email=smtp, sms=sms
            ) as worker:
                email = await worker.deploy(
                    one_send_journey(
                        "faults-stalled", '{id: note, subject: "Hi", body: "It ships today."}'
                    )
                )
                texts = await worker.deploy(
                    one_send_journey("faults-stalled-sms", HTTP_RIGS[2].send)
                )
                waiting, stalled_customers = [], []
                for n, address in enumerate(stalled):
                    customer = worker.customer(f"stalled-{n}")
                    await worker.profile(customer, email=address)
                    waiting.append(await worker.enter(email, customer))
                    stalled_customers.append(customer)
                async with asyncio.timeout(RUN_LIMIT):
                    # The server's own thread notes each session reaching RCPT TO.
                    while sum(1 for a in stalled if server.attempts(a)) < default_pool:  # noqa: ASYNC110
                        await asyncio.sleep(0.02)
                others = []
                for n in range(4):
                    customer = worker.customer(f"texted-{n}")
                    await worker.profile(customer, phone=f"+1555040{n:04d}")
                    others.append(await worker.enter(texts, customer))
                assert await finished(others, within=RUN_LIMIT) == ["completed"] * len(others)
                meanwhile = await worker.ledgers(stalled_customers)
                assert await finished(waiting, within=RUN_LIMIT) == ["completed"] * len(waiting)
                after = await worker.ledgers(stalled_customers)

    # The texts went out while every stalled session was still waiting for its reply.
    assert set(meanwhile.values()) == {("sending", None)}, meanwhile
    assert len(twilio.created) == 4
    # Then each stalled send timed out before its message went out, and its retry went through.
    assert set(after.values()) == {("sent", None)}
    assert all(len(server.attempts(address)) == 2 for address in stalled)
