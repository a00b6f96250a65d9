"""The ``send`` step on every channel: what each compiles to, what each rejects and where,
the Python builder, the JSON Schema, and email journeys keeping their versions."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft202012Validator  # type: ignore[import-untyped]
from pydantic import ValidationError

from journeyman.orchestrator.language import JourneyError, compile_file, compile_source
from journeyman.orchestrator.language.builder import (
    compile_python,
    content,
    dump_yaml,
    in_app,
    journey,
    notification,
    push,
    send,
    sms,
    stage,
    wait,
    webhook,
)
from journeyman.orchestrator.language.folders import journey_files
from journeyman.orchestrator.language.schema import journey_schema
from journeyman.orchestrator.language.spec import FrequencyCapSpec, JourneySpec
from journeyman.workflows.plan import CHANNELS, Content, FrequencyCap, Plan, SendStep

REPO = Path(__file__).resolve().parents[3]
HISTORIES = REPO / "tests" / "workflows" / "histories"
SOURCE = "journeys/x.yaml"

HEAD = """\
id: x
name: X
entry: {event: Checkout Started}
"""


def journey_text(items: str, head: str = HEAD) -> str:
    """The journey with the touchpoints ``items``, written at their final indentation."""
    return head + "stages:\n  - name: s\n    touchpoints:\n" + items


def compiled(items: str, head: str = HEAD) -> Plan:
    return compile_source(journey_text(items, head), source=SOURCE)


def errors(items: str, head: str = HEAD) -> list[str]:
    """Compile and return the rendered diagnostics, failing if the journey compiles."""
    with pytest.raises(JourneyError) as caught:
        compile_source(journey_text(items, head), source=SOURCE)
    return [str(d) for d in caught.value.diagnostics]


def schema_errors(text: str) -> list[str]:
    validator = Draft202012Validator(journey_schema())
    return [error.message for error in validator.iter_errors(yaml.safe_load(text))]


# --- Each channel compiles to its SendStep -----------------------------------------------


def test_an_sms_compiles_to_a_body_on_the_sms_channel() -> None:
    plan = compiled(
        """\
      - send:
          id: sms-reminder
          channel: sms
          body: "Your cart is waiting, {{ profile.first_name | default('there') }}"
          locales:
            fr: {body: "Votre panier vous attend"}
"""
    )
    assert plan.step("sms-reminder") == SendStep(
        id="sms-reminder",
        channel="sms",
        body="Your cart is waiting, {{ profile.first_name | default('there') }}",
        locales={"fr": Content(subject="", body="Votre panier vous attend")},
    )


def test_a_push_compiles_its_title_to_the_subject_and_keeps_its_data() -> None:
    plan = compiled(
        """\
      - send:
          id: app-push
          channel: push
          title: "Back in stock"
          body: "{{ event.properties.name }} is back."
          data: {sku: "{{ event.properties.sku }}", screen: product}
          locales:
            ko: {title: "재입고", body: "다시 들어왔어요."}
"""
    )
    assert plan.step("app-push") == SendStep(
        id="app-push",
        channel="push",
        subject="Back in stock",
        body="{{ event.properties.name }} is back.",
        data={"sku": "{{ event.properties.sku }}", "screen": "product"},
        locales={"ko": Content(subject="재입고", body="다시 들어왔어요.")},
    )


def test_an_in_app_message_compiles_like_a_push_on_its_own_channel() -> None:
    plan = compiled(
        """\
      - send:
          id: inbox
          channel: in_app
          title: "Your coupon"
          body: "Use {{ profile.coupon | default('WELCOME') }} at checkout."
          data: {deep_link: "app://coupons"}
"""
    )
    assert plan.step("inbox") == SendStep(
        id="inbox",
        channel="in_app",
        subject="Your coupon",
        body="Use {{ profile.coupon | default('WELCOME') }} at checkout.",
        data={"deep_link": "app://coupons"},
    )


def test_a_webhook_compiles_its_request() -> None:
    plan = compiled(
        """\
      - send:
          id: crm
          channel: webhook
          url: "https://crm.example.com/hooks/lead"
          method: PUT
          headers: {X-Source: journeyman, X-Customer: "{{ profile.email }}"}
          body: '{"email": {{ profile.email | tojson }}}'
          group: transactional
      - send:
          id: ping
          channel: webhook
          url: "http://localhost:8080/p?c={{ profile.id }}"
          method: GET
