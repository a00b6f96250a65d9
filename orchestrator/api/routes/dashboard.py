"""The dashboard: server-rendered pages over the KPIs, behind the admin token."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["dashboard"], include_in_schema=False)
