"""Events stored before the sending terms and token permissions existed read back with
their defaults, through the application's own mapper."""

from __future__ import annotations

from collections.abc import Iterator

import orjson
import pytest
from eventsourcing.domain import CanMutateAggregate
from eventsourcing.persistence import StoredEvent

from conversa.app.application import ConversaApp
from conversa.domain.message import Message
from conversa.domain.token import ApiToken
from tests.support import queued_message


@pytest.fixture
def app() -> Iterator[ConversaApp]:
    app = ConversaApp(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield app
    app.close()


def as_stored_before(app: ConversaApp, event: object, version: int, *fields: str) -> object:
    record = app.mapper.to_stored_event(event)  # type: ignore[arg-type]
    state = orjson.loads(record.state)
    for name in fields:
        del state[name]
    state["class_version"] = version
    old = StoredEvent(
        record.originator_id, record.originator_version, record.topic, orjson.dumps(state)
    )
    return app.mapper.to_domain_event(old)


def test_a_version_4_queued_reads_as_transactional_at_once(app: ConversaApp) -> None:
    (queued,) = queued_message().collect_events()
    old = as_stored_before(app, queued, 4, "category", "consent_override", "scheduled_at")
    assert isinstance(old, CanMutateAggregate)
    message = old.mutate(None)
    assert isinstance(message, Message)
    assert (message.category, message.consent_override, message.scheduled_at) == (
        "transactional",
        False,
        None,
    )


def test_a_version_1_token_has_no_extra_permissions(app: ConversaApp) -> None:
    token, _claim = ApiToken.issue("old-bot", "cnv_" + "x" * 43, console=True)
    (created,) = token.collect_events()
    old = as_stored_before(app, created, 1, "console", "allow_consent_override")
    assert isinstance(old, CanMutateAggregate)
    restored = old.mutate(None)
    assert isinstance(restored, ApiToken)
    assert (restored.name, restored.console, restored.allow_consent_override) == (
        "old-bot",
        False,
        False,
    )
