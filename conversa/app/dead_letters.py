"""Dead letters of the lifecycle subscribers: listed, and replayed one at a time (the
console's replay button and ``conversa events replay`` do the same)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import StrEnum

from conversa.app.ports import DeadLetter
from conversa.app.service import ConversaService
from conversa.app.subscribers import replay

log = logging.getLogger(__name__)


class Replayed(StrEnum):
    DELIVERED = "delivered"  # the subscriber took it: the dead letter is removed
    FAILED_AGAIN = "failed_again"  # the subscriber raised again: it is kept
    NOT_FOUND = "not_found"  # no such dead letter (replayed meanwhile?)
    NOT_REPLAYABLE = "not_replayable"  # no such subscriber here, or the event is gone


@dataclass(frozen=True, slots=True)
class ReplayOutcome:
    result: Replayed
    detail: str


def dead_letters(service: ConversaService, limit: int = 100) -> list[DeadLetter]:
    """The oldest ``limit`` dead letters of every subscriber."""
    return sorted(service.subscriber_store.dead_letters(), key=lambda d: d.id)[:limit]


def replay_dead_letter(service: ConversaService, dead_letter_id: int) -> ReplayOutcome:
    """Hand dead letter ``dead_letter_id`` to its subscriber once more."""
    found = [d for d in service.subscriber_store.dead_letters() if d.id == dead_letter_id]
    if not found:
        return ReplayOutcome(Replayed.NOT_FOUND, f"no dead letter {dead_letter_id}")
    letter = found[0]
    try:
        taken = replay(letter, service.subscriptions, service.feed, service.subscriber_store)
    except LookupError as error:
        return ReplayOutcome(Replayed.NOT_REPLAYABLE, str(error).strip("'\""))
    if not taken:
        return ReplayOutcome(
            Replayed.FAILED_AGAIN,
            f"the subscriber {letter.subscriber} failed again; dead letter {letter.id} is kept",
        )
    log.info("dead letter %d replayed to subscriber %s", letter.id, letter.subscriber)
    return ReplayOutcome(
        Replayed.DELIVERED, f"dead letter {letter.id} delivered to {letter.subscriber}"
    )
