"""In-app messages over HTTP: the customer's own under ``/v1/in-app``, everyone's under ``/api``.

The ``/v1`` routes are for sites and apps, authenticated like ingest by a write key (HTTP
Basic user, or ``writeKey`` in a POST body). A write key is public in browsers, so each
request names its customer (``userId`` or ``anonymousId``; ``userId`` wins when both are
given) and only that customer's messages are listed or changed: a message of anyone else
answers 404, as one that does not exist. The limit of that: whoever has the write key and a
customer's id can read that customer's messages. The stronger mode requires a signed
per-customer token beside the key (HTTP Basic password, or ``token`` in a POST body), which
the site's backend gets from ``POST /api/in-app/tokens``; see ``journeyman.orchestrator.inapp
.tokens``.
"""

from __future__ import annotations

import base64
import binascii
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, Literal, TypeVar

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, ValidationError

from journeyman.orchestrator import inapp
from journeyman.orchestrator.customers import listing
from journeyman.orchestrator.customers.identity import aliases_of, canonical
from journeyman.orchestrator.inapp.tokens import DEFAULT_TTL, MAX_TTL

from ..auth import AdminDep, ServicesDep, check_write_key
from ..backpressure import database_unavailable_is_503
from ..body import read_json
from ..errors import ApiError, NulFree, NulGuard, error_responses, field_errors, json_body
from ..services import Services

