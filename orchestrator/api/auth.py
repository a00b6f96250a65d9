"""Credentials: write keys for ingest (HTTP Basic user or ``writeKey`` in the body, as the
Segment spec allows), one per source, and an admin bearer token for every ``/api`` route.

Write keys are never logged: a rejected key is reported without the key itself.
"""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Annotated

from fastapi import Depends, Request

from journeyman.orchestrator.storage.sources import source_for_key

from .errors import ApiError
from .services import Services


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def get_services(request: Request) -> Services:
    # Async, though it awaits nothing: FastAPI runs a plain function dependency in a worker
    # thread, a hop every request would pay.
    return services_of(request)


# The source of the write key fixed by configuration (`JOURNEYMAN_WRITE_KEY` or the data dir).
DEFAULT_SOURCE = "default"

ServicesDep = Annotated[Services, Depends(get_services)]


def basic_user(request: Request) -> str | None:
    """The user part of an HTTP Basic header (Segment sends the write key there)."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "unauthorized", "malformed Basic authorization header") from None
    return decoded.partition(":")[0]


async def check_write_key(services: Services, supplied: str | None) -> str:
    """The id of the source whose write key this is; 401 for a missing, unknown or revoked key.

    The configured key is the source `DEFAULT_SOURCE`; any other key is looked up by its
    digest in ``sources`` on every call, so a revocation holds at once in every process.
    """
    if supplied is None:
        raise ApiError(
            401,
            "unauthorized",
            "a write key is required (HTTP Basic user or writeKey in the body)",
            headers={"WWW-Authenticate": 'Basic realm="journeyman"'},
        )
    if secrets.compare_digest(supplied.encode(), services.write_key.encode()):
        return DEFAULT_SOURCE
    # The lookup goes by SHA-256 digest, so its timing says nothing about the stored keys.
    source_id = await source_for_key(services.pool, key=supplied) if supplied else None
    if source_id is None:
        # One message for both cases: a caller learns nothing about which keys ever existed.
        raise ApiError(401, "unauthorized", "unknown or revoked write key")
    return source_id


async def require_admin(request: Request, services: ServicesDep) -> None:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401,
            "unauthorized",
            "admin token required as 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if not secrets.compare_digest(token.strip().encode(), services.admin_token.encode()):
        raise ApiError(401, "unauthorized", "invalid admin token")


AdminDep = Depends(require_admin)
