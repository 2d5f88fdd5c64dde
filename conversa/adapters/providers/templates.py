"""The templates file: logical template names mapped to each driver's own template identity.

``CONVERSA_TEMPLATES_FILE`` is a TOML file with one table per logical name::

    [order_shipped]
    twilio = { content_sid = "HX0123456789abcdef0123456789abcdef" }
    whatsapp_cloud = { name = "order_shipped", language = "en_US" }

A logical name needs a mapping only for the drivers that send it. The file is read once, at
start-up; anything wrong in it stops start-up with one line naming the variable, the file and
the place of the mistake, so a typo is found before the first send rather than at it.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, NoReturn, overload

from conversa.app.settings import SettingsError
from conversa.domain.errors import InvalidRequest

VARIABLE = "CONVERSA_TEMPLATES_FILE"
TWILIO = "twilio"
WHATSAPP_CLOUD = "whatsapp_cloud"
#: Not a driver: the plain text a WhatsApp template falls back to as an SMS, with ``{1}``,
#: ``{2}``... standing for its variables.
SMS = "sms"
_PLACEHOLDER = re.compile(r"\{(\d+)\}")

_CONTENT_SID = re.compile(r"^HX[0-9a-fA-F]{32}$")
# Meta: "Template names can only contain lowercase alphanumeric characters and underscores",
# at most 512 characters.
_META_NAME = re.compile(r"^[a-z0-9_]{1,512}$")
# Meta's language codes: "en", "en_US", "pt_BR", "zh_CN", "zh_HK", "ha", "fil", ...
_META_LANGUAGE = re.compile(r"^[a-z]{2,3}(_[A-Z]{2,4})?$")


@dataclass(frozen=True, slots=True)
class TwilioTemplate:
    """A Twilio Content API template, sent as ``ContentSid`` + ``ContentVariables``."""

    content_sid: str


@dataclass(frozen=True, slots=True)
class WhatsAppCloudTemplate:
    """An approved WhatsApp message template, as Meta names it."""

    name: str
    language: str


@dataclass(frozen=True, slots=True)
class SmsText:
    """The SMS text of a template, for a WhatsApp-to-SMS fallback."""

    text: str

    def render(self, variables: tuple[str, ...]) -> str:
        """The text with ``{n}`` replaced by the n-th variable (from 1); a placeholder
        without its variable stays as it is."""

        def fill(match: re.Match[str]) -> str:
            index = int(match.group(1))
            return variables[index - 1] if 0 < index <= len(variables) else match.group()

        return _PLACEHOLDER.sub(fill, self.text)


DriverTemplate = TwilioTemplate | WhatsAppCloudTemplate | SmsText


class UnknownTemplate(InvalidRequest):
    """A template name the templates file does not know, or does not map for the driver."""

    code = "unknown_template"

    def __init__(self, name: str, driver: str, *, known: bool) -> None:
        if known:
            message = (
                f"template {name!r} has no {driver} mapping in {VARIABLE}; "
                f"add a `{driver} = {{...}}` entry to its table"
            )
        else:
            message = f"unknown template {name!r}: it is not defined in {VARIABLE}"
        super().__init__("template.name", message)
        self.name = name
        self.driver = driver


class TemplateCatalog:
    """The logical templates this deployment may send, per driver. Immutable."""

    def __init__(self, entries: Mapping[str, Mapping[str, DriverTemplate]] | None = None) -> None:
        self._entries = {name: dict(mapping) for name, mapping in (entries or {}).items()}

    @classmethod
    def load(cls, path: Path | None) -> TemplateCatalog:
        """Read the templates file; ``None`` (the variable unset) gives an empty catalog.

        Raises :class:`SettingsError` with one line naming ``CONVERSA_TEMPLATES_FILE``.
        """
        if path is None:
            return cls()
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as error:
            reason = error.strerror if isinstance(error, OSError) and error.strerror else error
            raise SettingsError(f"{VARIABLE}: cannot read {path}: {reason}") from None
        return cls.parse(text, source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "<string>") -> TemplateCatalog:
        try:
            document = tomllib.loads(text)
        except tomllib.TOMLDecodeError as error:
            raise SettingsError(f"{VARIABLE}: {source} is not valid TOML: {error}") from None
        entries: dict[str, dict[str, DriverTemplate]] = {}
        for name, table in document.items():
            if not isinstance(table, dict):
                _fail(source, name, "must be a table like [name] with driver entries")
            if not table:
                _fail(source, name, f"maps no driver; add {TWILIO} and/or {WHATSAPP_CLOUD}")
            entries[name] = {
                driver: _driver_template(source, name, driver, value)
                for driver, value in table.items()
            }
        return cls(entries)

    @overload
    def for_driver(self, name: str, driver: Literal["twilio"]) -> TwilioTemplate: ...

    @overload
    def for_driver(self, name: str, driver: Literal["whatsapp_cloud"]) -> WhatsAppCloudTemplate: ...

    @overload
    def for_driver(self, name: str, driver: str) -> DriverTemplate: ...

    def for_driver(self, name: str, driver: str) -> DriverTemplate:
        """The identity of logical template ``name`` for ``driver``.

        Raises :class:`UnknownTemplate` when the name is unknown or has no such mapping.
        """
        mapping = self._entries.get(name)
        if mapping is None:
            raise UnknownTemplate(name, driver, known=False)
        template = mapping.get(driver)
        if template is None:
            raise UnknownTemplate(name, driver, known=True)
        return template

    def sms_text(self, name: str, variables: tuple[str, ...]) -> str | None:
        """The SMS text of template ``name`` with its variables filled in, or None when the
        templates file gives it none."""
        template = self._entries.get(name, {}).get(SMS)
        return template.render(variables) if isinstance(template, SmsText) else None

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __len__(self) -> int:
        return len(self._entries)


def _driver_template(source: str, name: str, driver: str, value: object) -> DriverTemplate:
    where = f"{name}.{driver}"
    if not isinstance(value, dict):
        _fail(source, where, 'must be an inline table like { key = "value" }')
    if driver == TWILIO:
        _only_keys(source, where, value, required={"content_sid"})
        sid = value["content_sid"]
        if not isinstance(sid, str) or not _CONTENT_SID.match(sid):
            _fail(source, f"{where}.content_sid", "must be HX followed by 32 hex digits")
        return TwilioTemplate(content_sid=sid)
    if driver == WHATSAPP_CLOUD:
        _only_keys(source, where, value, required={"name", "language"})
        meta_name, language = value["name"], value["language"]
        if not isinstance(meta_name, str) or not _META_NAME.match(meta_name):
            _fail(
                source,
                f"{where}.name",
                "must be a Meta template name: lowercase letters, digits and underscores",
            )
        if not isinstance(language, str) or not _META_LANGUAGE.match(language):
            _fail(source, f"{where}.language", "must be a language code like en or en_US")
        return WhatsAppCloudTemplate(name=meta_name, language=language)
    if driver == SMS:
        _only_keys(source, where, value, required={"text"})
        text = value["text"]
        if not isinstance(text, str) or not text.strip():
            _fail(source, f"{where}.text", "must be the SMS text, {1} for the first variable")
        return SmsText(text=text)
    _fail(source, where, f"unknown driver {driver!r}; known: {TWILIO}, {WHATSAPP_CLOUD}, {SMS}")


def _only_keys(source: str, where: str, value: Mapping[str, object], *, required: set[str]) -> None:
    missing = required - set(value)
    if missing:
        _fail(source, where, f"lacks {', '.join(sorted(missing))}")
    unknown = set(value) - required
    if unknown:
        _fail(source, where, f"has unknown keys {', '.join(sorted(unknown))}")


def _fail(source: str, where: str, problem: str) -> NoReturn:
    raise SettingsError(f"{VARIABLE}: {source}: [{where}] {problem}")
