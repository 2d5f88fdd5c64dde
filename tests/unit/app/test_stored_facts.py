"""StoredFactsReader: reading a stored state directly gives the facts the mapper's domain
event gives, for every kind of event, and defers to the mapper for what it does not know."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from uuid import UUID

import orjson
import pytest
from eventsourcing.persistence import StoredEvent

from conversa.app.application import ConversaApp
from conversa.app.projection import EventFacts, facts_of_event
from conversa.app.stored_facts import StoredFactsReader
from conversa.domain.content import Body, Template
from conversa.domain.message import Message
from conversa.domain.provider_message import ProviderMessage, provider_message_id_for
from conversa.domain.status import Status
from tests.support import queued_message, scheduled_message

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def app() -> Iterator[ConversaApp]:
    app = ConversaApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def every_kind_of_event() -> list[Message]:
    body = queued_message(content=Body("héllo \x00 \u2603"), meta={"a": [1, {"b": None}]})
    body.claim_attempt(datetime.max.replace(tzinfo=UTC), NOW)  # not due: records nothing
    body.record_retry("busy", "later", NOW + timedelta(seconds=5))
    body.claim_attempt(NOW + timedelta(seconds=6), NOW + timedelta(seconds=66))
    body.record_accepted("SM1", {"sid": "SM1"}, sender="+15550001111")
    body.record_report(Status.DELIVERED)
    body.record_report(Status.READ)
    body.record_report(Status.UNDELIVERED, error_code="30003", error_message="unreachable")
    template = queued_message(
        key="t", channel="whatsapp", content=Template("otp", ("1", "2")), meta={"x": "y"}
    )
    template.record_attempt_failed("invalid_number", "no such number")
    hidden = queued_message(key="h", content=None)  # CONVERSA_STORE_BODY=false
    hidden.record_report(Status.SENT, provider_message_id="SM9")
    # A meta value that looks like one of the transcoder's encodings is decoded as the
    # library decodes it (into a datetime), and the reader must agree.
    lookalike = queued_message(
        key="l", meta={"when": {"_type_": "datetime_iso", "_data_": NOW.isoformat()}}
    )
    scheduled = scheduled_message(NOW + timedelta(hours=9))
    scheduled.cancel()
    return [body, template, hidden, lookalike, scheduled]


def stored(app: ConversaApp, message: Message) -> list[StoredEvent]:
    return [app.mapper.to_stored_event(event) for event in message.collect_events()]


def test_the_facts_read_from_stored_states_are_the_domain_events_facts(
    app: ConversaApp,
) -> None:
    reader = StoredFactsReader(app.mapper)
    for message in every_kind_of_event():
        for record in stored(app, message):
            expected = facts_of_event(app.mapper.to_domain_event(record))
            facts = reader.facts(
                record.topic, record.originator_id, record.originator_version, record.state
            )
            assert facts is not None
            # Read directly, not through the mapper (whose facts carry every attribute).
            assert "timestamp" not in facts.fields
            assert (facts.kind, facts.message_id, facts.version, facts.timestamp) == (
                expected.kind,
                expected.message_id,
                expected.version,
                expected.timestamp,
            )
            wanted = needed(expected)
            assert {k: facts.fields[k] for k in wanted} == {k: expected.fields[k] for k in wanted}


def needed(facts: EventFacts) -> set[str]:
    return {
        "queued": {
            "channel",
            "to",
            "sender",
            "driver",
            "body",
            "template",
            "meta",
            "idempotency_key",
            "next_attempt_at",
            "category",
            "scheduled_at",
        },
        "retried": {"code", "message", "next_attempt_at"},
        "attempt_started": {"lease_until"},
        "sent": {"provider_message_id", "source", "sender", "driver"},
        "failed": {"code", "message", "status", "source", "driver"},
    }.get(facts.kind, set())


def test_an_older_class_version_is_upcast_by_the_mapper(app: ConversaApp) -> None:
    record = stored(app, queued_message())[0]
    state = orjson.loads(record.state)
    del state["class_version"], state["nonce"]  # as Queued was stored before version 2
    old = StoredEvent(record.originator_id, 1, record.topic, orjson.dumps(state))
    facts = StoredFactsReader(app.mapper).facts(old.topic, old.originator_id, 1, old.state)
    assert facts is not None
    assert facts.fields["nonce"] is None  # the mapper's upcast ran
    expected = facts_of_event(app.mapper.to_domain_event(old))
    assert facts.fields["to"] == expected.fields["to"] == "+15551234567"


def test_a_sent_of_version_2_has_no_sender(app: ConversaApp) -> None:
    message = queued_message()
    message.record_accepted("SM1", None, sender="+15550001111")
    record = stored(app, message)[1]
    state = orjson.loads(record.state)
    assert (state["class_version"], state.pop("sender")) == (3, "+15550001111")
    state["class_version"] = 2  # as Sent was stored before drivers named their sender
    old = StoredEvent(record.originator_id, 2, record.topic, orjson.dumps(state))
    facts = StoredFactsReader(app.mapper).facts(old.topic, old.originator_id, 2, old.state)
    assert facts is not None
    assert (facts.kind, facts.fields["sender"]) == ("sent", None)  # the upcast ran
    event = app.mapper.to_domain_event(old)
    assert isinstance(event, Message.Sent)
    assert event.sender is None


def test_other_aggregates_events_are_not_a_messages(app: ConversaApp) -> None:
    index = ProviderMessage(
        id=provider_message_id_for("twilio", "SM1"),
        provider="twilio",
        provider_message_id="SM1",
        message_id=None,
    )
    record = app.mapper.to_stored_event(index.collect_events()[0])
    reader = StoredFactsReader(app.mapper)
    assert reader.facts(record.topic, record.originator_id, 1, record.state) is None
    assert reader.facts("no.such.module:Nothing", UUID(int=1), 1, b"{}") is None
