"""Rendering: values, strictness, escaping, the sandbox, limits, channels, locales, the cache."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import time
from pathlib import Path
from typing import Any

import pytest
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from journeyman.channels import EmailTemplate, RenderedEmail, Renderer, RenderError
from journeyman.channels.render import (
    MessageTemplate,
    RenderedMessage,
    RenderLimits,
    TemplateRenderError,
    locale_candidates,
    pick_locale,
    render_text,
    template_context,
)

PROFILE = {"first_name": "Ada", "plan": "pro"}


def render(
    subject: str = "Hi", body: str = "Body", html: str | None = None, **context: Any
) -> RenderedEmail:
    return Renderer().render_email(EmailTemplate(subject=subject, body=body, html=html), context)


def test_context_values_fill_every_part() -> None:
    email = render(
        subject="Welcome, {{ profile.first_name }}",
        body="Your plan: {{ profile.plan }}",
        html="<p>{{ profile.first_name }} on {{ profile['plan'] }}</p>",
        profile=PROFILE,
    )
    assert email.subject == "Welcome, Ada"
    assert email.text == "Your plan: pro"
    assert email.html == "<p>Ada on pro</p>"


def test_html_is_none_without_an_html_template() -> None:
    assert render(body="x").html is None


def test_default_filter_covers_a_missing_value() -> None:
    email = render(body="Hi {{ profile.nickname | default('there') }}", profile=PROFILE)
    assert email.text == "Hi there"


@pytest.mark.parametrize("part", ["subject", "body", "html"])
def test_undefined_value_is_an_error_naming_the_part(part: str) -> None:
    sources = {"subject": "ok", "body": "ok", "html": "ok"}
    sources[part] = "Hi {{ profile.missing }}"
    with pytest.raises(RenderError) as caught:
        render(**sources, profile=PROFILE)
    assert caught.value.part == part
    assert str(caught.value).startswith(f"{part} template failed")
    assert "missing" in str(caught.value)
    assert isinstance(caught.value.__cause__, UndefinedError)


def test_undefined_top_level_name_is_an_error() -> None:
    with pytest.raises(RenderError, match="customer"):
        render(body="{{ customer }}")


def test_syntax_error_names_part_and_line() -> None:
    with pytest.raises(RenderError, match=r"html template has a syntax error on line 2") as caught:
        render(html="<p>\n{{ profile.first_name </p>", profile=PROFILE)
    assert caught.value.part == "html"
    assert isinstance(caught.value.__cause__, TemplateSyntaxError)


def test_runtime_error_in_template_is_a_render_error() -> None:
    with pytest.raises(RenderError, match="ZeroDivisionError") as caught:
        render(body="{{ 1 / count }}", count=0)
    assert caught.value.part == "body"


def test_html_is_autoescaped_but_subject_and_text_are_not() -> None:
    name = "<b>Tom & Jerry</b>"
    email = render(subject="{{ name }}", body="{{ name }}", html="<p>{{ name }}</p>", name=name)
    assert email.html == "<p>&lt;b&gt;Tom &amp; Jerry&lt;/b&gt;</p>"
    assert email.subject == name
    assert email.text == name


class Customer:
    def __init__(self) -> None:
        self.name = "Ada"
        self._token = "do-not-render"


@pytest.mark.parametrize(
    "source",
    [
        "{{ ''.__class__ }}",
        "{{ ''.__class__.__mro__[1].__subclasses__() }}",
        "{{ customer._token }}",
        "{{ customer.__dict__ }}",
    ],
)
def test_sandbox_blocks_private_and_dunder_attributes(source: str) -> None:
    with pytest.raises(RenderError) as caught:
        render(body=source, customer=Customer())
    assert isinstance(caught.value.__cause__, SecurityError)
    assert "do-not-render" not in str(caught.value)


def test_public_attributes_of_objects_still_render() -> None:
    assert render(body="{{ customer.name }}", customer=Customer()).text == "Ada"


def test_sandbox_blocks_mutating_the_context() -> None:
    tags = ["a"]
    with pytest.raises(RenderError) as caught:
        render(body="{{ tags.append('b') }}", tags=tags)
    assert isinstance(caught.value.__cause__, SecurityError)
    assert tags == ["a"]


def test_subject_collapses_to_one_stripped_line() -> None:
    email = render(subject="  Hello\n   {{ name }}\r\n\n  !  ", name="Ada")
    assert email.subject == "Hello Ada !"


def test_line_breaks_from_values_cannot_reach_the_subject() -> None:
    email = render(subject="Hi {{ name }}", name="Ada\r\nBcc: victim@example.com\u2028x")
    assert email.subject == "Hi Ada Bcc: victim@example.com x"


def test_text_keeps_its_line_breaks() -> None:
    assert render(body="one\n{{ x }}\nthree", x="two").text == "one\ntwo\nthree"


def test_each_source_compiles_once() -> None:
    renderer = Renderer()
    template = EmailTemplate(subject="Hi {{ n }}", body="Body {{ n }}")
    first = renderer.render_email(template, {"n": 1})
    second = renderer.render_email(template, {"n": 2})
    assert (first.subject, second.subject) == ("Hi 1", "Hi 2")
    info = renderer.cache_info()
    assert (info.misses, info.hits, info.size) == (2, 2, 2)


def test_same_source_is_cached_separately_for_html_and_text() -> None:
    renderer = Renderer()
    source = "{{ v }}"
    assert renderer.render(source, {"v": "<i>"}) == "<i>"
    assert renderer.render(source, {"v": "<i>"}, html=True) == "&lt;i&gt;"
    assert renderer.cache_info().misses == 2


def test_cache_evicts_the_least_recently_used_source() -> None:
    renderer = Renderer(cache_size=2)
    renderer.render("a", {})
    renderer.render("b", {})
    renderer.render("a", {})  # "a" is now the most recent, so "b" goes next
    renderer.render("c", {})
    assert renderer.cache_info().size == 2
    renderer.render("a", {})
    assert renderer.cache_info().hits == 2
    renderer.render("b", {})
    assert renderer.cache_info().misses == 4


def test_cache_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="cache_size"):
        Renderer(cache_size=0)


# --- strict undefined ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "named"),
    [
        ("{{ profile.nickname }}", "'profile.nickname' is undefined"),
        ("{{ profile.address.city }}", "'profile.address.city' is undefined"),
        ("{{ event.properties['items'][0].sku }}", "'event.properties.items[0].sku' is undefined"),
        ("{{ customer.name }}", "'customer' is undefined"),
        ("{% if profile.vip %}VIP{% endif %}", "'profile.vip' is undefined"),
    ],
)
def test_undefined_error_names_the_whole_path(source: str, named: str) -> None:
    context = {
        "profile": {"first_name": "Ada", "address": {}},
        "event": {"properties": {"items": [{"name": "serum"}]}},
    }
    with pytest.raises(TemplateRenderError) as caught:
        Renderer().render(source, context, part="body")
    assert named in str(caught.value)
    assert (caught.value.part, caught.value.reason, caught.value.line) == ("body", "undefined", 1)


def test_error_names_the_line_it_happened_on() -> None:
    with pytest.raises(TemplateRenderError, match="body template failed on line 3") as caught:
        render(
            body="Hi {{ profile.first_name }},\n\n{{ profile.coupon }} is yours", profile=PROFILE
        )
    assert caught.value.line == 3


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("{{ profile.nickname | default('there') }}", "there"),
        ("{{ profile.first_name | default('there') }}", "Ada"),
        ("{{ profile.empty | default('there', true) }}", "there"),
        (
            "{% if profile.vip is defined and profile.vip %}VIP{% else %}regular{% endif %}",
            "regular",
        ),
        ("{{ (profile.address | default({})).city | default('your city') }}", "your city"),
    ],
)
def test_explicit_defaults_allow_missing_values(source: str, expected: str) -> None:
    profile = {"first_name": "Ada", "empty": ""}
    assert Renderer().render(source, {"profile": profile}) == expected


def test_default_guards_only_the_last_name_of_a_path() -> None:
    # The parent is missing too: the template said nothing about it, so it still fails.
    with pytest.raises(RenderError, match=r"'profile\.address' is undefined"):
        Renderer().render("{{ profile.address.city | default('x') }}", {"profile": {}})


# --- template injection ------------------------------------------------------------------


INJECTIONS = [
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ cycler.__init__.__globals__.os.popen('id').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('id').read() }}",
    "{{ namespace.__init__.__globals__.os.popen('id').read() }}",
    "{{ range.__globals__ }}",
    "{{ config }}",
    "{{ config.items() }}",
    "{{ self.__dict__ }}",
    "{{ self._TemplateReference__context }}",
    "{{ lipsum.__globals__ }}",
    "{{ request.application.__globals__ }}",
    "{% for x in ().__class__.__base__.__subclasses__() %}{{ x }}{% endfor %}",
    '{{ "{0.__class__}".format(profile) }}',
    '{{ "{0.__class__.__mro__}".format(profile) }}',
    '{{ "{p.__class__}".format_map({"p": profile}) }}',
    '{{ profile | attr("__class__") }}',
    '{{ (profile | attr("__class__")).__mro__ }}',
    '{{ profile.items | attr("__self__") }}',
    "{{ profile.__class__ }}",
    "{{ {}.fromkeys(range(3)) }}",
    "{{ profile.update({'a': 1}) }}",
    "{{ profile.pop('first_name') }}",
    "{{ (1).to_bytes(8, 'big') }}",
]


@pytest.mark.parametrize("source", INJECTIONS)
def test_injection_payloads_are_refused(source: str) -> None:
    profile = {"first_name": "Ada"}
    with pytest.raises(TemplateRenderError) as caught:
        Renderer().render(source, {"profile": profile}, part="body")
    assert caught.value.reason in ("unsafe", "undefined")
    assert isinstance(caught.value.__cause__, SecurityError | UndefinedError)
    assert profile == {"first_name": "Ada"}  # nothing was changed either


@pytest.mark.parametrize(
    "source",
    [
        "{{ cycler.__init__.__globals__.os.system('touch ' ~ path) }}",
        "{{ ''.__class__.__mro__[1].__subclasses__()[0]('touch ' ~ path) }}",
        "{% for c in [].__class__.__base__.__subclasses__() %}"
        "{% if c.__name__ == 'Popen' %}{{ c(['touch', path]) }}{% endif %}{% endfor %}",
        '{{ "{0.__init__.__globals__[os].system}".format(cycler) }}',
    ],
)
def test_injection_payloads_never_run_anything(source: str, tmp_path: Path) -> None:
    canary = tmp_path / "ran"
    with pytest.raises(RenderError):
        Renderer().render(source, {"path": str(canary)})
    assert not canary.exists()


def test_calling_methods_of_other_objects_is_refused() -> None:
    class Wallet:
        def drain(self) -> str:
            return "drained"

    with pytest.raises(TemplateRenderError, match=r"Wallet\.drain cannot be called") as caught:
        Renderer().render("{{ wallet.drain() }}", {"wallet": Wallet()})
    assert caught.value.reason == "unsafe"


def test_text_methods_and_helpers_still_work() -> None:
    source = (
        "{{ name.upper() }} {{ 'a,b'.split(',') | join('+') }} {{ '{:.2f}'.format(price) }}"
        " {{ '%05.1f' % price }} {{ data.get('x', 'none') }} {{ dict(a=1).items() | list }}"
        " {% set comma = joiner(', ') %}{% for i in range(3) %}{{ comma() }}{{ i }}{% endfor %}"
        " {% set ns = namespace(total=0) %}{% for i in [1, 2] %}{% set ns.total = ns.total + i %}"
        "{% endfor %}{{ ns.total }} {{ cycler('odd', 'even').next() }}"
        " {% macro tag(t) %}<{{ t }}>{% endmacro %}{{ tag('b') }}"
    )
    rendered = Renderer().render(source, {"name": "ada", "price": 2.5, "data": {}})
    assert rendered == "ADA a+b 2.50 002.5 none [('a', 1)] 0, 1, 2 3 odd <b>"


# --- bounded work ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source",
    [
        '{{ "a" * 10**9 }}',
        "{{ [profile] * 10**8 }}",
        "{% for i in range(10**9) %}x{% endfor %}",
        "{{ range(10**30) | list }}",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        '{% set ns = namespace(s="ab") %}{% for i in range(64) %}{% set ns.s = ns.s ~ ns.s %}'
        "{% endfor %}",
        '{% set ns = namespace(s="ab") %}{% for i in range(64) %}{% set ns.s = ns.s + ns.s %}'
        "{% endfor %}",
        "{% set ns = namespace(n=3) %}{% for i in range(64) %}{% set ns.n = ns.n * ns.n %}"
        "{% endfor %}",
        "{{ 9 ** (10**9) }}",
        '{{ "x" | center(10**9) }}',
        '{{ "x".ljust(10**9) }}',
        '{{ "{:>1000000000}".format(1) }}',
        '{{ "%1000000000d" % 1 }}',
        '{{ "%*d" % (10**9, 1) }}',
        '{{ "%1000000000d" | format(1) }}',
        '{{ "a" | replace("", "b" * 900000) }}',
        '{{ "abc".replace("", "b" * 900000) }}',
        '{{ range(100) | join("x" * 100000) }}',
        '{{ ("x" * 100000).join(["a"] * 100) }}',
        '{{ "line\nline" | indent(10**9) }}',
        '{{ [1] | batch(10**9, "x") | list }}',
        "{{ range(100000) | map('string') | map('replace', '1', 'x' * 1000) | join }}",
        "{% macro m(n) %}{% if n %}{{ m(n - 1) }}{{ m(n - 1) }}{% endif %}{% endmacro %}"
        "{{ m(40) }}",
        "{% for x in [1] recursive %}{{ loop(range(100000)) if loop.depth < 4 }}{% endfor %}",
        "{% set big %}{% for i in range(20000) %}{{ 'x' * 100 }}{% endfor %}{% endset %}{{ big }}",
        "{% for i in range(20000) %}{{ 'x' * 100 }}{% endfor %}",
    ],
)
def test_runaway_templates_fail_cleanly(source: str) -> None:
    started = time.monotonic()
    with pytest.raises(TemplateRenderError) as caught:
        Renderer().render(source, {"profile": PROFILE}, part="body")
    assert caught.value.reason == "too_large", caught.value
    assert time.monotonic() - started < 10


def test_output_limit_counts_the_rendered_text() -> None:
    renderer = Renderer(limits=RenderLimits(max_output_chars=1000))
    assert len(renderer.render("{% for i in range(100) %}0123456789{% endfor %}", {})) == 1000
    with pytest.raises(TemplateRenderError, match="longer than 1000 characters"):
        renderer.render("{% for i in range(101) %}0123456789{% endfor %}", {})


def test_operation_limit_counts_loop_iterations() -> None:
    renderer = Renderer(limits=RenderLimits(max_operations=50))
    renderer.render("{% for i in items %}.{% endfor %}", {"items": list(range(49))})
    with pytest.raises(TemplateRenderError, match="more than 50 operations"):
        renderer.render("{% for i in items %}.{% endfor %}", {"items": list(range(51))})


def test_each_render_gets_a_fresh_budget() -> None:
    renderer = Renderer(limits=RenderLimits(max_operations=50))
    for _ in range(5):
        renderer.render("{% for i in range(40) %}.{% endfor %}", {})


# --- text templates and JSON ---------------------------------------------------------------


def test_render_text_does_not_escape() -> None:
    assert render_text("{{ name }} & co", {"name": "<Tom & Jerry>"}) == "<Tom & Jerry> & co"


def test_tojson_in_text_templates_is_plain_json() -> None:
    profile = {
        "name": 'Mei "the boss" <mei@example.com>',
        "city": "台北",
        "points": decimal.Decimal("12.50"),
        "tier": decimal.Decimal("3"),
        "since": dt.date(2024, 5, 1),
        "tags": ["vip", None, True],
    }
    body = render_text(
        '{"customer": {{ profile | tojson }}, "n": {{ 3 | tojson }}}', {"profile": profile}
    )
    assert json.loads(body) == {
        "customer": {
            "name": 'Mei "the boss" <mei@example.com>',
            "city": "台北",
            "points": 12.5,
            "tier": 3,
            "since": "2024-05-01",
            "tags": ["vip", None, True],
        },
        "n": 3,
    }
    assert "台北" in body  # UTF-8 kept as is, not \\u escapes


def test_tojson_refuses_what_json_cannot_hold() -> None:
    with pytest.raises(TemplateRenderError, match="tojson"):
        render_text("{{ x | tojson }}", {"x": float("nan")})
    with pytest.raises(TemplateRenderError, match=r"'profile\.missing' is undefined"):
        render_text("{{ profile.missing | tojson }}", {"profile": {}})


def test_tojson_in_html_stays_safe_inside_a_script() -> None:
    html = render(html="<script>var c = {{ c | tojson }};</script>", c={"n": "</script>"}).html
    assert html == '<script>var c = {"n": "\\u003c/script\\u003e"};</script>'


def test_concatenation_is_escaped_in_html() -> None:
    email = render(body="{{ 'a' ~ name }}", html="<p>{{ 'a' ~ name }}</p>", name="<i>")
    assert (email.text, email.html) == ("a<i>", "<p>a&lt;i&gt;</p>")


# --- every channel -------------------------------------------------------------------------


CONTEXT = template_context(
    profile={"first_name": "Mei", "phone": "+886912345678"},
    metrics={"order_count": 3},
    event_name="Order Completed",
    event_properties={"order_id": "o-1", "total": 42.5},
    journey={"id": "loyalty", "name": "Loyalty", "stage": "purchase", "step": "thanks"},
    customer_id="c-1",
)


def test_template_context_holds_what_templates_read() -> None:
    assert CONTEXT == {
        "profile": {"first_name": "Mei", "phone": "+886912345678"},
        "metrics": {"order_count": 3},
        "event": {"name": "Order Completed", "properties": {"order_id": "o-1", "total": 42.5}},
        "journey": {"id": "loyalty", "name": "Loyalty", "stage": "purchase", "step": "thanks"},
        "customer_id": "c-1",
    }


@pytest.mark.parametrize(
    ("channel", "template", "expected"),
    [
        (
            "email",
            MessageTemplate(
                subject="Hi\n{{ profile.first_name }}", body="b", html="<b>{{ '<' }}</b>"
            ),
            RenderedMessage(subject="Hi Mei", body="b", html="<b>&lt;</b>"),
        ),
        (
            "sms",
            MessageTemplate(body="Order {{ event.properties.order_id }} & co"),
            RenderedMessage(body="Order o-1 & co"),
        ),
        (
            "push",
            MessageTemplate(
                subject="{{ metrics.order_count }} orders",
                body="Hi <{{ profile.first_name }}>",
                data={"order": "{{ event.properties.order_id }}"},
            ),
            RenderedMessage(subject="3 orders", body="Hi <Mei>", data={"order": "o-1"}),
        ),
        (
            "in_app",
            MessageTemplate(subject="Thanks", body="{{ journey.name }} / {{ journey.step }}"),
            RenderedMessage(subject="Thanks", body="Loyalty / thanks"),
        ),
        (
            "webhook",
            MessageTemplate(
                url="https://crm.example.com/c/{{ customer_id | urlencode }}",
                headers={"X-Order": "{{ event.properties.order_id }}"},
                body='{"total": {{ event.properties.total | tojson }},'
                ' "who": {{ profile.first_name | tojson }}}',
            ),
            RenderedMessage(
                url="https://crm.example.com/c/c-1",
                headers={"X-Order": "o-1"},
                body='{"total": 42.5, "who": "Mei"}',
            ),
        ),
    ],
)
def test_render_message_fills_the_fields_of_each_channel(
    channel: str, template: MessageTemplate, expected: RenderedMessage
) -> None:
    assert Renderer().render_message(channel, template, CONTEXT) == expected


def test_render_message_refuses_fields_the_channel_does_not_read() -> None:
    with pytest.raises(ValueError, match="sms messages have no html or subject"):
        Renderer().render_message("sms", MessageTemplate(subject="s", body="b", html="h"), CONTEXT)
    with pytest.raises(ValueError, match="unknown channel 'fax'"):
        Renderer().render_message("fax", MessageTemplate(body="b"), CONTEXT)


def test_render_message_errors_name_the_field() -> None:
    template = MessageTemplate(body="ok", data={"cta": "{{ profile.cta_url }}"})
    with pytest.raises(TemplateRenderError, match=r"'profile\.cta_url' is undefined") as caught:
        Renderer().render_message("push", template, CONTEXT)
    assert caught.value.part == "data.cta"
    titled = MessageTemplate(subject="{{ profile.nickname }}", body="ok")
    with pytest.raises(TemplateRenderError) as caught:
        Renderer().render_message("in_app", titled, CONTEXT)
    assert caught.value.part == "title"  # push and in-app call their subject a title


# --- locales -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "candidates"),
    [
        ("zh-TW", ["zh-tw", "zh"]),
        ("zh_Hant_TW", ["zh-hant-tw", "zh-hant", "zh"]),
        ("ko", ["ko"]),
        ("", []),
        (None, []),
    ],
)
def test_locale_candidates_go_from_specific_to_general(
    locale: str | None, candidates: list[str]
) -> None:
    assert locale_candidates(locale) == candidates


def test_pick_locale_falls_back_to_the_language_then_the_default() -> None:
    variants = {"zh": "繁簡", "zh-tw": "繁體", "ko": "한국어"}
    assert pick_locale(variants, "zh-TW") == "繁體"
    assert pick_locale(variants, "zh-CN") == "繁簡"
    assert pick_locale(variants, "ko-KR") == "한국어"
    assert pick_locale(variants, "fr") is None
    assert pick_locale(variants, None) is None
