"""Sources: one write key per sender of events, created, listed and revoked by an admin.

The plaintext key appears once, in the answer to its creation; afterwards only its first
characters (the hint) are shown. The configured write key is the source ``default`` and is
changed through configuration, not here.
"""

from __future__ import annotations

import logging
import unicodedata
from datetime import datetime

from fastapi import APIRouter, Response
from pydantic import BaseModel, ConfigDict, Field, field_validator

from journeyman.orchestrator.storage.sources import (
    Source,
    create_source,
    get_source,
    list_sources,
    revoke_source,
)

from ..auth import DEFAULT_SOURCE, AdminDep, ServicesDep
from ..errors import ApiError, NulGuard, error_responses

log = logging.getLogger(__name__)

router = APIRouter(
    prefix="/api/sources",
    tags=["sources"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

_NOT_FOUND = error_responses(404, s404="no such source (the configured key's is not listed)")

MAX_NAME_LENGTH = 100


class SourceCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=MAX_NAME_LENGTH)

    @field_validator("name")
    @classmethod
    def _readable(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("name must not be blank")
        if any(unicodedata.category(c).startswith("C") for c in value):
            raise ValueError("name must not contain control characters")
        return value


class SourcePublic(BaseModel):
    id: str
    name: str
    key_hint: str  # the key's first characters; the key itself is never shown again
    created_at: datetime
    revoked: bool
    revoked_at: datetime | None


class SourceCreated(SourcePublic):
    write_key: str  # shown once: only its digest is stored


def _public(source: Source) -> SourcePublic:
    return SourcePublic(
        id=source.source_id,
        name=source.name,
        key_hint=source.key_hint,
        created_at=source.created_at,
        revoked=source.revoked,
        revoked_at=source.revoked_at,
    )


def _not_found(source_id: str) -> ApiError:
    if source_id == DEFAULT_SOURCE:
        return ApiError(
            404,
            "not_found",
            f"{DEFAULT_SOURCE!r} is the source of the configured write key"
            " (JOURNEYMAN_WRITE_KEY or the data dir's credentials file); change it there",
        )
    return ApiError(404, "not_found", f"no source {source_id!r}")


@router.post("", response_model=SourceCreated, status_code=201, responses=error_responses(400))
async def create(body: SourceCreate, response: Response, services: ServicesDep) -> SourceCreated:
    """Create a source and its write key; the answer is the only place the key appears."""
    source, key = await create_source(services.pool, name=body.name)
    log.info("source %s created", source.source_id)
    # The body carries a secret: no proxy or browser may keep a copy.
    response.headers["Cache-Control"] = "no-store"
    return SourceCreated(**_public(source).model_dump(), write_key=key)


@router.get("", response_model=list[SourcePublic])
async def sources(services: ServicesDep) -> list[SourcePublic]:
    """Every source, oldest first, revoked ones included and marked; never a key."""
    return [_public(s) for s in await list_sources(services.pool)]


@router.get("/{source_id}", response_model=SourcePublic, responses=_NOT_FOUND)
async def source(source_id: str, services: ServicesDep) -> SourcePublic:
    found = await get_source(services.pool, source_id=source_id)
    if found is None:
        raise _not_found(source_id)
    return _public(found)


@router.delete("/{source_id}", response_model=SourcePublic, responses=_NOT_FOUND)
async def revoke(source_id: str, services: ServicesDep) -> SourcePublic:
    """Revoke the source's key: events sent with it are refused from now on, in every process.

    Revoking an already revoked source changes nothing and answers with its first revocation.
    """
    revoked = await revoke_source(services.pool, source_id=source_id)
    if revoked is None:
        raise _not_found(source_id)
    log.info("source %s revoked", source_id)
    return _public(revoked)