browser_router = APIRouter(prefix="/v1/in-app", tags=["in-app"], dependencies=[NulGuard])
admin_router = APIRouter(
    prefix="/api/in-app",
    tags=["in-app"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

# A read or acknowledge body names a customer and, at most, carries a key and a token.
MAX_ACTION_BYTES = 4 * 1024
CustomerId = Annotated[str, Field(min_length=1, max_length=160), NulFree]


class InAppMessagePublic(BaseModel):
    """A message as the customer's app sees it."""

    id: str
    title: str
    body: str
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None
    expires_at: datetime | None


class InAppPagePublic(BaseModel):
    messages: list[InAppMessagePublic]
    next: str | None = Field(description="pass as `after` for the next page; null on the last")


class InAppMessageAdmin(InAppMessagePublic):
    """A message with what only administrators see: whose it is and which send made it."""

    customer_id: str
    send_key: str
    acknowledged_at: datetime | None


class InAppAdminPagePublic(BaseModel):
    customer_id: str
    messages: list[InAppMessageAdmin]
    next: str | None


class InAppAction(BaseModel):
    """Who is reading or acknowledging: the customer's id, and the credentials if not in
    the ``Authorization`` header."""

    model_config = ConfigDict(populate_by_name=True, extra="forbid")

    user_id: CustomerId | None = Field(default=None, alias="userId")
    anonymous_id: CustomerId | None = Field(default=None, alias="anonymousId")
    write_key: str | None = Field(default=None, alias="writeKey", max_length=200)
    token: str | None = Field(default=None, max_length=200)


class InAppListing(InAppAction):
    """A listing asked by POST, as browsers ask without a CORS preflight."""

    limit: int = inapp.DEFAULT_LIMIT
    after: str | None = Field(default=None, max_length=1000)


def _public(message: inapp.InAppMessage) -> InAppMessagePublic:
    return InAppMessagePublic(
        id=message.id,
        title=message.title,
        body=message.body,
        data=message.data,
        created_at=message.created_at,
        read_at=message.read_at,
        expires_at=message.expires_at,
    )


def _basic_credentials(request: Request) -> tuple[str | None, str | None]:
    """The user (write key) and password (customer token) of an HTTP Basic header."""
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic" or not value:
        return None, None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise ApiError(401, "unauthorized", "malformed Basic authorization header") from None
    user, _, password = decoded.partition(":")
    return user, password or None


async def _customer_ids(
    services: Services,
    *,
    write_key: str | None,
    token: str | None,
    user_id: str | None,
    anonymous_id: str | None,
) -> list[str]:
    """The ids of the customer a browser request may act for; 4xx when it may not."""
    await check_write_key(services, write_key)
    requested = user_id or anonymous_id
    if requested is None:
        raise ApiError(400, "invalid_request", "userId or anonymousId is required")
    now = datetime.now(UTC)
    if token is not None:
        # A token that does not fit is refused even where tokens are optional: it is wrong.
        if not inapp.verify(services.admin_token, requested, token, now=now):
            raise ApiError(401, "unauthorized", "the customer token is not valid for this id")
    elif await inapp.tokens_required(services.pool):
        raise ApiError(
            401,
            "unauthorized",
            "a customer token is required (HTTP Basic password, or token in the body)",
        )
    customer_id = await canonical(services.pool, requested)
    return [customer_id, *await aliases_of(services.pool, customer_id)]


def _page_request(limit: int, after: str | None) -> listing.PageRequest:
    if not 1 <= limit <= inapp.MAX_LIMIT:
        raise ApiError(400, "invalid_request", f"limit must be between 1 and {inapp.MAX_LIMIT}")
    try:
        return listing.PageRequest(
            limit, listing.decode_cursor(after, parts=3) if after is not None else None
        )
    except listing.PageError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None


async def _page(
    services: Services, ids: list[str], request: listing.PageRequest, *, pending_only: bool
) -> inapp.MessagePage:
    try:
        return await inapp.list_for_customer(
            services.pool, customer_ids=ids, request=request, pending_only=pending_only
        )
    except inapp.MessageError as exc:
        raise ApiError(400, "invalid_request", str(exc)) from None


# --- the customer's own: /v1/in-app --------------------------------------------------------

_BROWSER_RESPONSES = error_responses(
    400,
    401,
    404,
    413,
    503,
    s400="no customer id, or a bad page parameter",
    s401="missing or unknown write key; missing or invalid customer token",
    s404="no such message for this customer",
    s413=f"body over {MAX_ACTION_BYTES} bytes",
    s503="database away: retry later",
)


@browser_router.get(
    "",
    response_model=InAppPagePublic,
    responses={k: v for k, v in _BROWSER_RESPONSES.items() if k != 413},
)
async def pending_messages(
    request: Request,
    services: ServicesDep,
    user_id: Annotated[str | None, Query(alias="userId", min_length=1, max_length=160)] = None,
    anonymous_id: Annotated[
        str | None, Query(alias="anonymousId", min_length=1, max_length=160)
    ] = None,
    limit: int = inapp.DEFAULT_LIMIT,
    after: str | None = None,
) -> InAppPagePublic:
    """The customer's pending messages (neither acknowledged nor expired), unread first.

    The write key (and customer token) go as HTTP Basic user (and password).
    """
    write_key, token = _basic_credentials(request)
    try:
        asked = InAppListing(
            user_id=user_id,
            anonymous_id=anonymous_id,
            write_key=write_key,
            token=token,
            limit=limit,
            after=after,
        )
    except ValidationError as exc:  # an overlong key or token in the header
        fields = field_errors(exc)
        raise ApiError(400, "invalid_request", "request is not valid", fields=fields) from None
    return await _pending(services, asked)


@browser_router.post(
    "",
    response_model=InAppPagePublic,
    responses=_BROWSER_RESPONSES,
    openapi_extra=json_body(InAppListing, "who asks, and which page"),
)
async def pending_messages_by_post(request: Request, services: ServicesDep) -> InAppPagePublic:
    """The same listing with everything in the body (``writeKey``, ``userId``, ``token``,
    ``limit``, ``after``): a ``text/plain`` POST is what a browser sends cross-origin without
    a CORS preflight."""
    asked = await _read_body(request, InAppListing)
    write_key, token = _basic_credentials(request)
    update = {"write_key": write_key or asked.write_key, "token": token or asked.token}
    return await _pending(services, asked.model_copy(update=update))


async def _pending(services: Services, asked: InAppListing) -> InAppPagePublic:
    page_request = _page_request(asked.limit, asked.after)
    with database_unavailable_is_503():
        ids = await _customer_ids(
            services,
            write_key=asked.write_key,
            token=asked.token,
            user_id=asked.user_id,
            anonymous_id=asked.anonymous_id,
        )
        page = await _page(services, ids, page_request, pending_only=True)
    return InAppPagePublic(messages=[_public(m) for m in page.messages], next=page.next)


ActionModel = TypeVar("ActionModel", bound=InAppAction)


async def _read_body(request: Request, model: type[ActionModel]) -> ActionModel:
    body = await read_json(request, limit=MAX_ACTION_BYTES)
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        fields = field_errors(exc)
        raise ApiError(400, "invalid_request", "request is not valid", fields=fields) from None


async def _act(
    request: Request, services: Services, message_id: str, action: Literal["read", "ack"]
) -> InAppMessagePublic:
    asked = await _read_body(request, InAppAction)
    write_key, token = _basic_credentials(request)
    with database_unavailable_is_503():
        ids = await _customer_ids(
            services,
            write_key=write_key or asked.write_key,
            token=token or asked.token,
            user_id=asked.user_id,
            anonymous_id=asked.anonymous_id,
        )
        change = inapp.mark_read if action == "read" else inapp.acknowledge
        message = await change(services.pool, customer_ids=ids, id=message_id)
    if message is None:
        raise ApiError(404, "not_found", f"no in-app message {message_id!r} for this customer")
    return _public(message)


@browser_router.post(
    "/{message_id}/read",
    response_model=InAppMessagePublic,
    responses=_BROWSER_RESPONSES,
    openapi_extra=json_body(InAppAction, "who is reading"),
)
async def read(message_id: str, request: Request, services: ServicesDep) -> InAppMessagePublic:
    """The customer saw the message: it stays pending, after the unread ones."""
    return await _act(request, services, message_id, "read")


@browser_router.post(
    "/{message_id}/ack",
    response_model=InAppMessagePublic,
    responses=_BROWSER_RESPONSES,
    openapi_extra=json_body(InAppAction, "who is acknowledging"),
)
async def acknowledge(
    message_id: str, request: Request, services: ServicesDep
) -> InAppMessagePublic:
    """The customer dismissed or acted on the message: it is no longer pending."""
    return await _act(request, services, message_id, "ack")


# --- administration: /api/in-app -----------------------------------------------------------


@admin_router.get("", response_model=InAppAdminPagePublic, responses=error_responses(400))
async def customer_messages(
    services: ServicesDep,
    customer_id: Annotated[str, Query(min_length=1, max_length=160)],
    status: Literal["pending", "all"] = "all",
    limit: int = inapp.DEFAULT_LIMIT,
    after: str | None = None,
) -> InAppAdminPagePublic:
    """A customer's messages (an alias resolves to its customer), unread first, newest first."""
    page_request = _page_request(limit, after)
    resolved = await canonical(services.pool, customer_id)
    ids = [resolved, *await aliases_of(services.pool, resolved)]
    page = await _page(services, ids, page_request, pending_only=status == "pending")
    return InAppAdminPagePublic(
        customer_id=resolved,
        messages=[
            InAppMessageAdmin(
                **_public(m).model_dump(),
                customer_id=m.customer_id,
                send_key=m.send_key,
                acknowledged_at=m.acknowledged_at,
            )
            for m in page.messages
        ],
        next=page.next,
    )


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    customer_id: CustomerId = Field(description="the id the page sends as userId or anonymousId")
    ttl_seconds: int = Field(
        default=int(DEFAULT_TTL.total_seconds()),
        ge=1,
        le=int(MAX_TTL.total_seconds()),
    )


class TokenPublic(BaseModel):
    token: str
    customer_id: str
    expires_at: datetime


@admin_router.post(
    "/tokens", response_model=TokenPublic, status_code=201, responses=error_responses(400)
)
async def issue_customer_token(body: TokenRequest, services: ServicesDep) -> TokenPublic:
    """A token for a customer's browser requests, for the site's backend to hand its page."""
    issued = inapp.issue(
        services.admin_token,
        body.customer_id,
        now=datetime.now(UTC),
        ttl=timedelta(seconds=body.ttl_seconds),
    )
    return TokenPublic(
        token=issued.token, customer_id=issued.customer_id, expires_at=issued.expires_at
    )


class InAppSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Strict: 0, 1 or "yes" are not booleans; a switch that guards tokens takes only true or false.
    require_token: StrictBool = Field(
        description="refuse browser requests without a customer token beside the write key"
    )


@admin_router.get("/settings", response_model=InAppSettings)
async def settings(services: ServicesDep) -> InAppSettings:
    return InAppSettings(require_token=await inapp.tokens_required(services.pool))


@admin_router.put("/settings", response_model=InAppSettings, responses=error_responses(400))
async def change_settings(body: InAppSettings, services: ServicesDep) -> InAppSettings:
    """Turn the customer-token requirement on or off (every API process follows at once)."""
    await inapp.require_tokens(services.pool, body.require_token)
    return body
