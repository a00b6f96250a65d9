"""A journey sending on every channel, through real providers against local servers that
check each provider's documented request shape; exactly once, with honest ledger states."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from temporalio.testing import ActivityEnvironment, WorkflowEnvironment

from journeyman.channels import TwilioSms, WebhookSender
from journeyman.channels.http import shared_client
from journeyman.orchestrator.inapp.provider import InboxProvider
from journeyman.workflows.inputs import SendInput
from journeyman.workflows.providers import ChannelProviders

from ..channels.messaging_servers import TwilioServer, WebhookReceiver
from .conftest import Harness, event, running_harness

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "twilio-test-token-0123456789abcdef"
SIGNING_SECRET = "webhook-signing-secret-0123456789"
GIVE_UP = timedelta(minutes=30)

EVERY_CHANNEL = """
id: every-channel
name: One of each
entry: {event: Signed Up}
stages:
  - name: only
    touchpoints:
      - send: {id: hello-sms, channel: sms, body: "Hi {{ profile.first_name }}, welcome!"}
      - send:
          id: crm
          channel: webhook
          url: "{{ hooks }}/leads"
          method: POST
          headers: {X-Source: journeyman}
          body: '{"email": {{ profile.email | tojson }}, "stage": {{ journey.stage | tojson }}}'
      - send:
          id: inbox
          channel: in_app
          title: "Welcome, {{ profile.first_name }}"
          body: "Your first order ships free."
          data: {coupon: "WELCOME10"}
      - send: {id: app-push, channel: push, title: "Hi", body: "No push provider here"}
