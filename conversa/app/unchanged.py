"""Saving on a condition: "this other aggregate is still at the version I read".

A decision often rests on an aggregate the save does not change: whether a message may
be sent rests on its recipient's consent ledger. Reading the ledger and then saving the
message leaves a gap in which an opt-out can commit; the message would then be recorded
as allowed after the opt-out. An :class:`Unchanged` passed with the save closes the gap:
the event store checks, inside the transaction that inserts the events and after taking
the lock that orders every insert (PostgreSQL: the table lock; SQLite: the database's
write lock), that the named aggregate still has the version that was read, and commits
nothing otherwise (:class:`StaleRead`, an ``IntegrityError``: decide again).

So a save with ``Unchanged(recipient, v)`` commits only while version ``v`` of the
recipient is the latest, and commit order is the store's one total order: a message
saved after an opt-out's commit was decided on the opt-out, one saved before it on the
state before it. Nothing is appended to the recipient, so concurrent sends to one number
do not conflict with each other, only with a change of its consent.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.persistence import IntegrityError

#: The keyword argument of ``Application.save`` (handed on to the recorder's
#: ``insert_events``) that carries the conditions.
UNCHANGED = "conversa_unchanged"


@dataclass(frozen=True, slots=True)
class Unchanged:
    """Aggregate ``originator_id`` is at ``version`` (0: it has no event) at commit time."""

    originator_id: UUID
    version: int


class StaleRead(IntegrityError):
    """A condition of the save did not hold: what the decision read has changed."""

    def __init__(self) -> None:
        super().__init__("an aggregate this save depends on changed meanwhile; decide again")


def conditions(kwargs: Mapping[str, Any]) -> Sequence[Unchanged]:
    """The conditions among a recorder's ``insert_events`` keyword arguments."""
    found: Sequence[Unchanged] = kwargs.get(UNCHANGED) or ()
    return found
