"""The ``send`` touchpoint as written, one model per channel, and their union ``SendSpec``.

A send without ``channel`` is an email, as it always was. The channel picks the model that
validates the rest (``SEND_MODELS``), so a key that belongs to another channel is reported
where it stands (``misplaced_key``) and each model's JSON Schema holds only its own keys.
Every text is a Jinja template, checked for syntax here and rendered when the message goes out.
Every send may also say what it is for and how that is measured (``goal``, ``kpi``: ``kpis.py``).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    GetJsonSchemaHandler,
    Tag,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from journeyman.workflows.plan import CHANNELS, Channel

from .field_schemas import _not_empty, _present
from .fields import UNKNOWN_CHANNEL_TAG, GoalLabel, Identifier, fail, send_tag
from .kpis import KpiSpec
from .send_fields import (
    ChannelName,
    DataKey,
    GroupName,
    HeaderName,
    HeaderValue,
    HttpMethod,
    Locale,
    PushDataKey,
    SmsText,
    Subject,
    Template,
    Title,
    WebhookUrl,
)

# Methods whose requests carry a body: a webhook with one of them needs ``body``.
_BODY_METHODS = ("POST", "PUT", "PATCH")


class _Spec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class ContentSpec(_Spec):
    """An email's subject and body (text, optional HTML), as jinja2 templates."""

    subject: Subject
    """Jinja template of the subject, one line: `Welcome, {{ profile.first_name }}`."""
    body: Template
    """Jinja template of the plain-text part."""
    html: Template | None = None
    """Jinja template of the HTML part."""


class TemplateSpec(ContentSpec):
    """A named email template, with optional per-locale variants ("fr", "pt-br")."""

    locales: dict[Locale, ContentSpec] = Field(default_factory=dict)
    """Translations by lowercase language tag (`fr`, `pt-br`), chosen by the `locale` trait."""


class SmsContentSpec(_Spec):
    """An SMS text in one language."""

    body: SmsText
    """Jinja template of the text, at most 1600 characters."""


class NotificationContentSpec(_Spec):
    """A push or in-app notification's title and text in one language."""

    title: Title
    """Jinja template of the title, one line."""
    body: Template
    """Jinja template of the text."""


class _SendSpec(_Spec):
    """What every send has, whatever its channel."""

    id: Identifier | None = None
    """Step id (or put `id` beside `send`, not both): a `goto` target, shown in reports."""
    channel: Channel = "email"
    """The channel: `email` (the default), `sms`, `push`, `in_app` or `webhook`."""
    group: GroupName = "marketing"
    """The subscription group of the message on its channel; consent and unsubscribes are
    kept per group. `marketing` by default; `transactional` for receipts and other messages
    the customer needs whatever their marketing choices."""
    goal: GoalLabel | None = None
    """What the message is for, in a word or two: `conversion`, `engagement`, `retention`;
    shown in the touchpoints report."""
    kpi: KpiSpec | None = None
    """How the goal is measured: a `name` (`orders`) and what counts one (an `event`, or
    `page` or `screen` views, with an optional `where`) when the recipient does it within the
    report's attribution window after the message."""


# Keys every send has that measure the message rather than shape it.
MEASURES = ("goal", "kpi")


