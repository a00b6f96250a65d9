"""The send activity against the ledger: a retried or replayed send never delivers twice."""

from __future__ import annotations

import socket

import pytest
from temporalio.testing import ActivityEnvironment

from journeyman.channels import RetryableDeliveryError, SmtpProvider
from journeyman.orchestrator.storage import ledger
from journeyman.workflows.activities import JourneyActivities
from journeyman.workflows.inputs import SendInput

from .conftest import Harness, event

JOURNEY = """
id: sends
name: Sends
entry: {event: Signed Up}
stages:
  - name: awareness
    touchpoints:
      - send:
          id: hello
          subject: "Hi {{ profile.first_name }}"
          body: "Plan {{ event.properties.plan }}"
      - send: {id: broken, subject: "Hi {{ profile.no_such_trait }}", body: "x"}
"""


def _input(plan_version: str, customer: str, step: str) -> SendInput:
    return SendInput(
        send_key=f"run-{customer}/awareness/{step}/0",
        journey_id="sends",
        version=plan_version,
        customer_id=customer,
        step_id=step,
        stage="awareness",
        entry_event=event("Signed Up", plan="pro"),
    )


async def _ledger(harness: Harness, send_key: str) -> tuple[str, str | None] | None:
    row = await harness.pool.fetchrow(
        "SELECT status, reason FROM deliveries WHERE send_key = $1", send_key
    )
    return (row["status"], row["reason"]) if row else None


async def test_second_attempt_of_the_same_send_is_a_duplicate(harness: Harness) -> None:
    plan = await harness.deploy(JOURNEY)
    await harness.profile("d1", email="di@example.com", first_name="Di")
    env = ActivityEnvironment()
    send = _input(plan.version, "d1", "hello")
    first = await env.run(harness.activities.send_message, send)
    second = await env.run(harness.activities.send_message, send)
    assert (first.status, second.status) == ("sent", "duplicate")
    [message] = harness.sink.messages
    assert message["Subject"] == "Hi Di"
    assert message.get_content().strip() == "Plan pro"
    assert await _ledger(harness, send.send_key) == ("sent", None)


async def _claimed_by_a_dead_attempt(
    harness: Harness, send: SendInput, *, handed_over: bool
) -> None:
    await harness.pool.execute(
        "INSERT INTO deliveries (send_key, journey_id, version, customer_id, step_id, channel,"
        " status, handed_over_at) VALUES ($1, 'sends', $2, $3, 'hello', 'email', 'sending',"
        " CASE WHEN $4 THEN now() END)",
        send.send_key,
        send.version,
        send.customer_id,
        handed_over,
    )


async def test_interrupted_attempt_is_not_sent_again(harness: Harness) -> None:
    plan = await harness.deploy(JOURNEY)
    await harness.profile("d2", email="ed@example.com")
    send = _input(plan.version, "d2", "hello")
    # A worker died after handing the message to the provider, which may have it.
    await _claimed_by_a_dead_attempt(harness, send, handed_over=True)
    result = await ActivityEnvironment().run(harness.activities.send_message, send)
    assert result.status == "unknown"
    assert harness.sink.messages == []
    assert (await _ledger(harness, send.send_key) or ("",))[0] == "unknown"


async def test_a_claim_that_never_reached_the_provider_is_taken_over_and_sent(
    harness: Harness,
) -> None:
    plan = await harness.deploy(JOURNEY)
    await harness.profile("d6", email="jo@example.com", first_name="Jo")
    send = _input(plan.version, "d6", "hello")
    # A worker died after claiming the send, while it was still composing the message.
    await _claimed_by_a_dead_attempt(harness, send, handed_over=False)
    result = await ActivityEnvironment().run(harness.activities.send_message, send)
    assert result.status == "sent"
    [message] = harness.sink.messages
    assert message["Subject"] == "Hi Jo"
    assert await _ledger(harness, send.send_key) == ("sent", None)
    # The dead attempt, were it only slow, may no longer hand its copy over.
    assert not await ledger.hand_over(harness.pool, send_key=send.send_key, attempt=1)
    again = await ActivityEnvironment().run(harness.activities.send_message, send)
    assert again.status == "duplicate" and len(harness.sink.messages) == 1


async def test_an_attempt_overtaken_by_a_later_one_does_not_send(harness: Harness) -> None:
    plan = await harness.deploy(JOURNEY)
    await harness.profile("d7", email="ka@example.com")
    send = _input(plan.version, "d7", "hello")

    async def claim() -> ledger.ClaimResult:
        return await ledger.claim_send(
            harness.pool,
            send_key=send.send_key,
            journey_id="sends",
            version=plan.version,
            customer_id="d7",
            step_id="hello",
            channel="email",
        )

    first = await claim()
    # Presumed dead, the first attempt is overtaken before it hands the message over.
    second = await claim()
    assert (first.claimed, first.fresh, second.claimed, second.fresh) == (True, True, True, False)
    assert not await ledger.hand_over(harness.pool, send_key=send.send_key, attempt=first.attempts)
    assert await ledger.hand_over(harness.pool, send_key=send.send_key, attempt=second.attempts)
    # Once handed over, a third attempt may not take the claim.
    third = await claim()
    assert (third.claimed, third.handed_over, third.status) == (False, True, "sending")


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_send_that_never_reached_the_provider_is_retried_once(harness: Harness) -> None:
    plan = await harness.deploy(JOURNEY)
    await harness.profile("d3", email="fi@example.com", first_name="Fi")
    send = _input(plan.version, "d3", "hello")
    down = JourneyActivities(
        harness.pool,
        email=SmtpProvider("127.0.0.1", _closed_port(), local_hostname="localhost", timeout=2),
        from_address="journeys@shop.example",
    )
    with pytest.raises(RetryableDeliveryError):
        await ActivityEnvironment().run(down.send_message, send)
    assert await _ledger(harness, send.send_key) is None  # claim given back
    result = await ActivityEnvironment().run(harness.activities.send_message, send)
    assert result.status == "sent"
    assert len(harness.sink.messages) == 1


async def test_bad_profile_or_template_is_recorded_not_raised(harness: Harness) -> None:
    plan = await harness.deploy(JOURNEY)
    await harness.profile("d4", first_name="No Email")
    await harness.profile("d5", email="gi@example.com")
    env = ActivityEnvironment()
    skipped = await env.run(harness.activities.send_message, _input(plan.version, "d4", "hello"))
    failed = await env.run(harness.activities.send_message, _input(plan.version, "d5", "broken"))
    assert (skipped.status, skipped.reason) == ("skipped", "customer has no email address")
    assert failed.status == "failed" and "no_such_trait" in (failed.reason or "")
    assert harness.sink.messages == []
    status, reason = await _ledger(harness, "run-d5/awareness/broken/0") or ("", "")
    assert status == "failed" and "no_such_trait" in (reason or "")
