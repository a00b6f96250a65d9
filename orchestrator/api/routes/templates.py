"""Template preview: render a message for a real customer or sample data, without sending.

The preview renders with the engine's renderer and the same context a send builds
(``journeyman.channels.render``), so what it shows is what a customer would get, and a
template that would fail a send fails here with the same error: a 422 naming the part, the
line and why.
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from journeyman.channels import RenderError
from journeyman.channels.render import (
    CHANNEL_FIELDS,
    MessageTemplate,
    RenderedMessage,
    Renderer,
    pick_locale,
    template_context,
)
from journeyman.orchestrator.customers import metrics as customer_metrics
from journeyman.orchestrator.customers.view import identify
from journeyman.orchestrator.storage.profiles import traits as load_traits

from ..auth import AdminDep, ServicesDep
from ..body import read_json
from ..errors import ApiError, NulFree, NulGuard, error_responses, field_errors, json_body

router = APIRouter(
    prefix="/api/templates",
    tags=["templates"],
    dependencies=[AdminDep, NulGuard],
    responses=error_responses(401),
)

# A preview holds a few templates and a sample customer; journeys themselves are 256 KB at most.
MAX_PREVIEW_BYTES = 256 * 1024

Channel = Literal["email", "sms", "push", "webhook", "in_app"]

# One renderer for every preview: compiled templates are cached across requests.
_renderer = Renderer()


class LocaleVariant(BaseModel):
    """A translation, as in a journey's ``locales``: it replaces subject (or title), body
    and html."""

    model_config = ConfigDict(extra="forbid")

    subject: str | None = None
    title: str | None = None
    body: str
    html: str | None = None


class PreviewTemplate(MessageTemplate):
    """The texts to render, named as a journey's send step names them (``title`` for push
    and in-app, ``subject`` for email), with optional translations."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str | None = None
    locales: dict[str, LocaleVariant] = Field(default_factory=dict)


# Push and in-app messages have a title where an email has a subject.
TITLED = ("push", "in_app")


