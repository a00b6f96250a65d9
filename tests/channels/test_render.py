"""Rendering: values, strictness, escaping, the sandbox and the compiled-template cache."""

from __future__ import annotations

from typing import Any

import pytest
from jinja2.exceptions import SecurityError, TemplateSyntaxError, UndefinedError

from journeyman.channels import EmailTemplate, RenderedEmail, Renderer, RenderError

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
