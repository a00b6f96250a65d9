"""The journey workflow's activities, as methods of a class built with its dependencies.

Sends go through the delivery ledger: the row is claimed before the provider is called, so a
retried or replayed send never delivers twice (invariant 3). A bad profile or template fails
that one send, visibly in the ledger, and the customer continues.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from typing import Any

import asyncpg
from temporalio import activity

from journeyman.channels import (
    EmailMessage,
    EmailProvider,
    EmailTemplate,
    PermanentDeliveryError,
    Renderer,
    RenderError,
    RetryableDeliveryError,
    message_id_for,
)
from journeyman.orchestrator.storage import journeys, ledger, runs

from .inputs import LoadPlanInput, SendInput, SendResult, TransitionInput
from .plan import Plan, SendStep

log = logging.getLogger(__name__)

PLAN_CACHE_SIZE = 256


class JourneyActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        *,
        email: EmailProvider,
        from_address: str,
        renderer: Renderer | None = None,
    ) -> None:
        self._pool = pool
        self._email = email
        self._from = from_address
        self._renderer = renderer or Renderer()
        # Plans are immutable per version, so caching them can never serve a stale one.
        self._plans: OrderedDict[tuple[str, str], Plan] = OrderedDict()

    async def _plan(self, journey_id: str, version: str) -> Plan:
        key = (journey_id, version)
        plan = self._plans.get(key)
        if plan is None:
            plan = await journeys.load_plan(self._pool, journey_id=journey_id, version=version)
            self._plans[key] = plan
            if len(self._plans) > PLAN_CACHE_SIZE:
                self._plans.popitem(last=False)
        else:
            self._plans.move_to_end(key)
        return plan

    @activity.defn(name="load_plan")
    async def load_plan(self, input: LoadPlanInput) -> Plan:
        return await self._plan(input.journey_id, input.version)

    @activity.defn(name="record_transition")
    async def record_transition(self, input: TransitionInput) -> bool:
        async with self._pool.acquire() as conn:
            return await runs.record_transition(conn, **input.model_dump())

    @activity.defn(name="send_message")
    async def send_message(self, input: SendInput) -> SendResult:
        plan = await self._plan(input.journey_id, input.version)
        step = plan.step(input.step_id)
        if not isinstance(step, SendStep):
            raise ValueError(f"step {input.step_id} is not a send")
        claim = await ledger.claim_send(
            self._pool,
            send_key=input.send_key,
            journey_id=input.journey_id,
            version=input.version,
            customer_id=input.customer_id,
            step_id=input.step_id,
            channel=step.channel,
        )
        if not claim.claimed:
            if claim.status == "sending":
                # An earlier attempt died while the provider had the message; SMTP takes no
                # idempotency key, so sending again could deliver twice. Record and move on.
                await self._finish(input, "unknown", "an earlier attempt may have been delivered")
                return SendResult(status="unknown", reason="earlier attempt interrupted")
            return SendResult(status="duplicate", reason=f"already {claim.status}")
        try:
            message = await self._compose(input, plan, step)
        except _Skip as skip:
            await self._finish(input, skip.status, skip.reason)
            return SendResult(status=skip.status, reason=skip.reason)
        except BaseException:
            await ledger.release_send(self._pool, send_key=input.send_key)
            raise
        # Shielded: once the message is handed to the provider, a cancelled or shut-down
        # activity still waits for the answer and records it, so the ledger stays truthful.
        return await asyncio.shield(self._deliver(input, message))

    async def _compose(self, input: SendInput, plan: Plan, step: SendStep) -> EmailMessage:
        traits: dict[str, Any] = (
            await self._pool.fetchval(
                "SELECT traits FROM profiles WHERE customer_id = $1", input.customer_id
            )
            or {}
        )
        address = traits.get("email")
        if not isinstance(address, str) or "@" not in address:
            raise _Skip("skipped", "customer has no email address")
        entry = input.entry_event
        context = {
            "profile": traits,
            "event": {"name": entry.name, "properties": entry.properties} if entry else {},
            "journey": {"id": plan.journey_id, "name": plan.name, "stage": input.stage},
            "customer_id": input.customer_id,
        }
        try:
            rendered = self._renderer.render_email(
                EmailTemplate(subject=step.subject, body=step.body, html=step.html), context
            )
        except RenderError as exc:
            raise _Skip("failed", f"template: {exc}") from None
        name = traits.get("name") or " ".join(
            str(traits[k]) for k in ("first_name", "last_name") if traits.get(k)
        )
        return EmailMessage(
            to_address=address,
            to_name=str(name) or None,
            from_address=self._from,
            subject=rendered.subject,
            text=rendered.text,
            html=rendered.html,
            message_id=message_id_for(input.send_key, from_address=self._from),
        )

    async def _deliver(self, input: SendInput, message: EmailMessage) -> SendResult:
        try:
            receipt = await self._email.send(message)
        except RetryableDeliveryError as exc:
            if exc.maybe_delivered:
                await self._finish(input, "unknown", str(exc), message)
                return SendResult(status="unknown", reason=str(exc))
            # The provider certainly did not take it: give the claim back and let Temporal retry.
            await ledger.release_send(self._pool, send_key=input.send_key)
            raise
        except PermanentDeliveryError as exc:
            await self._finish(input, "failed", str(exc), message)
            return SendResult(status="failed", reason=str(exc))
        await self._finish(input, "sent", None, message, receipt.provider_message_id)
        log.debug(
            "sent %s step %s to customer %s", input.journey_id, input.step_id, input.customer_id
        )
        return SendResult(status="sent")

    async def _finish(
        self,
        input: SendInput,
        status: ledger.FinalStatus,
        reason: str | None,
        message: EmailMessage | None = None,
        provider_message_id: str | None = None,
    ) -> None:
        await ledger.finish_send(
            self._pool,
            send_key=input.send_key,
            status=status,
            reason=reason,
            recipient=message.to_address if message else None,
            subject=message.subject if message else None,
            provider_message_id=provider_message_id,
        )


class _Skip(Exception):
    def __init__(self, status: ledger.FinalStatus, reason: str) -> None:
        super().__init__(reason)
        self.status, self.reason = status, reason