class SampleEvent(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class SampleJourney(BaseModel):
    model_config = ConfigDict(extra="forbid")

    id: str | None = None
    name: str | None = None
    stage: str | None = None
    step: str | None = None


class Sample(BaseModel):
    """Values to render with; with a ``customer_id`` they override the stored ones."""

    model_config = ConfigDict(extra="forbid")

    profile: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    event: SampleEvent = Field(default_factory=SampleEvent)
    journey: SampleJourney = Field(default_factory=SampleJourney)


class PreviewRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: Channel
    template: PreviewTemplate
    customer_id: Annotated[str | None, Field(min_length=1, max_length=160), NulFree] = None
    sample: Sample = Field(default_factory=Sample)
    # The customer's locale; by default the profile's ``locale`` trait, as a send reads it.
    locale: str | None = Field(default=None, max_length=35)


class PreviewPublic(BaseModel):
    channel: Channel
    locale: str | None = Field(description="the translation used; null for the default text")
    rendered: dict[str, Any] = Field(description="the rendered fields the channel reads")
    context: dict[str, Any] = Field(description="what the templates saw")


class RenderErrorPublic(BaseModel):
    error: Literal["render_error"] = "render_error"
    message: str
    part: str
    line: int | None
    reason: str


_RESPONSES: dict[int | str, dict[str, Any]] = {
    **error_responses(
        400,
        404,
        413,
        s400="not valid, or a field the channel does not read",
        s404="no such customer",
        s413=f"request over {MAX_PREVIEW_BYTES} bytes",
    ),
    422: {"model": RenderErrorPublic, "description": "a template failed to render"},
}


async def _customer_values(
    services: Any, customer_id: str
) -> tuple[str, dict[str, Any], dict[str, Any]]:
    found = await identify(services.pool, customer_id)
    if found is None:
        raise ApiError(404, "not_found", f"no customer {customer_id!r}")
    traits = await load_traits(services.pool, found.customer_id)
    metrics = await customer_metrics.load(services.pool, found.customer_id)
    return found.customer_id, traits, customer_metrics.condition_values(metrics)


def _heading(channel: str, subject: str | None, title: str | None, where: str) -> str:
    """The subject or title of a template, as the plan holds it (in ``subject``)."""
    if title is not None and channel not in TITLED:
        raise ApiError(400, "invalid_request", f"{channel} messages have no title ({where})")
    if title is not None and subject:
        raise ApiError(400, "invalid_request", f"give a title or a subject, not both ({where})")
    return title if title is not None else subject or ""


def _chosen(
    channel: str, template: PreviewTemplate, locale: str | None
) -> tuple[str | None, MessageTemplate]:
    """The template for ``locale``: a translation's texts over the base, or the base."""
    fields = template.model_dump(exclude={"locales", "title"}, exclude_unset=True)
    if template.title is not None or template.subject:
        fields["subject"] = _heading(channel, template.subject, template.title, "template")
    base = MessageTemplate(**fields)
    # Keys as journeys spell them (``zh-tw``), whatever case the request used.
    by_tag = {tag.replace("_", "-").lower(): tag for tag in template.locales}
    picked = pick_locale(by_tag, locale)
    if picked is None:
        return None, base
    variant = template.locales[picked]
    update: dict[str, Any] = {
        "subject": _heading(channel, variant.subject, variant.title, f"locales.{picked}"),
        "body": variant.body,
        "html": variant.html,
    }
    return picked, base.model_copy(update=update)


def _public(channel: str, rendered: RenderedMessage) -> dict[str, Any]:
    out = rendered.model_dump(include=set(CHANNEL_FIELDS[channel]))
    if channel in TITLED:
        out["title"] = out.pop("subject")
    return out


@router.post(
    "/preview",
    response_model=PreviewPublic,
    responses=_RESPONSES,
    openapi_extra=json_body(PreviewRequest, "the template and what to render it with"),
)
async def preview(request: Request, services: ServicesDep) -> PreviewPublic | JSONResponse:
    """Render a template for a customer (``customer_id``) or sample values; nothing is sent."""
    body = await read_json(request, limit=MAX_PREVIEW_BYTES)
    try:
        asked = PreviewRequest.model_validate(body)
    except ValidationError as exc:
        fields = field_errors(exc)
        raise ApiError(400, "invalid_request", "request is not valid", fields=fields) from None
    customer_id = asked.customer_id
    profile: dict[str, Any] = {}
    metrics: dict[str, Any] = customer_metrics.condition_values(None)
    if asked.customer_id is not None:
        customer_id, profile, metrics = await _customer_values(services, asked.customer_id)
    profile.update(asked.sample.profile)
    metrics.update(asked.sample.metrics)
    context = template_context(
        profile=profile,
        metrics=metrics,
        event_name=asked.sample.event.name,
        event_properties=asked.sample.event.properties,
        journey=asked.sample.journey.model_dump(),
        customer_id=customer_id,
    )
    trait_locale = profile.get("locale")
    locale = asked.locale or (trait_locale if isinstance(trait_locale, str) else None)
    used, template = _chosen(asked.channel, asked.template, locale)
    try:
        # Off the event loop: a template may take a while before its limits stop it.
        rendered = await asyncio.to_thread(
            _renderer.render_message, asked.channel, template, context
        )
    except RenderError as exc:
        failure = RenderErrorPublic(
            message=str(exc),
            part=exc.part,
            line=getattr(exc, "line", None),
            reason=getattr(exc, "reason", "error"),
        )
        return JSONResponse(failure.model_dump(), status_code=422)
    except ValueError as exc:  # a field the channel does not read
        raise ApiError(400, "invalid_request", str(exc)) from None
    return PreviewPublic(
        channel=asked.channel,
        locale=used,
        rendered=_public(asked.channel, rendered),
        context=context,
    )
