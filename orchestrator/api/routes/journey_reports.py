"""Exit reasons, cohorts by entry week and version comparison of one journey."""

from __future__ import annotations

from fastapi import APIRouter

from ..auth import AdminDep

router = APIRouter(prefix="/api/journeys", tags=["journey reports"], dependencies=[AdminDep])
