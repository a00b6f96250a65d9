"""Journeys written in Python: the helpers that build touchpoints and their content.

Each returns a validated spec model, as the helpers of ``builder.py`` (which names them all) do:
``send`` is an email; ``sms``, ``push``, ``in_app`` and ``webhook`` the other channels;
``wait``, ``wait_for``, ``branch``, ``split``, ``experiment``, ``update``, ``goto`` and
``exit_`` the other step kinds.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypeVar

from pydantic import BaseModel

from journeyman.workflows.plan import Scalar, Weekday

from .kpis import KpiSpec
from .sends import (
    ContentSpec,
    EmailSendSpec,
    InAppSendSpec,
    NotificationContentSpec,
    PushSendSpec,
    SmsSendSpec,
    TemplateSpec,
    WebhookSendSpec,
)
from .touchpoints import (
    BranchSpec,
    DecideSpec,
    ExperimentSpec,
    MetricSpec,
    PathSpec,
    TouchpointSpec,
    UpdateSpec,
    WaitForSpec,
    WaitUntilSpec,
)

Duration = int | str
"""Whole seconds, or text like ``90s``, ``15m``, ``2h``, ``3d``, ``1w``, ``1d12h``."""
Where = Mapping[str, Any]
"""A property filter: ``{"plan": "pro", "cart.total": {"gte": 20}}``."""
Touchpoints = Sequence[TouchpointSpec]
_Model = TypeVar("_Model", bound=BaseModel)


def template(
    subject: str,
    body: str,
    *,
    html: str | None = None,
    locales: Mapping[str, ContentSpec] | None = None,
) -> TemplateSpec:
    """Named content for ``templates``; ``send(template=name)`` uses it."""
    return _build(TemplateSpec, subject=subject, body=body, html=html, locales=locales)


def content(subject: str, body: str, *, html: str | None = None) -> ContentSpec:
    """An email translation, for ``locales`` of ``send`` and ``template``."""
    return _build(ContentSpec, subject=subject, body=body, html=html)


def notification(title: str, body: str) -> NotificationContentSpec:
    """A push or in-app translation, for ``locales``."""
    return _build(NotificationContentSpec, title=title, body=body)


def send(
    subject: str | None = None,
    body: str | None = None,
    *,
    id: str | None = None,
    html: str | None = None,
    locales: Mapping[str, ContentSpec] | None = None,
    template: str | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """An email: inline ``subject`` and ``body`` (Jinja templates), or a named ``template``.

    ``group`` is the subscription group (``marketing`` when left out); ``goal`` and ``kpi``
    say what the message is for and how that is measured (see ``kpi``), as on every channel.
    """
    spec = _build(
        EmailSendSpec,
        id=id,
        group=group,
        goal=goal,
        kpi=kpi,
        template=template,
        subject=subject,
        body=body,
        html=html,
        locales=locales,
    )
    return _touchpoint("send", spec, None)


def sms(
    body: str,
    *,
    id: str | None = None,
    locales: Mapping[str, str] | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """A text message; ``locales`` maps language tags to translated bodies."""
    translated = {tag: {"body": text} for tag, text in (locales or {}).items()}
    spec = _build(
        SmsSendSpec,
        id=id,
        channel="sms",
        group=group,
        goal=goal,
        kpi=kpi,
        body=body,
        locales=translated,
    )
    return _touchpoint("send", spec, None)


def push(
    title: str,
    body: str,
    *,
    data: Mapping[str, str] | None = None,
    id: str | None = None,
    locales: Mapping[str, NotificationContentSpec] | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """A push notification: ``title``, ``body`` and ``data`` values are Jinja templates."""
    return _notification(
        PushSendSpec, "push", title, body, data, id, locales, group, goal=goal, kpi=kpi
    )


def in_app(
    title: str,
    body: str,
    *,
    data: Mapping[str, str] | None = None,
    id: str | None = None,
    locales: Mapping[str, NotificationContentSpec] | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """A message in the app's inbox, written like ``push``."""
    return _notification(
        InAppSendSpec, "in_app", title, body, data, id, locales, group, goal=goal, kpi=kpi
    )


def webhook(
    url: str,
    body: str | None = None,
    *,
    method: str = "POST",
    headers: Mapping[str, str] | None = None,
    id: str | None = None,
    group: str | None = None,
    goal: str | None = None,
    kpi: KpiSpec | None = None,
) -> TouchpointSpec:
    """An HTTP request: ``body`` and header values are Jinja templates, and so may be the
    path and query of ``url``."""
    spec = _build(
        WebhookSendSpec,
        id=id,
        channel="webhook",
        group=group,
        goal=goal,
        kpi=kpi,
        url=url,
        method=method,
        headers=headers,
        body=body,
    )
    return _touchpoint("send", spec, None)


