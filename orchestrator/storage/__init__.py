"""Postgres storage: schema migrations, events and profiles, journeys, runs, KPIs and the ledger.

All functions take an asyncpg connection or pool as their first argument and keyword-only data,
so callers decide the transaction boundaries (ingest writes events and outbox rows in one).
"""

from .funnel import StageFunnel, funnel
from .journeys import (
    DeployResult,
    JourneySummary,
    active_plans,
    deploy_plan,
    list_journeys,
    load_plan,
)
from .ledger import ClaimResult, claim_send, finish_send, release_send
from .migrate import migrate
from .outbox import (
    OutboxRow,
    claim_outbox,
    mark_delivered,
    mark_failed,
    notify_outbox,
    pending_count,
)
from .pool import connect, create_pool
from .runs import Outcome, record_transition

__all__ = [
    "ClaimResult",
    "DeployResult",
    "JourneySummary",
    "OutboxRow",
    "Outcome",
    "StageFunnel",
    "active_plans",
    "claim_outbox",
    "claim_send",
    "connect",
    "create_pool",
    "deploy_plan",
    "finish_send",
    "funnel",
    "list_journeys",
    "load_plan",
    "mark_delivered",
    "mark_failed",
    "migrate",
    "notify_outbox",
    "pending_count",
    "record_transition",
    "release_send",
]
