"""Template preview: ``POST /api/templates/preview`` on the real app over a real Postgres."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from .conftest import WRITE_KEY, Api

AUTH = (WRITE_KEY, "")
PREVIEW = "/api/templates/preview"


async def preview(api: Api, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    response = await api.http.post(PREVIEW, json=body, headers=api.admin)
    payload: dict[str, Any] = response.json()
    return response.status_code, payload


async def ingest(api: Api, *messages: dict[str, Any]) -> None:
    batch = [{"messageId": str(uuid.uuid4()), **m} for m in messages]
    response = await api.http.post("/v1/batch", json={"batch": batch}, auth=AUTH)
    assert response.status_code == 200, response.text


async def test_preview_renders_an_email_from_sample_values(api: Api) -> None:
    status, body = await preview(
        api,
        {
            "channel": "email",
            "template": {
                "subject": "Hi\n{{ profile.first_name | default('there') }}",
                "body": "Your {{ event.properties.product }} in {{ journey.stage }}",
                "html": "<p>{{ profile.first_name }}</p>",
            },
            "sample": {
                "profile": {"first_name": "<Mei>"},
                "event": {"name": "Product Viewed", "properties": {"product": "serum"}},
                "journey": {"id": "lifecycle", "stage": "consideration", "step": "nudge"},
            },
        },
    )
    assert status == 200, body
    assert body["channel"] == "email" and body["locale"] is None
    assert body["rendered"] == {
        "subject": "Hi <Mei>",
        "body": "Your serum in consideration",
        "html": "<p>&lt;Mei&gt;</p>",
    }
    assert body["context"]["event"] == {
        "name": "Product Viewed",
        "properties": {"product": "serum"},
    }
    assert body["context"]["journey"] == {
        "id": "lifecycle",
        "name": None,
        "stage": "consideration",
        "step": "nudge",
    }
    assert body["context"]["metrics"]["order_count"] == 0  # a customer never seen


async def test_preview_needs_the_admin_token(api: Api) -> None:
    body = {"channel": "sms", "template": {"body": "hi"}}
    assert (await api.http.post(PREVIEW, json=body)).status_code == 401
    wrong = {"Authorization": "Bearer not-the-token"}
    assert (await api.http.post(PREVIEW, json=body, headers=wrong)).status_code == 401
    assert (await api.http.post(PREVIEW, json=body, auth=AUTH)).status_code == 401


async def test_preview_for_a_stored_customer_reads_profile_and_metrics(api: Api) -> None:
    await ingest(
        api,
        {"type": "track", "anonymousId": "anon-9", "event": "Product Viewed", "properties": {}},
        {
            "type": "identify",
            "userId": "mei",
            "anonymousId": "anon-9",
            "traits": {"first_name": "Mei", "plan": "pro"},
        },
        {
            "type": "track",
            "userId": "mei",
            "event": "Order Completed",
            "properties": {"revenue": 42.5},
        },
    )
    template = {
        "title": "{{ profile.first_name }} ({{ customer_id }})",
        "body": "{{ metrics.order_count }} order(s), {{ metrics.revenue_total }};"
        " plan {{ profile.plan }}",
    }
    # Asked by the anonymous id: it resolves to the customer it was merged into.
    status, body = await preview(
        api, {"channel": "push", "template": template, "customer_id": "anon-9"}
    )
    assert status == 200, body
    assert body["rendered"] == {
        "title": "Mei (mei)",
        "body": "1 order(s), 42.5; plan pro",
        "data": {},
    }
    # Sample values override what is stored, for trying a variation.
    status, body = await preview(
        api,
        {
            "channel": "push",
            "template": template,
            "customer_id": "mei",
            "sample": {"profile": {"plan": "vip"}, "metrics": {"order_count": 7}},
        },
    )
    assert body["rendered"]["body"] == "7 order(s), 42.5; plan vip"


async def test_preview_for_an_unknown_customer_is_404(api: Api) -> None:
    status, body = await preview(
        api, {"channel": "sms", "template": {"body": "hi"}, "customer_id": "nobody"}
    )
    assert (status, body["error"]) == (404, "not_found")
    assert "nobody" in body["message"]


LOCALES = {
    "title": "Hello",
    "body": "Hello {{ profile.first_name }}",
    "locales": {
        "zh": {"title": "您好", "body": "{{ profile.first_name }} 您好"},
        "zh-TW": {"title": "你好", "body": "{{ profile.first_name }} 你好"},
        "ko": {"title": "안녕하세요", "body": "{{ profile.first_name }}님 안녕하세요"},
    },
}


@pytest.mark.parametrize(
    ("profile_locale", "asked", "used", "title"),
    [
        ("zh-TW", None, "zh-TW", "你好"),
        ("zh-HK", None, "zh", "您好"),
        ("zh_Hant_TW", None, "zh", "您好"),
        ("fr-CA", None, None, "Hello"),
        (None, None, None, "Hello"),
        ("zh-TW", "ko-KR", "ko", "안녕하세요"),
    ],
)
async def test_preview_picks_the_locale_with_fallback(
    api: Api, profile_locale: str | None, asked: str | None, used: str | None, title: str
) -> None:
    profile: dict[str, Any] = {"first_name": "Mei"}
    if profile_locale is not None:
        profile["locale"] = profile_locale
    request: dict[str, Any] = {
        "channel": "in_app",
        "template": LOCALES,
        "sample": {"profile": profile},
    }
    if asked is not None:
        request["locale"] = asked
    status, body = await preview(api, request)
    assert status == 200, body
    assert (body["locale"], body["rendered"]["title"]) == (used, title)


async def test_preview_renders_a_webhook_body_as_json(api: Api) -> None:
    status, body = await preview(
        api,
        {
            "channel": "webhook",
            "template": {
                "url": "https://crm.example.com/lists/{{ profile.list | urlencode }}",
                "headers": {"X-Journey": "{{ journey.id }}"},
                "body": '{"customer": {{ profile | tojson }},'
                ' "total": {{ event.properties.total }}}',
            },
            "sample": {
                "profile": {"name": 'Mei "VIP" <mei@example.com>', "list": "vip & gold"},
                "event": {"properties": {"total": 42.5}},
                "journey": {"id": "loyalty"},
            },
        },
    )
    assert status == 200, body
    rendered = body["rendered"]
    assert rendered["url"] == "https://crm.example.com/lists/vip%20%26%20gold"
    assert rendered["headers"] == {"X-Journey": "loyalty"}
    assert json.loads(rendered["body"]) == {
        "customer": {"name": 'Mei "VIP" <mei@example.com>', "list": "vip & gold"},
        "total": 42.5,
    }


@pytest.mark.parametrize(
    ("template", "part", "line", "reason", "says"),
    [
        ({"subject": "ok", "body": "Hi\n{{ profile.nickname }}"}, "body", 2, "undefined",
         "'profile.nickname' is undefined"),
        ({"subject": "{{ ''.__class__.__mro__ }}", "body": "x"}, "subject", 1, "unsafe",
         "unsafe"),
        ({"subject": "ok", "body": "x", "html": "<p>\n\n{% if %}</p>"}, "html", 3, "syntax",
         "syntax error"),
        ({"subject": "ok", "body": "{{ 'a' * 10**9 }}"}, "body", 1, "too_large", "limit"),
    ],
)  # fmt: skip
async def test_a_failing_template_is_a_422_naming_part_line_and_reason(
    api: Api, template: dict[str, str], part: str, line: int, reason: str, says: str
) -> None:
    status, body = await preview(api, {"channel": "email", "template": template})
    assert status == 422, body
    assert body["error"] == "render_error"
    assert (body["part"], body["line"], body["reason"]) == (part, line, reason)
    assert says in body["message"]


@pytest.mark.parametrize(
    ("channel", "template", "message"),
    [
        ("sms", {"subject": "Sale!", "body": "hi"}, "sms messages have no subject"),
        ("email", {"title": "Sale!", "body": "hi"}, "email messages have no title (template)"),
        ("push", {"title": "a", "subject": "b", "body": "hi"}, "give a title or a subject"),
        (
            "email",
            {"subject": "s", "body": "b", "locales": {"fr": {"title": "t", "body": "b"}}},
            "email messages have no title (locales.fr)",
        ),
    ],
)
async def test_a_field_the_channel_does_not_read_is_a_400(
    api: Api, channel: str, template: dict[str, Any], message: str
) -> None:
    request = {"channel": channel, "template": template, "locale": "fr"}
    status, body = await preview(api, request)
    assert (status, body["error"]) == (400, "invalid_request")
    assert body["message"].startswith(message)


async def test_an_invalid_request_is_a_400_naming_the_fields(api: Api) -> None:
    status, body = await preview(api, {"channel": "fax", "template": {"body": "x", "colour": 1}})
    assert (status, body["error"]) == (400, "invalid_request")
    assert {f["field"] for f in body["fields"]} == {"channel", "template.colour"}


async def test_an_oversized_request_is_a_413(api: Api) -> None:
    huge = {"channel": "sms", "template": {"body": "x" * 300_000}}
    response = await api.http.post(PREVIEW, json=huge, headers=api.admin)
    assert response.status_code == 413
