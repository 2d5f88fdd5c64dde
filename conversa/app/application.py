"""The eventsourcing Application that stores Conversa's aggregates."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from eventsourcing.application import Application
from eventsourcing.persistence import JSONTranscoder, Transcoding

from conversa.domain.content import Body, Template
from conversa.domain.phone import PhoneNumber


class PhoneNumberAsE164(Transcoding):
    type = PhoneNumber
    name = "phone"

    def encode(self, obj: PhoneNumber) -> str:
        return obj.e164

    def decode(self, data: str) -> PhoneNumber:
        return PhoneNumber(data)


class BodyAsText(Transcoding):
    type = Body
    name = "body"

    def encode(self, obj: Body) -> str:
        return obj.text

    def decode(self, data: str) -> Body:
        return Body(data)


class TemplateAsDict(Transcoding):
    type = Template
    name = "template"

    def encode(self, obj: Template) -> dict[str, Any]:
        return {"name": obj.name, "variables": list(obj.variables)}

    def decode(self, data: dict[str, Any]) -> Template:
        return Template(data["name"], tuple(data["variables"]))


class ConversaApp(Application[UUID]):
    """Events of every message, in ``conversa_events`` (PostgreSQL) or ``stored_events``."""

    name = "conversa"

    def register_transcodings(self, transcoder: JSONTranscoder) -> None:
        super().register_transcodings(transcoder)
        transcoder.register(PhoneNumberAsE164())
        transcoder.register(BodyAsText())
        transcoder.register(TemplateAsDict())