"""
    )
    assert plan.step("crm") == SendStep(
        id="crm",
        channel="webhook",
        url="https://crm.example.com/hooks/lead",
        method="PUT",
        headers={"X-Source": "journeyman", "X-Customer": "{{ profile.email }}"},
        body='{"email": {{ profile.email | tojson }}}',
        group="transactional",
    )
    # GET and DELETE may go without a body: the plan holds an empty one.
    assert plan.step("ping") == SendStep(
        id="ping",
        channel="webhook",
        url="http://localhost:8080/p?c={{ profile.id }}",
        method="GET",
        body="",
    )


def test_a_group_puts_any_message_in_a_subscription_group() -> None:
    plan = compiled(
        """\
      - send: {id: receipt, subject: "Your receipt", body: "...", group: transactional}
      - send: {id: code, channel: sms, body: "Your code: {{ event.properties.code }}", group: otp}
      - send: {id: news, subject: "News", body: "..."}
"""
    )
    groups = {step.id: step.group for step in plan.stages[0].steps if isinstance(step, SendStep)}
    assert groups == {"receipt": "transactional", "code": "otp", "news": "marketing"}


def test_a_group_is_named_as_subscription_groups_are() -> None:
    assert errors(
        """\
      - send: {subject: Hi, body: Hello, group: product-updates}
      - send: {channel: sms, body: Hello, group: Marketing}
"""
    ) == [
        "journeys/x.yaml:7:49: stages[0].touchpoints[0].send.group: a subscription group is"
        " lowercase letters, digits or '_' (at most 64 characters), like marketing or"
        " transactional; got 'product-updates'",
        "journeys/x.yaml:8:50: stages[0].touchpoints[1].send.group: a subscription group is"
        " lowercase letters, digits or '_' (at most 64 characters), like marketing or"
        " transactional; got 'Marketing'",
    ]


def test_frequency_caps_take_every_channel() -> None:
    caps = "".join(f"  - {{channel: {channel}, limit: 2, per: 1d}}\n" for channel in CHANNELS)
    plan = compiled("      - wait: 1d\n", HEAD + "frequency_caps:\n" + caps)
    assert plan.delivery.frequency_caps == [
        FrequencyCap(channel=channel, limit=2, window_seconds=86400) for channel in CHANNELS
    ]


# --- Email stays as it was -----------------------------------------------------------------


def _recorded_versions() -> dict[str, set[str]]:
    """The plan versions the recorded replay histories started with, by journey id."""
    found: dict[str, set[str]] = {}
    for path in sorted(HISTORIES.glob("*.json")):
        started = json.loads(path.read_text(encoding="utf-8"))["events"][0]
        attributes = started["workflowExecutionStartedEventAttributes"]
        payload = json.loads(base64.b64decode(attributes["input"]["payloads"][0]["data"]))
        found.setdefault(payload["journey_id"], set()).add(payload["version"])
    return found


@pytest.mark.parametrize("path", journey_files(REPO / "journeys"), ids=lambda path: path.name)
def test_shipped_email_journeys_keep_the_versions_their_histories_recorded(path: Path) -> None:
    plan = compile_file(path)
    assert _recorded_versions()[plan.journey_id] == {plan.version}


def test_an_email_spelled_out_with_its_defaults_keeps_its_version() -> None:
    short = compiled('      - send: {id: hi, subject: "Hi", body: "Hello"}\n')
    spelled = compiled(
        '      - send: {id: hi, channel: email, group: marketing, subject: "Hi", body: "Hello"}\n'
    )
    assert spelled.version == short.version
    assert short.step("hi") == SendStep(id="hi", subject="Hi", body="Hello")


def test_every_setting_of_a_channel_changes_the_version() -> None:
    base = '      - send: {id: w, channel: webhook, url: "https://a.example/x", body: "{}"'
    versions = {
        compiled(base + "}\n").version,
        compiled(base + ", method: PATCH}\n").version,
        compiled(base + ", headers: {X-A: b}}\n").version,
        compiled(base + ", group: transactional}\n").version,
        compiled(base.replace("/x", "/y") + "}\n").version,
        compiled(base.replace('"{}"', '"[]"') + "}\n").version,
        compiled(
            base.replace("webhook", "sms").replace(', url: "https://a.example/x"', "") + "}\n"
        ).version,
    }
    assert len(versions) == 7


# --- Errors, each located --------------------------------------------------------------------


def test_keys_of_another_channel_are_named_where_they_stand() -> None:
    assert errors(
        """\
      - send: {channel: sms, subject: Hi, body: Hello}
      - send: {channel: push, subject: Hi, body: Hello}
      - send: {subject: Hi, body: Hello, url: "https://a.example"}
      - send: {channel: push, title: Hi, body: Hello, html: "<p>Hi</p>"}
      - send: {channel: webhook, url: "https://a.example", body: x, title: Hi}
      - send: {channel: sms, template: welcome}
      - send: {channel: in_app, title: Hi, body: Hello, sujbect: x}
