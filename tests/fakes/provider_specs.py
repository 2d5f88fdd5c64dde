"""The providers' OpenAPI documents (shared/specs), turned into JSON Schema validators.

``shared/`` lies beside the repository (``<repo>/../shared/specs``), on developer machines and
in CI alike. The documents are big (1-2 MB) and are parsed once per process.

Two OpenAPI features are not JSON Schema, and are translated here the way the mock server the
research used (Stoplight Prism) reads them:

- ``allOf`` branches are *merged* into one object schema. Under plain JSON Schema a branch's
  ``additionalProperties: false`` cannot see the properties of its sibling branches, so Meta's
  own examples would fail (shared/research/providers.md 2.3 (d)).
- ``discriminator.mapping`` selects the branch named by the discriminating property (``type``),
  where plain JSON Schema would ignore it and check nothing below a template component.

OpenAPI 3.0's ``nullable: true`` (Twilio's document) becomes a ``"null"`` type.
"""

from __future__ import annotations

import email.utils
import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, FormatChecker

TWILIO_SPEC = "twilio_api_v2010.json"
META_SPEC = "business-messaging-api_v23.0.yaml"
TWILIO_MESSAGES = "/2010-04-01/Accounts/{AccountSid}/Messages.json"
META_MESSAGES = "/{Version}/{Phone-Number-ID}/messages"

_E164 = re.compile(r"^\+[1-9]\d{6,14}$")


def repo_root() -> Path:
    here = Path(__file__).resolve()
    return next(p for p in here.parents if (p / "pyproject.toml").is_file())


def specs_dir() -> Path:
    return repo_root().parent / "shared" / "specs"


@functools.cache
def load(name: str) -> dict[str, Any]:
    path = specs_dir() / name
    with path.open(encoding="utf-8") as file:
        if name.endswith(".json"):
            document: dict[str, Any] = json.load(file)
        else:
            loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
            document = yaml.load(file, Loader=loader)
    return document


def operation(document: Mapping[str, Any], path: str, method: str = "post") -> dict[str, Any]:
    item: dict[str, Any] = document["paths"][path]
    op: dict[str, Any] = item[method]
    return op


def operation_parameters(
    document: Mapping[str, Any], path: str, method: str = "post"
) -> dict[str, Any]:
    """Each parameter of the operation (path-level and its own), ``$ref`` resolved, by name."""
    item = document["paths"][path]
    found: dict[str, Any] = {}
    for raw in [*item.get("parameters", []), *item[method].get("parameters", [])]:
        parameter = resolve(document, raw["$ref"]) if "$ref" in raw else raw
        found[parameter["name"]] = parameter
    return found


def match_path(template: str, actual: str) -> dict[str, str] | None:
    """The values of ``{name}`` placeholders when ``actual`` has the shape of ``template``."""
    pattern = "".join(
        f"(?P<p{i}>[^/]+)" if part.startswith("{") else re.escape(part)
        for i, part in enumerate(re.split(r"(\{[^}]+\})", template))
    )
    names = {f"p{i}": part[1:-1] for i, part in enumerate(re.split(r"(\{[^}]+\})", template))}
    found = re.fullmatch(pattern, actual)
    if found is None:
        return None
    return {names[key]: value for key, value in found.groupdict().items()}


def resolve(document: Mapping[str, Any], ref: str) -> dict[str, Any]:
    assert ref.startswith("#/"), f"only local references are expected, got {ref}"
    node: Any = document
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    assert isinstance(node, dict)
    return node


def flatten(
    node: Any,
    document: Mapping[str, Any],
    *,
    nullable: bool = False,
    base_of_allof: bool = False,
    depth: int = 0,
) -> Any:
    """A self-contained JSON Schema for ``node``: references inlined, ``allOf`` merged,
    discriminators turned into if/then branches, ``nullable`` (when OpenAPI 3.0) applied."""
    if depth > 60:
        raise RecursionError("schema nesting too deep: a cycle?")
    if not isinstance(node, dict):
        return node

    def again(child: Any, *, base: bool = False) -> Any:
        return flatten(child, document, nullable=nullable, base_of_allof=base, depth=depth + 1)

    if "$ref" in node:
        return again(resolve(document, node["$ref"]), base=base_of_allof)
    schema = {k: v for k, v in node.items() if k not in {"example", "examples", "x-twilio"}}
    discriminator = schema.pop("discriminator", None)
    if discriminator and discriminator.get("mapping") and not base_of_allof:
        key = discriminator["propertyName"]
        mapping: dict[str, str] = discriminator["mapping"]
        return {
            "type": "object",
            "required": [key],
            "properties": {key: {"enum": list(mapping)}},
            "allOf": [
                {
                    "if": {"properties": {key: {"const": value}}, "required": [key]},
                    "then": again({"$ref": target}),
                }
                for value, target in mapping.items()
            ],
        }
    if "allOf" in schema:
        branches = [again(branch, base=True) for branch in schema.pop("allOf")]
        return _merge([*branches, again(schema)])
    if isinstance(schema.get("properties"), dict):
        schema["properties"] = {k: again(v) for k, v in schema["properties"].items()}
    if isinstance(schema.get("items"), dict):
        schema["items"] = again(schema["items"])
    if isinstance(schema.get("additionalProperties"), dict):
        schema["additionalProperties"] = again(schema["additionalProperties"])
    for key in ("oneOf", "anyOf"):
        if key in schema:
            schema[key] = [again(branch) for branch in schema[key]]
    if nullable and schema.pop("nullable", False):
        if "type" in schema:
            schema["type"] = [schema["type"], "null"]
        if "enum" in schema:
            schema["enum"] = [*schema["enum"], None]
    return schema


def _merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    properties: dict[str, Any] = {}
    required: list[str] = []
    extra: list[Any] = []
    for part in parts:
        for key, value in part.items():
            if key == "properties":
                for name, schema in value.items():
                    properties[name] = (
                        {"allOf": [properties[name], schema]} if name in properties else schema
                    )
            elif key == "required":
                required += [name for name in value if name not in required]
            elif key == "additionalProperties":
                if value is False or key not in merged:
                    merged[key] = value
            elif key == "allOf":
                extra += value
            else:
                merged.setdefault(key, value)
    if properties:
        merged["properties"] = properties
    if required:
        merged["required"] = required
    if extra:
        merged["allOf"] = extra
    return merged


def validator(schema: Mapping[str, Any]) -> Draft202012Validator:
    return Draft202012Validator(schema, format_checker=FORMATS)


def errors(schema: Mapping[str, Any], instance: object) -> list[str]:
    """Every way ``instance`` breaks ``schema``, one readable line each."""
    found = sorted(validator(schema).iter_errors(instance), key=lambda e: list(e.absolute_path))
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in found]


# Formats the documents use. jsonschema checks "uri" only with an extra package, so it is
# defined here, with Twilio's own rule for StatusCallback: "must contain a valid hostname and
# underscores are not allowed".
FORMATS = FormatChecker()


@FORMATS.checks("phone-number")
def _phone_number(value: object) -> bool:
    if not isinstance(value, str):
        return True
    address = value.removeprefix("whatsapp:")
    return bool(_E164.match(address))


@FORMATS.checks("uri")
def _uri(value: object) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return (
        parts.scheme in {"http", "https"}
        and bool(parts.hostname)
        and "_" not in (parts.hostname or "")
    )


@FORMATS.checks("date-time-rfc-2822")
def _rfc2822(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return False
    return True


@FORMATS.checks("currency")
def _currency(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"[A-Z]{3}", value))
