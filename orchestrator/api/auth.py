"""Credentials: a write key for ingest (HTTP Basic user or ``writeKey`` in the body, as the
Segment spec allows) and an admin bearer token for every ``/api`` route."""

from __future__ import annotations

import base64
import binascii
import secrets
from typing import Annotated

from fastapi import Depends, Request

from .errors import ApiError
from .services import Services


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


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
    """The id of the source whose write key this is; 401 for a missing or unknown key."""
    if supplied is None:
        raise ApiError(
            401,
            "unauthorized",
            "a write key is required (HTTP Basic user or writeKey in the body)",
            headers={"WWW-Authenticate": 'Basic realm="journeyman"'},
        )
    if not secrets.compare_digest(supplied.encode(), services.write_key.encode()):
        raise ApiError(401, "unauthorized", "unknown write key")
    return DEFAULT_SOURCE


def require_admin(request: Request, services: ServicesDep) -> None:
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
