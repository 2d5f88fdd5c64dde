"""The projection's reading of stored events: straight from their stored state to
:class:`~conversa.app.projection.EventFacts`, without building domain events.

The mapper's way (``to_domain_event``) decodes the whole state with the standard JSON
module and an object hook, builds every value object (parsing each phone number again)
and the event object, to keep a handful of plain values. This reader decodes the state
with orjson and takes only the fields the fold reads, turning the library's
``{"_type_": name, "_data_": ...}`` encodings of those fields back to plain values itself.
Anything it does not recognise, it hands to the mapper, so it is never less faithful:

- a topic that is not a known event of :class:`Message` (another aggregate: skipped; a
  newer event class of Message: decoded by the mapper);
- a stored ``class_version`` other than the class's own (the mapper upcasts);
- an encoding of a field other than the one this code expects.

A cipher or a compressor configured on the event store still applies (the mapper's own).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from uuid import UUID

import orjson
from eventsourcing.persistence import JSONTranscoder, Mapper, StoredEvent
from eventsourcing.utils import get_topic, resolve_topic

from conversa.app.projection import EVENT_KINDS, EventFacts, facts_of_event
from conversa.domain.inbound import InboundMessage
from conversa.domain.message import Message

_QUEUED_FIELDS = ("channel", "sender", "driver", "idempotency_key")
_FAILED_FIELDS = ("code", "message", "status", "source", "driver")
_NO_FIELDS: dict[str, Any] = {}


class _Fallback(Exception):
    """This state is not in the shape the fast path knows: let the mapper decode it."""


class StoredFactsReader:
    """Turns stored events into the fold's facts (None for other aggregates' events)."""

    def __init__(self, mapper: Mapper[UUID]) -> None:
        self.mapper = mapper
        self._names: dict[str, Any] = getattr(mapper.transcoder, "names", {})
        # Only states in the library's JSON transcoder format can be read directly.
        self._direct = isinstance(mapper.transcoder, JSONTranscoder)
        self._kinds: dict[str, tuple[str, int] | None] = {
            get_topic(cls): (kind, getattr(cls, "class_version", 1))
            for cls, kind in EVENT_KINDS.items()
        }

    def facts(
        self, topic: str, originator_id: UUID | str, version: int, state: bytes
    ) -> EventFacts | None:
        if topic not in self._kinds:
            self._kinds[topic] = self._classify(topic)
        known = self._kinds[topic]
        if known is None:
            return None  # another aggregate's event
        kind, class_version = known
        message_id = originator_id if isinstance(originator_id, UUID) else UUID(originator_id)
        if self._direct and kind != "other":
            try:
                return self._decode(kind, class_version, message_id, version, state)
            except _Fallback:
                pass
        event = self.mapper.to_domain_event(
            StoredEvent(
                originator_id=message_id,
                originator_version=version,
                topic=topic,
                state=state,
            )
        )
        return facts_of_event(event)

    def _classify(self, topic: str) -> tuple[str, int] | None:
        try:
            cls = resolve_topic(topic)
        except Exception:
            return None
        if isinstance(cls, type) and issubclass(cls, Message.Event | InboundMessage.Event):
            # A kind the fast path reads only if it is one of the known classes; a
            # subclass or a new class goes through the mapper ("other" below).
            return ("other", getattr(cls, "class_version", 1))
        return None

    def _decode(
        self, kind: str, class_version: int, message_id: UUID, version: int, state: bytes
    ) -> EventFacts:
        mapper = self.mapper
        if mapper.cipher is not None:
            state = mapper.cipher.decrypt(state)
        if mapper.compressor is not None:
            state = mapper.compressor.decompress(state)
        data = orjson.loads(state)
        try:
            if data.get("class_version", 1) != class_version:
                raise _Fallback
            timestamp = _datetime(data["timestamp"])
            if kind in ("delivered", "read", "cancelled"):
                fields: dict[str, Any] = _NO_FIELDS
            elif kind == "sent":
                fields = {
                    "provider_message_id": _text(data["provider_message_id"]),
                    "source": _text(data["source"]),
                    "sender": _text(data["sender"]),
                    "driver": _text(data["driver"]),
                }
            elif kind == "queued":
                fields = self._queued(data)
            elif kind == "received":
                raise _Fallback  # rare enough: the mapper reads it
            elif kind == "attempt_started":
                fields = {"lease_until": _datetime(data["lease_until"])}
            elif kind == "retried":
                fields = {
                    "code": _text(data["code"]),
                    "message": _text(data["message"]),
                    "next_attempt_at": _datetime(data["next_attempt_at"]),
                }
            else:  # failed
                fields = {name: _text(data[name]) for name in _FAILED_FIELDS}
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise _Fallback from error
        return EventFacts(kind, message_id, version, timestamp, fields)

    def _queued(self, data: dict[str, Any]) -> dict[str, Any]:
        fields: dict[str, Any] = {name: _text(data[name]) for name in _QUEUED_FIELDS}
        fields["to"] = _typed(data["to"], "phone")
        reply_to = data["reply_to"]
        fields["reply_to"] = None if reply_to is None else UUID(_typed(reply_to, "uuid_hex"))
        at = data["next_attempt_at"]
        fields["next_attempt_at"] = None if at is None else _datetime(at)
        fields["category"] = _text(data["category"])
        scheduled = data["scheduled_at"]
        fields["scheduled_at"] = None if scheduled is None else _datetime(scheduled)
        meta = data["meta"]
        fields["meta"] = self._revive(meta) if meta else meta
        content = data["content"]
        fields["body"] = fields["template"] = None
        if content is not None:
            if content.get("_type_") == "body" and len(content) == 2:
                fields["body"] = _text(content["_data_"])
            elif content.get("_type_") == "template" and len(content) == 2:
                template = content["_data_"]
                variables = template["variables"]
                if len(template) != 2 or not all(type(v) is str for v in variables):
                    raise _Fallback
                fields["template"] = {
                    "name": _text(template["name"]),
                    "variables": list(variables),
                }
            else:
                raise _Fallback
        return fields

    def _revive(self, value: Any) -> Any:
        """What the library's JSON transcoder makes of ``value``: every dict of exactly
        ``_type_`` and ``_data_`` decoded by the transcoding of that name, innermost first."""
        if isinstance(value, dict):
            if not value:
                return value
            revived = {key: self._revive(item) for key, item in value.items()}
            if len(revived) == 2 and "_type_" in revived and "_data_" in revived:
                transcoding = self._names.get(revived["_type_"])
                if transcoding is None:
                    raise _Fallback  # the mapper raises its own error for this
                return transcoding.decode(revived["_data_"])
            return revived
        if isinstance(value, list):
            return [self._revive(item) for item in value]
        return value


def _text(value: Any) -> str | None:
    if value is None or type(value) is str:
        return value
    raise _Fallback


def _typed(value: Any, name: str) -> str:
    if type(value) is dict and value.get("_type_") == name and len(value) == 2:
        data = value["_data_"]
        if type(data) is str:
            return data
    raise _Fallback


def _datetime(value: Any) -> datetime:
    return datetime.fromisoformat(_typed(value, "datetime_iso"))
