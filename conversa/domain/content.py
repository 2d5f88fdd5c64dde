"""What a message says: a free-text body, or an approved template with its variables."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from conversa.domain.channel import Channel
from conversa.domain.errors import InvalidContent
from conversa.domain.text import UNSTORABLE, is_storable

MAX_TEMPLATE_NAME = 512
MAX_TEMPLATE_VARIABLES = 100
MAX_VARIABLE_LENGTH = 1024


@dataclass(frozen=True, slots=True)
class Body:
    text: str

    def as_dict(self) -> dict[str, object]:
        return {"body": self.text}


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    variables: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, object]:
        return {"template": {"name": self.name, "variables": list(self.variables)}}


Content = Body | Template


def parse_content(payload: Mapping[str, object], channel: Channel) -> Content:
    """Read exactly one of ``body`` or ``template`` from a send payload."""
    has_body = payload.get("body") is not None
    has_template = payload.get("template") is not None
    if has_body == has_template:
        field = "body" if not has_body else "template"
        raise InvalidContent(field, "give exactly one of body or template")
    if has_body:
        return _parse_body(payload["body"], channel)
    return _parse_template(payload["template"])


def _parse_body(raw: object, channel: Channel) -> Body:
    if not isinstance(raw, str) or not raw.strip():
        raise InvalidContent("body", "body must be a non-empty string")
    if len(raw) > channel.max_body_length:
        raise InvalidContent(
            "body", f"body is longer than {channel.max_body_length} characters for {channel}"
        )
    if not is_storable(raw):
        raise InvalidContent("body", f"body {UNSTORABLE}")
    return Body(raw)


def _parse_template(raw: object) -> Template:
    if not isinstance(raw, Mapping):
        raise InvalidContent("template", "template must be an object with name and variables")
    name = raw.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_TEMPLATE_NAME:
        raise InvalidContent("template.name", "template.name must be a non-empty string")
    if not is_storable(name):
        raise InvalidContent("template.name", f"template.name {UNSTORABLE}")
    variables = raw.get("variables", [])
    if not isinstance(variables, list | tuple) or len(variables) > MAX_TEMPLATE_VARIABLES:
        raise InvalidContent(
            "template.variables",
            f"template.variables must be a list of at most {MAX_TEMPLATE_VARIABLES} strings",
        )
    if not all(isinstance(v, str) and len(v) <= MAX_VARIABLE_LENGTH for v in variables):
        raise InvalidContent(
            "template.variables",
            f"template.variables must be strings of at most {MAX_VARIABLE_LENGTH} characters",
        )
    if not all(is_storable(v) for v in variables):
        raise InvalidContent("template.variables", f"template.variables {UNSTORABLE}")
    unknown = set(raw) - {"name", "variables"}
    if unknown:
        raise InvalidContent(
            "template", f"template has unknown fields: {', '.join(sorted(unknown))}"
        )
    return Template(name, tuple(variables))