def _notification(
    model: type[PushSendSpec | InAppSendSpec],
    channel: str,
    title: str,
    body: str,
    data: Mapping[str, str] | None,
    id: str | None,
    locales: Mapping[str, NotificationContentSpec] | None,
    group: str | None,
    *,
    goal: str | None,
    kpi: KpiSpec | None,
) -> TouchpointSpec:
    spec = _build(
        model,
        id=id,
        channel=channel,
        group=group,
        goal=goal,
        kpi=kpi,
        title=title,
        body=body,
        data=data,
        locales=locales,
    )
    return _touchpoint("send", spec, None)


def wait(
    duration: Duration | None = None,
    *,
    until: str | None = None,
    weekdays: Sequence[Weekday] | None = None,
    until_date: str | None = None,
    offset: Duration = 0,
    at: str = "09:00",
    yearly: bool = False,
    id: str | None = None,
) -> TouchpointSpec:
    """A pause: ``wait("3d")``, ``wait(until="09:00")`` or ``wait(until_date="birthday")``."""
    if duration is not None:
        if until is not None or until_date is not None:
            raise TypeError("wait takes a duration, or until / until_date, not both")
        return _touchpoint("wait", duration, id)
    timed = _build(
        WaitUntilSpec,
        until=until,
        weekdays=list(weekdays) if weekdays is not None else None,
        until_date=until_date,
        offset=offset,
        at=at,
        yearly=yearly,
    )
    return _touchpoint("wait", timed, id)


def wait_for(
    event: str | None = None,
    *,
    timeout: Duration,
    where: Where | None = None,
    enters_segment: str | None = None,
    leaves_segment: str | None = None,
    lookback: Duration = 0,
    on_event: Touchpoints = (),
    on_timeout: Touchpoints = (),
    id: str | None = None,
) -> TouchpointSpec:
    """Pause until ``event`` arrives or the customer ``enters_segment`` / ``leaves_segment``
    (then ``on_event``), at most ``timeout`` (then ``on_timeout``)."""
    spec = _build(
        WaitForSpec,
        event=event,
        where=where,
        enters_segment=enters_segment,
        leaves_segment=leaves_segment,
        timeout=timeout,
        lookback=lookback,
        on_event=list(on_event),
        on_timeout=list(on_timeout),
    )
    return _touchpoint("wait_for", spec, id)


def branch(
    cases: Sequence[tuple[str, Touchpoints]],
    otherwise: Touchpoints = (),
    *,
    id: str | None = None,
) -> TouchpointSpec:
    """The first ``(condition, touchpoints)`` case that holds runs, else ``otherwise``."""
    spec = _build(
        BranchSpec,
        cases=[{"when": when, "then": list(then)} for when, then in cases],
        otherwise=list(otherwise),
    )
    return _touchpoint("branch", spec, id)


def path(name: str, *then: TouchpointSpec, weight: int = 1) -> PathSpec:
    """A path of a ``split`` or a variant of an ``experiment``."""
    return _build(PathSpec, name=name, weight=weight, then=list(then))


def split(*paths: PathSpec, id: str | None = None) -> TouchpointSpec:
    """Random paths by weight: ``split(path("a", ..., weight=3), path("b", ...))``."""
    return _touchpoint("split", list(paths), id)


def metric(event: str, *, within: Duration, where: Where | None = None) -> MetricSpec:
    """An experiment's success: ``event`` within ``within`` of entering the experiment."""
    return _build(MetricSpec, event=event, where=where, within=within)


def decide(after: Duration, *, min_per_variant: int = 100, confidence: float = 0.95) -> DecideSpec:
    """When an experiment picks its winner."""
    return _build(DecideSpec, after=after, min_per_variant=min_per_variant, confidence=confidence)


def experiment(
    *variants: PathSpec,
    control: str,
    metric: MetricSpec,
    decide: DecideSpec | None = None,
    id: str | None = None,
) -> TouchpointSpec:
    """An A/B/n test of ``variants`` (see ``path``) against ``control``."""
    spec = _build(
        ExperimentSpec, variants=list(variants), control=control, metric=metric, decide=decide
    )
    return _touchpoint("experiment", spec, id)


def update(
    *,
    set: Mapping[str, Scalar] | None = None,
    increment: Mapping[str, int | float] | None = None,
    tags: Sequence[str] = (),
    id: str | None = None,
) -> TouchpointSpec:
    """Change the profile: ``set`` traits, ``increment`` numbers, add ``tags``."""
    spec = _build(UpdateSpec, set=set, increment=increment, tags=list(tags))
    return _touchpoint("update", spec, id)


def goto(target: str, *, id: str | None = None) -> TouchpointSpec:
    """Jump to a stage or a step id."""
    return _touchpoint("goto", target, id)


def exit_(reason: str | Literal[True] = True, *, id: str | None = None) -> TouchpointSpec:
    """Leave the journey, with the ``reason`` shown in reports."""
    return _touchpoint("exit", reason, id)


def _build(model: type[_Model], **fields: Any) -> _Model:
    # Left out, a field takes its default, as a key missing from a file does.
    return model.model_validate({key: value for key, value in fields.items() if value is not None})


def _touchpoint(kind: str, value: object, id: str | None) -> TouchpointSpec:
    return _build(TouchpointSpec, id=id, **{kind: value})
