"""Loading and saving messages, with the retry that optimistic concurrency calls for."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.writer import Writer
from conversa.domain.message import Message

#: How often an outcome is re-applied when a status report changed the message meanwhile.
MAX_CONFLICT_RETRIES = 20


def fold(aggregate: Any, events: Iterable[Any]) -> Any:
    """The aggregate that ``events`` make of ``aggregate`` (None: from the start): the
    repository's own projector, without its per-event ``isinstance`` check against a
    runtime-checked protocol, which costs more than applying the event (tens of
    microseconds each on Python 3.11). Every stored event of this application is an
    eventsourcing aggregate event, with its ``mutate``."""
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


class MessageNotFound(LookupError):
    def __init__(self, message_id: object) -> None:
        super().__init__(f"no message with id {message_id}")


class ConversationNotFound(LookupError):
    def __init__(self, conversation_id: object) -> None:
        super().__init__(f"no conversation with id {conversation_id}")


def load_message(app: ConversaApp, message_id: UUID) -> Message:
    try:
        message: object = app.repository.get(message_id, projector_func=fold)
    except AggregateNotFoundError:
        raise MessageNotFound(message_id) from None
    if not isinstance(message, Message):
        raise MessageNotFound(message_id)
    return message


def update_message(
    app: ConversaApp,
    writer: Writer,
    message_id: UUID,
    command: Callable[[Message], Iterable[Aggregate] | None],
    *,
    current: Message | None = None,
) -> Message:
    """Apply ``command`` to the latest version of a message and save it, with whatever
    other aggregates the command returns, in one transaction; again and again if a
    concurrent writer (a status report, another dispatcher) got there first.

    ``current``: the message as this process last saved it, tried first without reading
    it again; after a conflict the message is read from the store."""
    for _ in range(MAX_CONFLICT_RETRIES):
        if current is not None:
            message, current = current, None
        else:
            message = load_message(app, message_id)
        others = command(message) or ()
        try:
            writer.save(message, *others)
        except IntegrityError:
            continue
        return message
    msg = f"message {message_id} kept changing; gave up after {MAX_CONFLICT_RETRIES} tries"
    raise RuntimeError(msg)