"""
    ) == [
        "journeys/x.yaml:7:30: stages[0].touchpoints[0].send.subject: 'subject' does not go with"
        " channel sms (an SMS send takes id, channel, group, body, locales); an SMS is its body"
        " alone",
        "journeys/x.yaml:8:15: stages[0].touchpoints[1].send: missing required key 'title' (a"
        " push send needs title and body)",
        "journeys/x.yaml:8:31: stages[0].touchpoints[1].send.subject: 'subject' does not go with"
        " channel push (a push send takes id, channel, group, title, body, data, locales); the"
        " title is 'title'",
        "journeys/x.yaml:9:42: stages[0].touchpoints[2].send.url: 'url' does not go with channel"
        " email (an email send takes id, channel, group, template, subject, body, html,"
        " locales)",
        "journeys/x.yaml:10:55: stages[0].touchpoints[3].send.html: 'html' does not go with"
        " channel push (a push send takes id, channel, group, title, body, data, locales)",
        "journeys/x.yaml:11:69: stages[0].touchpoints[4].send.title: 'title' does not go with"
        " channel webhook (a webhook send takes id, channel, group, url, method, headers, body);"
        " a webhook request has a url, headers and a body",
        "journeys/x.yaml:12:15: stages[0].touchpoints[5].send: missing required key 'body' (an"
        " SMS send needs body)",
        "journeys/x.yaml:12:30: stages[0].touchpoints[5].send.template: 'template' does not go"
        " with channel sms (an SMS send takes id, channel, group, body, locales); named"
        " templates hold email content",
        "journeys/x.yaml:13:57: stages[0].touchpoints[6].send.sujbect: unknown key 'sujbect'",
    ]


def test_required_keys_of_each_channel() -> None:
    assert errors(
        """\
      - send: {channel: sms}
      - send: {channel: push, body: Hello}
      - send: {channel: in_app, title: Hi}
      - send: {channel: webhook, body: x}
      - send: {channel: webhook, url: "https://a.example"}
      - send: {channel: webhook, url: "https://a.example", method: PATCH}
      - send: {subject: Hi}
