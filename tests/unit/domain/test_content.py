"""parse_content: exactly one of body or template, within each channel's limits."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from conversa.domain.channel import Channel
from conversa.domain.content import Body, Template, parse_content
from conversa.domain.errors import InvalidContent


def refused(payload: Mapping[str, object], channel: Channel = Channel.SMS) -> InvalidContent:
    with pytest.raises(InvalidContent) as caught:
        parse_content(payload, channel)
    return caught.value


def test_body_is_accepted() -> None:
    assert parse_content({"body": "hello"}, Channel.SMS) == Body("hello")


def test_template_is_accepted_with_its_variables_as_a_tuple() -> None:
    content = parse_content(
        {"template": {"name": "otp", "variables": ["1234", "5 minutes"]}}, Channel.WHATSAPP
    )
    assert content == Template("otp", ("1234", "5 minutes"))
    assert isinstance(content, Template)
    assert isinstance(content.variables, tuple)


def test_template_variables_default_to_an_empty_tuple() -> None:
    content = parse_content({"template": {"name": "welcome"}}, Channel.WHATSAPP)
    assert content == Template("welcome", ())
    assert isinstance(content, Template)
    assert content.variables == ()


def test_body_and_template_together_are_refused() -> None:
    error = refused({"body": "hi", "template": {"name": "welcome"}})
    assert error.field == "template"
    assert "exactly one" in error.message


def test_neither_body_nor_template_is_refused() -> None:
    assert refused({}).field == "body"
    assert refused({"body": None, "template": None}).field == "body"


@pytest.mark.parametrize("body", ["", "   ", 42, ["hi"]])
def test_body_must_be_a_non_empty_string(body: object) -> None:
    assert refused({"body": body}).field == "body"


@pytest.mark.parametrize(("channel", "limit"), [(Channel.SMS, 1600), (Channel.WHATSAPP, 4096)])
def test_body_at_the_channel_limit_is_accepted(channel: Channel, limit: int) -> None:
    assert parse_content({"body": "x" * limit}, channel) == Body("x" * limit)


@pytest.mark.parametrize(("channel", "limit"), [(Channel.SMS, 1600), (Channel.WHATSAPP, 4096)])
def test_body_over_the_channel_limit_is_refused(channel: Channel, limit: int) -> None:
    error = refused({"body": "x" * (limit + 1)}, channel)
    assert error.field == "body"
    assert str(limit) in error.message


def test_the_sms_limit_does_not_apply_to_whatsapp() -> None:
    assert parse_content({"body": "x" * 1601}, Channel.WHATSAPP) == Body("x" * 1601)


@pytest.mark.parametrize("variables", [[1, 2], ["ok", None], [["nested"]], "not-a-list"])
def test_template_variables_must_be_a_list_of_strings(variables: object) -> None:
    error = refused({"template": {"name": "otp", "variables": variables}})
    assert error.field == "template.variables"


@pytest.mark.parametrize("template", [{}, {"variables": ["a"]}, {"name": ""}, {"name": 7}])
def test_template_name_is_required(template: Mapping[str, object]) -> None:
    assert refused({"template": template}).field == "template.name"


def test_template_must_be_an_object() -> None:
    assert refused({"template": "welcome"}).field == "template"


def test_unknown_template_fields_are_refused() -> None:
    error = refused({"template": {"name": "otp", "variables": [], "language": "en"}})
    assert error.field == "template"
    assert "language" in error.message
