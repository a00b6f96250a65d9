"""The emotion curve: average satisfaction per stage and per touchpoint of one journey."""

from __future__ import annotations

from fastapi import APIRouter

from ..auth import AdminDep

router = APIRouter(prefix="/api/journeys", tags=["emotions"], dependencies=[AdminDep])