class EmailSendSpec(_SendSpec):
    """An email: inline subject and body (text, optional HTML), or a named ``template``."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": _present("template"),
            "then": {
                "not": {
                    "anyOf": [
                        _present("subject"),
                        _present("body"),
                        _present("html"),
                        _not_empty("locales"),
                    ]
                }
            },
            "else": {"allOf": [_present("subject"), _present("body")]},
        }
    )

    channel: Literal["email"] = "email"
    """`email`, the default when `channel` is left out."""
    template: Identifier | None = None
    """The name of an entry of `templates`; then no subject, body, html or locales here."""
    subject: Subject | None = None
    """Jinja template of the subject, one line."""
    body: Template | None = None
    """Jinja template of the plain-text part."""
    html: Template | None = None
    """Jinja template of the HTML part."""
    locales: dict[Locale, ContentSpec] = Field(default_factory=dict)
    """Translations by lowercase language tag (`fr`, `pt-br`), chosen by the `locale` trait."""

    @model_validator(mode="after")
    def _content(self) -> EmailSendSpec:
        inline = self.subject is not None or self.body is not None
        if self.template is not None and (inline or self.locales or self.html is not None):
            fail("use either template or subject/body/html/locales, not both")
        if self.template is None and (self.subject is None or self.body is None):
            fail("a send needs a subject and a body, or a template")
        return self


class SmsSendSpec(_SendSpec):
    """A text message: its body alone."""

    channel: Literal["sms"]
    """`sms`: a text message."""
    body: SmsText
    """Jinja template of the text, at most 1600 characters."""
    locales: dict[Locale, SmsContentSpec] = Field(default_factory=dict)
    """Translations by lowercase language tag (`fr`, `pt-br`), chosen by the `locale` trait."""


class PushSendSpec(_SendSpec):
    """A push notification to the customer's devices: a title, a text and optional data."""

    channel: Literal["push"]
    """`push`: a notification on the customer's devices."""
    title: Title
    """Jinja template of the title, one line."""
    body: Template
    """Jinja template of the text."""
    data: dict[PushDataKey, Template] = Field(default_factory=dict)
    """Key/values handed to the app with the notification (a deep link, a product id); each
    value a Jinja template."""
    locales: dict[Locale, NotificationContentSpec] = Field(default_factory=dict)
    """Translated title and text by lowercase language tag, chosen by the `locale` trait."""


class InAppSendSpec(_SendSpec):
    """A message in the app's inbox: a title, a text and optional data."""

    channel: Literal["in_app"]
    """`in_app`: a message shown inside the app."""
    title: Title
    """Jinja template of the title, one line."""
    body: Template
    """Jinja template of the text."""
    data: dict[DataKey, Template] = Field(default_factory=dict)
    """Key/values handed to the app with the message (a deep link, an image); each value a
    Jinja template."""
    locales: dict[Locale, NotificationContentSpec] = Field(default_factory=dict)
    """Translated title and text by lowercase language tag, chosen by the `locale` trait."""


class WebhookSendSpec(_SendSpec):
    """An HTTP request to another system (a CRM, a chat tool, a loyalty backend)."""

    model_config = ConfigDict(
        json_schema_extra={
            "if": {"required": ["method"], "properties": {"method": {"enum": ["GET", "DELETE"]}}},
            "else": _present("body"),
        }
    )

    channel: Literal["webhook"]
    """`webhook`: an HTTP request."""
    url: WebhookUrl
    """http:// or https:// and a host written out; the path and query may hold templates."""
    method: HttpMethod = "POST"
    """GET, POST (the default), PUT, PATCH or DELETE."""
    headers: dict[HeaderName, HeaderValue] = Field(default_factory=dict)
    """Request headers by name; each value a one-line Jinja template. Host, Content-Length and
    the other headers the HTTP client writes cannot be set."""
    body: Template | None = None
    """Jinja template of the request body; required for POST, PUT and PATCH. `tojson` writes
    a value as JSON: `{"email": {{ profile.email | tojson }}}`."""

    @model_validator(mode="after")
    def _body(self) -> WebhookSendSpec:
        if self.body is None and self.method in _BODY_METHODS:
            fail(f"a {self.method} webhook needs a body (GET and DELETE may go without)")
        return self


class _UnknownChannelSpec(_Spec):
    """A send on a channel that does not exist: its channel is reported, and the type of every
    key any channel knows, so that one run shows every problem."""

    id: Identifier | None = None
    channel: ChannelName  # never valid here: only unknown channels are routed to this model
    group: GroupName | None = None
    goal: GoalLabel | None = None
    kpi: KpiSpec | None = None
    template: Identifier | None = None
    subject: Subject | None = None
    title: Title | None = None
    body: Template | None = None
    html: Template | None = None
    data: dict[DataKey, Template] | None = None
    url: WebhookUrl | None = None
    method: HttpMethod | None = None
    headers: dict[HeaderName, HeaderValue] | None = None
    locales: dict[Locale, Any] | None = None


SEND_MODELS: dict[Channel, type[_SendSpec]] = {
    "email": EmailSendSpec,
    "sms": SmsSendSpec,
    "push": PushSendSpec,
    "in_app": InAppSendSpec,
    "webhook": WebhookSendSpec,
}
assert tuple(sorted(SEND_MODELS)) == tuple(sorted(CHANNELS))