"""
    ) == [
        "journeys/x.yaml:7:15: stages[0].touchpoints[0].send: missing required key 'body' (an SMS"
        " send needs body)",
        "journeys/x.yaml:8:15: stages[0].touchpoints[1].send: missing required key 'title' (a"
        " push send needs title and body)",
        "journeys/x.yaml:9:15: stages[0].touchpoints[2].send: missing required key 'body' (an"
        " in_app send needs title and body)",
        "journeys/x.yaml:10:15: stages[0].touchpoints[3].send: missing required key 'url' (a"
        " webhook send needs url)",
        "journeys/x.yaml:11:15: stages[0].touchpoints[4].send: a POST webhook needs a body (GET"
        " and DELETE may go without)",
        "journeys/x.yaml:12:15: stages[0].touchpoints[5].send: a PATCH webhook needs a body (GET"
        " and DELETE may go without)",
        "journeys/x.yaml:13:15: stages[0].touchpoints[6].send: a send needs a subject and a body,"
        " or a template",
    ]


def test_an_unknown_channel_is_named_with_every_other_problem_of_the_send() -> None:
    assert errors("      - send: {channel: fax, title: [a], body: Hello, bcc: x}\n") == [
        "journeys/x.yaml:7:25: stages[0].touchpoints[0].send.channel: unknown channel 'fax';"
        " available: email, sms, push, webhook, in_app",
        "journeys/x.yaml:7:37: stages[0].touchpoints[0].send.title: expected text, got a list",
        "journeys/x.yaml:7:55: stages[0].touchpoints[0].send.bcc: unknown key 'bcc'",
    ]


def test_bad_webhook_requests() -> None:
    assert errors(
        """\
      - send: {channel: webhook, url: "ftp://files.example/x", body: x}
      - send: {channel: webhook, url: "crm.example.com/hooks", body: x}
      - send: {channel: webhook, url: "https://{{ profile.crm_host }}/hooks", body: x}
      - send: {channel: webhook, url: "https://user:secret@crm.example/hooks", body: x}
      - send: {channel: webhook, url: "https://crm.example:99999/x", body: x}
      - send: {channel: webhook, url: "https://a.example", method: FETCH, body: x}
      - send: {channel: webhook, url: "https://a.example", method: post, body: x}
      - send:
          channel: webhook
          url: "https://a.example/{{ profile.id }"
          headers: {Host: evil.example, content-length: "5", "X Bad": a, "X-Ok:": b}
          body: x
"""
    ) == [
        "journeys/x.yaml:7:39: stages[0].touchpoints[0].send.url: a webhook url is http:// or"
        " https:// and a host written out, like https://crm.example.com/hooks/lead; got"
        " 'ftp://files.example/x'",
        "journeys/x.yaml:8:39: stages[0].touchpoints[1].send.url: a webhook url is http:// or"
        " https:// and a host written out, like https://crm.example.com/hooks/lead; got"
        " 'crm.example.com/hooks'",
        "journeys/x.yaml:9:39: stages[0].touchpoints[2].send.url: a webhook url is http:// or"
        " https:// and a host written out, like https://crm.example.com/hooks/lead; got"
        " 'https://{{ profile.crm_host }}/hooks' (templates may follow in the path and query,"
        " not in the host)",
        "journeys/x.yaml:10:39: stages[0].touchpoints[3].send.url: a webhook url is http:// or"
        " https:// and a host written out, like https://crm.example.com/hooks/lead; got"
        " 'https://user:secret@crm.example/hooks' (credentials do not belong in a URL: send"
        " them in a header)",
        "journeys/x.yaml:11:39: stages[0].touchpoints[4].send.url: a webhook url is http:// or"
        " https:// and a host written out, like https://crm.example.com/hooks/lead; got"
        " 'https://crm.example:99999/x'",
        "journeys/x.yaml:12:68: stages[0].touchpoints[5].send.method: unknown method 'FETCH'; use"
        " one of GET, POST, PUT, PATCH, DELETE",
        "journeys/x.yaml:13:68: stages[0].touchpoints[6].send.method: unknown method 'post'; use"
        " one of GET, POST, PUT, PATCH, DELETE; write it in capitals: POST",
        "journeys/x.yaml:16:16: stages[0].touchpoints[7].send.url: template syntax error:"
        " unexpected '}'",
        "journeys/x.yaml:17:21: stages[0].touchpoints[7].send.headers.Host: header 'Host' is set"
        " by the HTTP client itself; remove it",
        "journeys/x.yaml:17:41: stages[0].touchpoints[7].send.headers.content-length: header"
        " 'content-length' is set by the HTTP client itself; remove it",
        'journeys/x.yaml:17:62: stages[0].touchpoints[7].send.headers["X Bad"]: a header name'
        " is letters, digits and !#$%&'*+-.^_`|~, without spaces or colons; got 'X Bad'",
        'journeys/x.yaml:17:74: stages[0].touchpoints[7].send.headers["X-Ok:"]: a header name'
        " is letters, digits and !#$%&'*+-.^_`|~, without spaces or colons; got 'X-Ok:'",
    ]


def test_an_sms_body_is_at_most_1600_characters() -> None:
    compiled(f'      - send: {{channel: sms, body: "{"x" * 1600}"}}\n')
    assert errors(f'      - send: {{channel: sms, body: "{"x" * 1601}"}}\n') == [
        "journeys/x.yaml:7:36: stages[0].touchpoints[0].send.body: an SMS body is at most 1600"
        " characters; this one has 1601",
    ]
    translated = (
        f'      - send: {{channel: sms, body: a, locales: {{fr: {{body: "{"x" * 1700}"}}}}}}\n'
    )
    assert errors(translated) == [
        "journeys/x.yaml:7:60: stages[0].touchpoints[0].send.locales.fr.body: an SMS body is at"
        " most 1600 characters; this one has 1700",
    ]


def test_template_syntax_errors_are_located_on_every_channel() -> None:
    assert errors(
        """\
      - send: {channel: sms, body: "Hi {{ profile.first_name "}
      - send: {channel: push, title: "{% if %}", body: ok, data: {sku: "{{ }}"}}
      - send:
          channel: webhook
          url: "https://a.example"
          headers: {X-Id: "{{ profile.id }"}
          body: |
            {
              "email": {{ profile.email | tojson }},
              "name": {{ profile.name | }}
            }
      - send: {channel: in_app, title: "Two\\nlines", body: ok}
