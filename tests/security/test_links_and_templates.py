"""Tampered links and template injection, end to end through the API.

What ``tests/orchestrator/tracking`` and ``tests/channels/test_render.py`` already cover (every
changed character of a token, truncation, cross-kind tokens in the signer, the sandbox's
refusals and limits in the renderer) is not repeated. Added here:

- any text at all in a link's token place is a 404 that records nothing, on every link route;
- valid tokens used where they do not belong: spliced halves of two tokens, a token of
  another kind, a token signed with another secret;
- injection payloads sent to the template preview come back as a 422 that leaks nothing;
- template syntax inside customer data is printed, never run, and escaped in HTML, in
  messages and on the dashboard;
- a runaway template does not hold up the server while its limits stop it.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from urllib.parse import quote

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from journeyman.orchestrator.storage import claim_send, finish_send
from journeyman.orchestrator.tracking import LinkSigner, LinkToken
from journeyman.orchestrator.tracking.links import Kind

from .conftest import Stack

ROUTES = ["open", "click", "page", "one-click", "preferences"]
# What the links must leave untouched when refused.
RECORDS = ("events", "subscription_preferences", "suppressions", "outbox")


async def visit(stack: Stack, route: str, token: str) -> httpx.Response:
    """A link route with ``token`` in its place, as a mail client or a form would send it."""
    segment = quote(token, safe="")
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    if route == "open":
        return await stack.http.get(f"/t/o/{segment}.gif")
    if route == "click":
        return await stack.http.get(f"/t/c/{segment}")
    if route == "page":
        return await stack.http.get(f"/u/{segment}")
    if route == "preferences":
        return await stack.http.post(f"/u/{segment}/preferences", content=b"save=1", headers=form)
    return await stack.http.post(
        f"/u/{segment}", content=b"List-Unsubscribe=One-Click", headers=form
    )


async def records(stack: Stack) -> dict[str, int]:
    return {
        table: int(await stack.pool.fetchval(f"SELECT count(*) FROM {table}")) for table in RECORDS
    }


async def sent(stack: Stack, customer_id: str) -> str:
    """A message in the delivery ledger, as the send activity leaves it; its send key."""
    key = f"journey/newsletter/{customer_id}@run-1/awareness/monthly/0"
    await claim_send(
        stack.pool,
        send_key=key,
        journey_id="newsletter",
        version="v1",
        customer_id=customer_id,
        step_id="monthly",
        channel="email",
    )
    await finish_send(stack.pool, send_key=key, status="sent", recipient="ann@shop.test")
    return key


def signed(signer: LinkSigner, kind: Kind, send_key: str, customer_id: str) -> str:
    return signer.sign(
        LinkToken(
            kind=kind,
            send_key=send_key,
            customer_id=customer_id,
            issued_at=datetime.now(UTC),
            url="https://shop.test/cream" if kind == "click" else None,
            group="email:marketing" if kind == "unsubscribe" else None,
        )
    )


KIND_OF_ROUTE: dict[str, Kind] = {
    "open": "open",
    "click": "click",
    "page": "unsubscribe",
    "one-click": "unsubscribe",
    "preferences": "unsubscribe",
}


def refused(response: httpx.Response) -> bool:
    return (
        response.status_code == 404
        and response.text == "This link is not valid.\n"
        and "location" not in response.headers
        and "set-cookie" not in response.headers
    )


TOKEN_CHARACTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.="
tokens = st.one_of(
    st.text(min_size=1, max_size=300),
    st.text(alphabet=TOKEN_CHARACTERS, min_size=1),
    st.builds(lambda a, b: f"{a}.{b}", st.text(max_size=80), st.text(max_size=80)),
    st.integers(min_value=1000, max_value=20000).map(lambda n: "A" * n + ".B"),
)  # fmt: skip


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(route=st.sampled_from(ROUTES), token=tokens)
async def test_any_text_as_a_token_is_a_404_that_records_nothing(
    stack: Stack, route: str, token: str
) -> None:
    before = await records(stack)
    response = await visit(stack, route, token)
    assert response.status_code == 404, response.text
    assert "location" not in response.headers
    # A token with "/" in it, or a "." or ".." segment (which clients resolve), reaches no
    # link route at all: a 404 all the same, just not the link's own.
    if "/" not in token and token not in (".", ".."):
        assert refused(response), response.text
    assert await records(stack) == before


async def test_valid_tokens_only_open_their_own_door(stack: Stack) -> None:
    customer = f"ann-{uuid.uuid4().hex[:8]}"
    key = await sent(stack, customer)
    signer = stack.tracking.signer
    own = {kind: signed(signer, kind, key, customer) for kind in ("open", "click", "unsubscribe")}
    foreign = LinkSigner("a-secret-that-is-not-this-servers-secret-0123")
    open_payload, _, open_signature = own["open"].partition(".")
    click_payload, _, click_signature = own["click"].partition(".")
    wrong = {
        "payload of one token, signature of another": [
            f"{open_payload}.{click_signature}",
            f"{click_payload}.{open_signature}",
        ],
        "signed with another secret": [
            signed(foreign, kind, key, customer) for kind in ("open", "click", "unsubscribe")
        ],
    }
    before = await records(stack)
    for route in ROUTES:
        for kind, token in own.items():
            if kind != KIND_OF_ROUTE[route]:
                assert refused(await visit(stack, route, token)), (route, kind)
        for what, candidates in wrong.items():
            for token in candidates:
                assert refused(await visit(stack, route, token)), (route, what)
    assert await records(stack) == before
    # The same tokens at their own routes work: the refusals above were about the misuse.
    assert (await visit(stack, "open", own["open"])).status_code == 200
    assert (await visit(stack, "click", own["click"])).status_code == 302
    assert (await visit(stack, "page", own["unsubscribe"])).status_code == 200


# --- templates ----------------------------------------------------------------------------------

INJECTIONS = [
    "{{ ''.__class__.__mro__ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__ }}",
    "{{ namespace.__init__.__globals__['__builtins__'] }}",
    "{{ lipsum.__globals__['os'] }}",
    "{{ profile.__class__.__base__.__subclasses__() }}",
    "{{ profile.items.__self__.__class__ }}",
    "{{ self.__init__.__globals__ }}",
    "{{ config.items() }}",
    "{{ request.environ }}",
    '{{ "{0.__class__.__mro__}".format(profile) }}',
    '{{ profile | attr("__class__") }}',
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    "{% import 'os' as os %}{{ os }}",
    "{% include '/etc/passwd' %}",
    "{% extends '/etc/passwd' %}",
]
# What a leak of Python internals looks like in an answer.
LEAKS = ("<class ", "<module ", "<function ", "<built-in", "<bound method", "root:", "uid=")


async def preview(stack: Stack, template: dict[str, str], **extra: object) -> httpx.Response:
    body = {"channel": "email", "template": template, **extra}
    return await stack.http.post("/api/templates/preview", json=body, headers=stack.admin)


@pytest.mark.parametrize("part", ["subject", "body", "html"])
@pytest.mark.parametrize("payload", INJECTIONS)
async def test_injections_sent_to_the_preview_are_refused_without_leaks(
    stack: Stack, payload: str, part: str
) -> None:
    template = {"subject": "s", "body": "b", part: f"Hi {payload}"}
    response = await preview(stack, template, sample={"profile": {"first_name": "Ann"}})
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "render_error"
    assert answer["part"] == part
    assert answer["reason"] in ("unsafe", "undefined", "error", "syntax"), answer
    assert not any(leak in response.text for leak in LEAKS), response.text


DATA = {
    "first_name": "{{ 7 * 7 }}",
    "city": "{% for i in range(10**9) %}x{% endfor %}",
    "note": "{{ cycler.__init__.__globals__ }} <script>alert(1)</script> & ${7*7} #{7*7}",
}


async def test_template_syntax_in_customer_data_is_printed_not_run(stack: Stack) -> None:
    customer = f"data-{uuid.uuid4().hex[:8]}"
    identify = {"type": "identify", "userId": customer, "traits": DATA}
    assert (await stack.http.post("/v1/identify", json=identify, headers=stack.writer)).is_success
    template = {
        "subject": "{{ profile.first_name }}",
        "body": "{{ profile.city }} {{ profile.note }}",
        "html": "<p>{{ profile.note }}</p>",
    }
    response = await preview(stack, template, customer_id=customer)
    assert response.status_code == 200, response.text
    rendered = response.json()["rendered"]
    assert rendered["subject"] == DATA["first_name"]  # not 49
    assert rendered["body"] == f"{DATA['city']} {DATA['note']}"
    assert "<script>" not in rendered["html"]
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in rendered["html"]
    assert "{{ cycler.__init__.__globals__ }}" in rendered["html"]


async def test_customer_data_on_the_dashboard_is_escaped_and_inert(stack: Stack) -> None:
    customer = f"dash-{uuid.uuid4().hex[:8]}"
    identify = {"type": "identify", "userId": customer, "traits": DATA}
    assert (await stack.http.post("/v1/identify", json=identify, headers=stack.writer)).is_success
    page = await stack.http.get(f"/dashboard/customers/{customer}", headers=stack.admin)
    assert page.status_code == 200, page.text
    assert "<script>alert(1)</script>" not in page.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page.text
    assert "{{ 7 * 7 }}" in page.text  # printed as typed
    assert ">49<" not in page.text


async def test_a_runaway_template_does_not_hold_up_the_server(stack: Stack) -> None:
    # Exponential recursion: about a second of work before the operation limit stops it.
    runaway = (
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}{{ m(40) }}"
    )
    rendering = asyncio.create_task(preview(stack, {"subject": "s", "body": runaway}))
    await asyncio.sleep(0.05)  # the render is under way in its thread
    other = await stack.http.get("/api/in-app/settings", headers=stack.admin)
    # Another request was answered while the render was still running.
    assert other.status_code == 200
    assert not rendering.done()
    response = await rendering
    assert response.status_code == 422, response.text
    assert response.json()["reason"] == "too_large"