# What each channel is called in messages.
_NAMES: dict[Channel, str] = {
    "email": "an email",
    "sms": "an SMS",
    "push": "a push",
    "in_app": "an in_app",
    "webhook": "a webhook",
}
# Where a key of another channel has a counterpart, say which.
_HINTS: dict[tuple[Channel, str], str] = {
    **{(channel, "subject"): "the title is 'title'" for channel in ("push", "in_app")},
    ("email", "title"): "an email's title is its 'subject'",
    ("sms", "title"): "an SMS is its body alone",
    ("sms", "subject"): "an SMS is its body alone",
    ("webhook", "subject"): "a webhook request has a url, headers and a body",
    ("webhook", "title"): "a webhook request has a url, headers and a body",
    **{
        (channel, "template"): "named templates hold email content"
        for channel in CHANNELS
        if channel != "email"
    },
}


def _channel_of(value: object) -> str:
    """The union tag of a send: its channel's model, email when it names none."""
    if isinstance(value, _SendSpec):
        return send_tag(value.channel)
    if isinstance(value, dict):
        channel = value.get("channel", "email")
        return send_tag(channel) if channel in CHANNELS else UNKNOWN_CHANNEL_TAG
    return send_tag("email")  # not a mapping: the email model says what a send is


class _SendJsonSchema:
    """The schema of a send as editors want it: ``channel`` picks the keys (if/then)."""

    def __get_pydantic_json_schema__(
        self, schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        options = [option for option in handler(schema)["oneOf"] if option]
        assert len(options) == len(SEND_MODELS)  # in SEND_MODELS' order, the unknown left out
        branches = []
        for channel, option in zip(SEND_MODELS, options, strict=True):
            condition: dict[str, Any] = {"properties": {"channel": {"const": channel}}}
            if channel != "email":  # a send without channel is an email
                condition["required"] = ["channel"]
            branches.append({"if": condition, "then": option})
        return {
            "type": "object",
            "properties": {"channel": {"enum": list(CHANNELS)}},
            "allOf": branches,
        }


SendSpec = Annotated[
    Annotated[EmailSendSpec, Tag(send_tag("email"))]
    | Annotated[SmsSendSpec, Tag(send_tag("sms"))]
    | Annotated[PushSendSpec, Tag(send_tag("push"))]
    | Annotated[InAppSendSpec, Tag(send_tag("in_app"))]
    | Annotated[WebhookSendSpec, Tag(send_tag("webhook"))]
    | Annotated[_UnknownChannelSpec, Tag(UNKNOWN_CHANNEL_TAG), WithJsonSchema({})],
    Discriminator(_channel_of),
    _SendJsonSchema(),
]
"""A send step of any channel, as written."""


def misplaced_key(tag: str, key: str) -> str | None:
    """The message for ``key`` in the send that the union tag ``tag`` validated, when the key
    belongs to another channel; None for a key no channel knows."""
    channel = next((c for c in SEND_MODELS if send_tag(c) == tag), None)
    known = {name for model in SEND_MODELS.values() for name in model.model_fields}
    if channel is None or key not in known:
        return None
    # The keys that make up the message: goal and kpi go with every channel alike.
    takes = ", ".join(name for name in SEND_MODELS[channel].model_fields if name not in MEASURES)
    hint = _HINTS.get((channel, key))
    message = f"'{key}' does not go with channel {channel}"
    message += f" ({_NAMES[channel]} send takes {takes})"
    return f"{message}; {hint}" if hint else message


def missing_key(tag: str, key: str) -> str:
    """The message for a required ``key`` left out of a send of the channel ``tag`` names."""
    channel = next((c for c in SEND_MODELS if send_tag(c) == tag), None)
    if channel is None or channel == "email":  # an email's needs depend on template
        return f"missing required key '{key}'"
    model = SEND_MODELS[channel]
    needs = [
        name
        for name, field in model.model_fields.items()
        if field.is_required() and name != "channel"  # a send of that channel names it
    ]
    return f"missing required key '{key}' ({_NAMES[channel]} send needs {' and '.join(needs)})"