"""
    ) == [
        "journeys/x.yaml:7:36: stages[0].touchpoints[0].send.body: template syntax error:"
        " unexpected end of template, expected 'end of print statement'.",
        "journeys/x.yaml:8:38: stages[0].touchpoints[1].send.title: template syntax error:"
        " Expected an expression, got 'end of statement block'",
        "journeys/x.yaml:8:72: stages[0].touchpoints[1].send.data.sku: template syntax error:"
        " Expected an expression, got 'end of print statement'",
        "journeys/x.yaml:12:27: stages[0].touchpoints[2].send.headers.X-Id: template syntax"
        " error: unexpected '}'",
        "journeys/x.yaml:16:15: stages[0].touchpoints[2].send.body: template syntax error:"
        " expected token 'name', got 'end of print statement'",
        "journeys/x.yaml:18:40: stages[0].touchpoints[3].send.title: a title must be a single line",
    ]


def test_bad_data_keys() -> None:
    assert errors(
        """\
      - send: {channel: push, title: a, body: b, data: {from: x, google.sent: y, "a b": z}}
      - send: {channel: in_app, title: a, body: b, data: {"1st": x, from: fine}}
"""
    ) == [
        "journeys/x.yaml:7:57: stages[0].touchpoints[0].send.data.from: data key 'from' is"
        " reserved by push services (from, message_type, collapse_key, notification, and keys"
        " starting with google or gcm); choose another",
        'journeys/x.yaml:7:66: stages[0].touchpoints[0].send.data["google.sent"]: data key'
        " 'google.sent' is reserved by push services (from, message_type, collapse_key,"
        " notification, and keys starting with google or gcm); choose another",
        'journeys/x.yaml:7:82: stages[0].touchpoints[0].send.data["a b"]: a data key starts'
        " with a letter or '_', then letters, digits, '_', '.' or '-', at most 64 characters;"
        " got 'a b'",
        "journeys/x.yaml:8:59: stages[0].touchpoints[1].send.data.1st: a data key starts"
        " with a letter or '_', then letters, digits, '_', '.' or '-', at most 64 characters;"
        " got '1st'",
    ]


# --- The Python builder ----------------------------------------------------------------------


def every_channel() -> JourneySpec:
    return journey(
        "channels",
        "Every channel",
        entry="Checkout Started",
        frequency_caps=[FrequencyCapSpec(channel="sms", limit=1, per="1d")],
        stages=[
            stage(
                "purchase",
                send(
                    "Your receipt",
                    "Thanks!",
                    group="transactional",
                    locales={"fr": content("Votre reçu", "Merci !")},
                ),
                wait("1h"),
                sms(
                    "Your cart is waiting, {{ profile.first_name | default('there') }}",
                    id="sms-reminder",
                    locales={"fr": "Votre panier vous attend"},
                ),
                push(
                    "Back in stock",
                    "{{ event.properties.name }} is back.",
                    data={"sku": "{{ event.properties.sku }}"},
                    id="app-push",
                    locales={"ko": notification("재입고", "다시 들어왔어요.")},
                ),
                in_app("Your coupon", "Use it at checkout.", data={"deep_link": "app://coupons"}),
                webhook(
                    "https://crm.example.com/hooks/lead",
                    '{"email": {{ profile.email | tojson }}}',
                    headers={"X-Source": "journeyman"},
                    id="crm",
                ),
                webhook("https://crm.example.com/ping?c={{ profile.id }}", method="GET"),
            )
        ],
    )


EVERY_CHANNEL_YAML = """\
id: channels
name: Every channel
entry: {event: Checkout Started}
frequency_caps: [{channel: sms, limit: 1, per: 1d}]
stages:
  - name: purchase
    touchpoints:
      - send:
          group: transactional
          subject: Your receipt
          body: Thanks!
          locales: {fr: {subject: Votre reçu, body: Merci !}}
      - wait: 1h
      - send:
          id: sms-reminder
          channel: sms
          body: "Your cart is waiting, {{ profile.first_name | default('there') }}"
          locales: {fr: {body: Votre panier vous attend}}
      - send:
          id: app-push
          channel: push
          title: Back in stock
          body: "{{ event.properties.name }} is back."
          data: {sku: "{{ event.properties.sku }}"}
          locales: {ko: {title: 재입고, body: 다시 들어왔어요.}}
      - send:
          channel: in_app
          title: Your coupon
          body: Use it at checkout.
          data: {deep_link: "app://coupons"}
      - send:
          id: crm
          channel: webhook
          url: https://crm.example.com/hooks/lead
          headers: {X-Source: journeyman}
          body: '{"email": {{ profile.email | tojson }}}'
      - send:
          channel: webhook
          url: "https://crm.example.com/ping?c={{ profile.id }}"
          method: GET
