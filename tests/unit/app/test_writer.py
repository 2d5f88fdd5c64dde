"""The writer's save_each: groups share a transaction, yet each gets only its own answer."""

from __future__ import annotations

from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.writer import DirectWriter
from tests.support import queued_message


def test_groups_without_conflict_are_committed_together() -> None:
    app = ConversaApp()
    first, second = queued_message(key="a"), queued_message(key="b")

    assert DirectWriter(app).save_each([[first], [second]]) == [None, None]

    assert app.repository.get(first.id).version == 1
    assert app.repository.get(second.id).version == 1


def test_a_duplicate_refuses_only_its_own_group() -> None:
    app = ConversaApp()
    app.save(queued_message(key="taken"))
    before = app.recorder.max_notification_id()
    fresh, duplicate, other = (queued_message(key=k) for k in ("new", "taken", "other"))

    results = DirectWriter(app).save_each([[fresh], [duplicate], [other]])

    assert results[0] is None and results[2] is None
    assert isinstance(results[1], IntegrityError)
    assert app.repository.get(fresh.id).version == 1
    assert app.repository.get(other.id).version == 1
    # The duplicate's group wrote nothing: two new events, not three.
    assert app.recorder.max_notification_id() == (before or 0) + 2


def test_one_conflicting_group_gets_its_error_back() -> None:
    app = ConversaApp()
    app.save(queued_message(key="taken"))

    results = DirectWriter(app).save_each([[queued_message(key="taken")]])

    assert len(results) == 1 and isinstance(results[0], IntegrityError)