"""


@pytest.fixture
async def servers() -> AsyncIterator[tuple[TwilioServer, WebhookReceiver]]:
    async with (
        TwilioServer(account_sid=ACCOUNT_SID, auth_token=AUTH_TOKEN) as twilio,
        WebhookReceiver(secret=SIGNING_SECRET) as hooks,
    ):
        yield twilio, hooks


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with shared_client() as shared:
        yield shared


@pytest.fixture
async def harness(
    time_skipping_env: WorkflowEnvironment,
    database_url: str,
    servers: tuple[TwilioServer, WebhookReceiver],
    client: httpx.AsyncClient,
) -> AsyncIterator[Harness]:
    twilio, _ = servers

    def providers(pool: asyncpg.Pool) -> ChannelProviders:
        return ChannelProviders(
            sms=TwilioSms(
                client,
                account_sid=ACCOUNT_SID,
                auth_token=AUTH_TOKEN,
                from_number="+15005550006",
                base_url=twilio.url,
            ),
            webhook=WebhookSender(client, signing_secret=SIGNING_SECRET),
            in_app=InboxProvider(pool),
        )

    # Sends a provider keeps refusing fail after half an hour here (a day by default), so
    # the time-skipping server reaches the end in a few retries.
    async with running_harness(
        time_skipping_env, database_url, providers, give_up_after=GIVE_UP
    ) as running:
        yield running


async def consent_to_texts(harness: Harness, customer: str) -> None:
    # Marketing texts are opt-in: the customer agreed to them (identify's `consent` trait).
    await harness.pool.execute(
        "UPDATE profiles SET consent = $2 WHERE customer_id = $1", customer, {"sms": True}
    )


async def ledger(harness: Harness, customer: str) -> dict[str, tuple[str, str | None]]:
    rows = await harness.pool.fetch(
        "SELECT step_id, status, reason FROM deliveries WHERE customer_id = $1", customer
    )
    return {row["step_id"]: (row["status"], row["reason"]) for row in rows}


async def test_one_journey_reaches_a_customer_on_every_configured_channel(
    harness: Harness, servers: tuple[TwilioServer, WebhookReceiver]
) -> None:
    twilio, hooks = servers
    plan = await harness.deploy(EVERY_CHANNEL.replace("{{ hooks }}", hooks.url))
    await harness.profile("mei", first_name="Mei", email="mei@example.com", phone="+886912345678")
    await consent_to_texts(harness, "mei")
    run = await harness.enter(plan, "mei")
    assert await run.result() == "completed"

    [sms] = twilio.created
    assert (sms["To"], sms["From"], sms["Body"]) == (
        "+886912345678",
        "+15005550006",
        "Hi Mei, welcome!",
    )
    [hook] = hooks.accepted
    assert hook.path == "/leads" and hook.headers["x-source"] == "journeyman"
    assert json.loads(hook.body) == {"email": "mei@example.com", "stage": "only"}
    inbox = await harness.pool.fetch("SELECT title, body, data FROM in_app_messages")
    assert [(r["title"], r["body"], r["data"]) for r in inbox] == [
        ("Welcome, Mei", "Your first order ships free.", {"coupon": "WELCOME10"})
    ]
    states = await ledger(harness, "mei")
    assert {step: status for step, (status, _) in states.items()} == {
        "hello-sms": "sent",
        "crm": "sent",
        "inbox": "sent",
        "app-push": "failed",
    }
    assert states["app-push"][1] == "no push provider is configured"


async def test_a_customer_a_channel_cannot_reach_is_skipped_with_the_reason(
    harness: Harness, servers: tuple[TwilioServer, WebhookReceiver]
) -> None:
    twilio, hooks = servers
    plan = await harness.deploy(EVERY_CHANNEL.replace("{{ hooks }}", hooks.url))
    await harness.profile("ola", first_name="Ola", email="ola@example.com", phone="0912 345 678")
    await consent_to_texts(harness, "ola")
    assert await (await harness.enter(plan, "ola")).result() == "completed"
    assert twilio.created == []
    status, reason = (await ledger(harness, "ola"))["hello-sms"]
    assert status == "skipped" and reason is not None and "E.164" in reason
    assert len(hooks.accepted) == 1  # the other channels still went out


async def test_marketing_texts_need_consent_and_the_ledger_names_the_rule(
    harness: Harness, servers: tuple[TwilioServer, WebhookReceiver]
) -> None:
    twilio, hooks = servers
    plan = await harness.deploy(EVERY_CHANNEL.replace("{{ hooks }}", hooks.url))
    await harness.profile("ida", first_name="Ida", email="ida@example.com", phone="+886912000222")
    assert await (await harness.enter(plan, "ida")).result() == "completed"
    assert twilio.created == []
    assert (await ledger(harness, "ida"))["hello-sms"] == ("suppressed", "no_consent:sms:marketing")
    assert len(hooks.accepted) == 1


async def test_a_busy_webhook_is_retried_after_its_retry_after_and_sent_once(
    harness: Harness, servers: tuple[TwilioServer, WebhookReceiver]
) -> None:
    _, hooks = servers
    hooks.answer_next(429, {"error": "slow down"}, headers={"Retry-After": "30"})
    hooks.answer_next(503, {"error": "down for a moment"})
    plan = await harness.deploy(EVERY_CHANNEL.replace("{{ hooks }}", hooks.url))
    await harness.profile("kai", first_name="Kai", email="kai@example.com", phone="+886912000111")
    await consent_to_texts(harness, "kai")
    assert await (await harness.enter(plan, "kai")).result() == "completed"
    # Three attempts reached the receiver under one idempotency key; it kept one.
    keys = {r.headers["idempotency-key"] for r in hooks.requests}
    assert len(hooks.requests) == 3 and len(keys) == 1
    assert len(hooks.accepted) == 1
    assert (await ledger(harness, "kai"))["crm"] == ("sent", None)


async def test_a_provider_that_refuses_for_ever_fails_the_send_and_the_customer_moves_on(
    harness: Harness, servers: tuple[TwilioServer, WebhookReceiver]
) -> None:
    _, hooks = servers
    for _ in range(20):
        hooks.answer_next(429, {"error": "slow down"}, headers={"Retry-After": "300"})
    plan = await harness.deploy(EVERY_CHANNEL.replace("{{ hooks }}", hooks.url))
    await harness.profile("max", first_name="Max", email="max@example.com")
    assert await (await harness.enter(plan, "max")).result() == "completed"
    status, reason = (await ledger(harness, "max"))["crm"]
    assert status == "failed" and (reason or "").startswith("gave up after retrying for 3")
    assert "429" in (reason or "")
    # Every five minutes (the Retry-After) for half an hour, then no more.
    assert 6 <= len(hooks.requests) <= 8
    assert hooks.accepted == []
    # The customer went on to the steps after the failed one.
    assert (await ledger(harness, "max"))["inbox"] == ("sent", None)


async def test_a_worker_killed_after_the_receiver_took_a_webhook_sends_it_once(
    harness: Harness, servers: tuple[TwilioServer, WebhookReceiver]
) -> None:
    # The attempt reached the receiver, then the worker died before the ledger said "sent":
    # the row is left "sending". The retry sends again under the same idempotency key, and
    # the receiver, as its contract says, keeps one.
    _, hooks = servers
    plan = await harness.deploy(EVERY_CHANNEL.replace("{{ hooks }}", hooks.url))
    await harness.profile("lin", first_name="Lin", email="lin@example.com")
    send = SendInput(
        send_key="run-lin/only/crm/0",
        journey_id=plan.journey_id,
        version=plan.version,
        customer_id="lin",
        step_id="crm",
        stage="only",
        entry_event=event("Signed Up"),
    )
    env = ActivityEnvironment()
    assert (await env.run(harness.activities.send_message, send)).status == "sent"
    await harness.pool.execute(
        "UPDATE deliveries SET status = 'sending' WHERE send_key = $1", send.send_key
    )
    assert (await env.run(harness.activities.send_message, send)).status == "sent"
    assert len(hooks.requests) == 2 and hooks.duplicates == 1 and len(hooks.accepted) == 1
    assert (await ledger(harness, "lin"))["crm"] == ("sent", None)