"""


def test_every_channel_helper_builds_what_the_file_says() -> None:
    assert compile_python(every_channel()) == compile_source(EVERY_CHANNEL_YAML)


def test_the_builder_writes_every_channel_as_a_file_would() -> None:
    text = dump_yaml(every_channel())
    assert (
        """\
      - send:
          id: sms-reminder
          channel: sms
          body: "Your cart is waiting, {{ profile.first_name | default('there') }}"
          locales:
            fr:
              body: Votre panier vous attend
      - send:
          id: app-push
          channel: push
          title: Back in stock
"""
        in text
    )
    assert "      - send:\n          group: transactional\n          subject: Your receipt\n" in (
        text
    )
    assert "          method: GET\n" in text
    assert "          headers:\n            X-Source: journeyman\n" in text


def test_the_builder_round_trips_every_channel() -> None:
    spec = every_channel()
    text = dump_yaml(spec)
    assert JourneySpec.model_validate(yaml.safe_load(text)) == spec
    from_file = compile_source(text)
    from_python = compile_python(spec)
    assert from_file == from_python
    assert [step.channel for step in from_python.stages[0].steps if isinstance(step, SendStep)] == [
        "email",
        "sms",
        "push",
        "in_app",
        "webhook",
        "webhook",
    ]
    assert schema_errors(text) == []


def test_the_builder_rejects_what_a_file_may_not_say() -> None:
    with pytest.raises(ValidationError, match="an SMS body is at most 1600 characters"):
        sms("x" * 1601)
    with pytest.raises(ValidationError, match="header 'Host' is set by the HTTP client"):
        webhook("https://a.example", "{}", headers={"Host": "b.example"})
    with pytest.raises(ValidationError, match="a POST webhook needs a body"):
        webhook("https://a.example")
    with pytest.raises(ValidationError, match="unknown method 'FETCH'"):
        webhook("https://a.example", "{}", method="FETCH")
    with pytest.raises(ValidationError, match="a title must be a single line"):
        push("two\nlines", "body")


# --- The JSON Schema -------------------------------------------------------------------------

GOOD = {
    "sms": "send: {id: sms-reminder, channel: sms, body: 'Your cart is waiting'}",
    "sms with locales": "send: {channel: sms, body: a, locales: {fr: {body: b}}, group: otp}",
    "push": "send: {channel: push, title: Back in stock, body: '...', data: {sku: '{{ x }}'}}",
    "in_app": "send: {channel: in_app, title: t, body: b, data: {from: ok}}",
    "webhook": "send: {channel: webhook, url: 'https://crm.example.com/h', method: POST,"
    " headers: {X-Source: journeyman}, body: '{}'}",
    "webhook without body": "send: {channel: webhook, url: 'http://[::1]:8080/p', method: GET}",
    "email with channel and group": "send: {channel: email, group: transactional, subject: a,"
    " body: b}",
}

BAD = {
    "subject on sms": "send: {channel: sms, subject: a, body: b}",
    "url on email": "send: {subject: a, body: b, url: 'https://a.example'}",
    "html on push": "send: {channel: push, title: a, body: b, html: c}",
    "subject on push": "send: {channel: push, subject: a, body: b}",
    "sms without body": "send: {channel: sms}",
    "push without title": "send: {channel: push, body: b}",
    "in_app without body": "send: {channel: in_app, title: a}",
    "webhook without url": "send: {channel: webhook, body: b}",
    "post webhook without body": "send: {channel: webhook, url: 'https://a.example'}",
    "ftp url": "send: {channel: webhook, url: 'ftp://a.example', body: b}",
    "templated host": "send: {channel: webhook, url: 'https://{{ h }}/x', body: b}",
    "unknown method": "send: {channel: webhook, url: 'https://a.example', method: FETCH, body: b}",
    "reserved header": "send: {channel: webhook, url: 'https://a.example', body: b,"
    " headers: {content-LENGTH: '1'}}",
    "header with a space": "send: {channel: webhook, url: 'https://a.example', body: b,"
    " headers: {'X A': '1'}}",
    "two-line header value": "send: {channel: webhook, url: 'https://a.example', body: b,"
    ' headers: {X-A: "a\\nb"}}',
    "long sms": f"send: {{channel: sms, body: '{'x' * 1601}'}}",
    "reserved push data key": "send: {channel: push, title: a, body: b, data: {from: x}}",
    "unknown channel": "send: {channel: fax, subject: a, body: b}",
    "group with a hyphen": "send: {channel: push, title: a, body: b, group: product-updates}",
    "template on sms": "send: {channel: sms, template: t}",
}


def one_send(touchpoint: str) -> str:
    return (
        HEAD
        + "templates: {t: {subject: a, body: b}}\n"
        + "stages:\n  - name: s\n    touchpoints:\n      - "
        + touchpoint
        + "\n"
    )


@pytest.mark.parametrize("touchpoint", GOOD.values(), ids=GOOD.keys())
def test_the_schema_and_the_compiler_accept_every_channel(touchpoint: str) -> None:
    text = one_send(touchpoint)
    compile_source(text)
    assert schema_errors(text) == []


@pytest.mark.parametrize("touchpoint", BAD.values(), ids=BAD.keys())
def test_the_schema_and_the_compiler_reject_a_bad_send(touchpoint: str) -> None:
    text = one_send(touchpoint)
    with pytest.raises(JourneyError):
        compile_source(text)
    assert schema_errors(text) != []


def test_the_schema_tells_editors_the_keys_of_each_channel() -> None:
    definitions: dict[str, Any] = journey_schema()["$defs"]
    keys = {
        name: sorted(definitions[name]["properties"])
        for name in ("SmsSendSpec", "PushSendSpec", "InAppSendSpec", "WebhookSendSpec")
    }
    # goal and kpi measure a message on every channel alike.
    every = ["goal", "kpi"]
    assert keys == {
        "SmsSendSpec": sorted(["body", "channel", "group", "id", "locales", *every]),
        "PushSendSpec": sorted(
            ["body", "channel", "data", "group", "id", "locales", "title", *every]
        ),
        "InAppSendSpec": sorted(
            ["body", "channel", "data", "group", "id", "locales", "title", *every]
        ),
        "WebhookSendSpec": sorted(
            ["body", "channel", "group", "headers", "id", "method", "url", *every]
        ),
    }
