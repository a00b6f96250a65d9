"""Connecting to Temporal with the converter every Journeyman process must share."""

from __future__ import annotations

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter


async def connect_temporal(address: str, *, namespace: str = "default") -> Client:
    """A client whose payloads are pydantic models (plans, events, activity inputs)."""
    return await Client.connect(
        address, namespace=namespace, data_converter=pydantic_data_converter
    )
