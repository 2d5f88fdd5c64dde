"""Saves on a condition (``Unchanged``), on both stores and through both writers: a save
commits only while the named aggregate is at the version read; otherwise nothing of it is
recorded (``StaleRead``), and in a group commit only the group whose condition failed is
refused."""

from __future__ import annotations

import pytest
from eventsourcing.persistence import IntegrityError

from conversa.app.service import ConversaService
from conversa.app.unchanged import StaleRead, Unchanged
from conversa.app.writer import BatchingWriter, DirectWriter, Writer
from conversa.domain.recipient import Recipient, recipient_id_for
from tests.support import queued_message

NUMBER = "+15551112222"


@pytest.fixture(params=["direct", "batching"])
def writer(request: pytest.FixtureRequest, service: ConversaService) -> Writer:
    if request.param == "direct":
        return DirectWriter(service.app)
    return BatchingWriter(service.app)


def stored(service: ConversaService, aggregate_id: object) -> int:
    return len(list(service.app.events.get(aggregate_id)))  # type: ignore[arg-type]


def test_a_save_commits_only_while_the_condition_holds(
    service: ConversaService, writer: Writer
) -> None:
    never = Unchanged(recipient_id_for(NUMBER), 0)
    first = queued_message()
    writer.save(first, unchanged=[never])  # no recipient yet: version 0 holds
    assert stored(service, first.id) == 1

    recipient = Recipient.register(NUMBER)
    recipient.opt_out("sms", "all", "api")
    writer.save(recipient)  # now at version 2

    late = queued_message()
    with pytest.raises(StaleRead):
        writer.save(late, unchanged=[never])
    assert stored(service, late.id) == 0  # nothing of it recorded

    again = queued_message()
    writer.save(again, unchanged=[Unchanged(recipient.id, 2)])
    assert stored(service, again.id) == 1
    writer.close()


def test_in_a_group_commit_only_the_stale_group_is_refused(
    service: ConversaService, writer: Writer
) -> None:
    recipient = Recipient.register(NUMBER)
    writer.save(recipient)
    ok, stale, duplicate = queued_message(), queued_message(), queued_message(key="k")
    writer.save(queued_message(key="k"))
    results = writer.save_each(
        [[ok], [stale], [duplicate]],
        [[Unchanged(recipient.id, 1)], [Unchanged(recipient.id, 7)], []],
    )
    assert results[0] is None
    assert isinstance(results[1], StaleRead)
    assert isinstance(results[2], IntegrityError) and not isinstance(results[2], StaleRead)
    assert (stored(service, ok.id), stored(service, stale.id)) == (1, 0)
    writer.close()


def test_a_condition_on_what_the_same_commit_changes_is_decided_after_the_change(
    service: ConversaService, writer: Writer
) -> None:
    """An opt-out and a send that read the recipient before it, in one group commit: the
    send must not commit with it as if decided after it."""
    recipient = Recipient.register(NUMBER)
    writer.save(recipient)
    recipient.opt_out("sms", "all", "keyword")
    message = queued_message()
    results = writer.save_each([[recipient], [message]], [[], [Unchanged(recipient.id, 1)]])
    assert results[0] is None
    assert isinstance(results[1], StaleRead)
    assert stored(service, recipient.id) == 2
    assert stored(service, message.id) == 0
    writer.close()


def test_a_stale_group_costs_one_more_transaction_not_one_per_group(
    service: ConversaService, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sends assume the recipient as last read (known_recipients.py), so a stale condition
    in a group commit is common enough that splitting the whole commit into one
    transaction per group would cost: the stale groups are found with one read, and the
    others saved together."""
    recipient = Recipient.register(NUMBER)
    DirectWriter(service.app).save(recipient)
    inserts: list[int] = []
    insert = service.app.recorder.insert_events

    def counted(stored_events: object, **kwargs: object) -> object:
        inserts.append(len(stored_events))  # type: ignore[arg-type]
        return insert(stored_events, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(service.app.recorder, "insert_events", counted)
    messages = [queued_message() for _ in range(20)]
    conditions = [[Unchanged(recipient.id, 1)] for _ in messages]
    conditions[7] = [Unchanged(recipient.id, 0)]  # assumed the number had no ledger
    results = DirectWriter(service.app).save_each([[m] for m in messages], conditions)
    assert [i for i, r in enumerate(results) if r is not None] == [7]
    assert isinstance(results[7], StaleRead)
    assert inserts == [20, 19]  # the refused commit, then the 19 together
    assert [stored(service, m.id) for m in messages] == [1] * 7 + [0] + [1] * 12
