"""Lifecycle subscribers: each follows the lifecycle feed on its own, durably.

Every subscriber has its own position in the feed, stored after each event it took, so a
restart resumes where it stopped (an event in flight at a crash is handed over again: at
least once, in order per message). A subscriber that raises is tried again with backoff;
after its attempts run out, the event becomes a dead letter (listed and replayable from
the command line) and the subscriber moves on. A stop (a shutdown, or the runner's lock
lost) during the backoff ends the retries without a dead letter and leaves the position
before the event, so it is handed over again after the restart. Subscribers never wait
for each other.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import Enum

from conversa.app.lifecycle import LifecycleFeed
from conversa.app.ports import DeadLetter, EventSignal, StopSignal, SubscriberStore
from conversa.app.telemetry import NoTelemetry, Telemetry
from conversa.events import EVENT_TYPES, LifecycleEvent

log = logging.getLogger(__name__)

Handler = Callable[[LifecycleEvent], object]

BATCH = 100


@dataclass(frozen=True)
class Subscription:
    """``handler`` receives the events of ``event_types`` under the durable ``name``."""

    name: str
    handler: Handler
    event_types: tuple[type[LifecycleEvent], ...] = EVENT_TYPES
    max_attempts: int = 10
    retry_base_seconds: float = 1.0
    retry_max_seconds: float = 60.0
    jitter: Callable[[float], float] = field(default=lambda ceiling: random.uniform(0, ceiling))

    def wants(self, event: LifecycleEvent) -> bool:
        return isinstance(event, self.event_types)

    def backoff(self, attempt: int) -> float:
        """Wait after failed attempt ``attempt``: exponential, full jitter."""
        return self.jitter(
            min(self.retry_max_seconds, self.retry_base_seconds * 2.0 ** (attempt - 1))
        )


class Delivery(Enum):
    TAKEN = "taken"
    DEAD_LETTER = "dead letter"
    #: Stopped while waiting to try again: neither taken nor given up on.
    INTERRUPTED = "interrupted"


class SubscriberRunner:
    def __init__(
        self,
        subscription: Subscription,
        feed: LifecycleFeed,
        store: SubscriberStore,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.subscription = subscription
        self.feed = feed
        self.store = store
        self.telemetry = telemetry or NoTelemetry()

    def run(self, stop: StopSignal, signal: EventSignal, *, idle_wait: float = 1.0) -> None:
        """Hand events over until ``stop`` is set."""
        while not stop.is_set():
            if not self.run_once(stop):
                signal.wait(idle_wait)

    def run_once(self, stop: StopSignal | None = None) -> bool:
        """Hand over the next batch; return whether there was anything to read."""
        name = self.subscription.name
        position = self.store.position(name)
        events, read_up_to = self.feed.read(position, BATCH)
        if read_up_to == position:
            return False
        for event in events:
            if stop is not None and stop.is_set():
                return True  # the event is handed over again after the restart
            if self.subscription.wants(event) and self.deliver(event, stop) is Delivery.INTERRUPTED:
                return True  # the position stays before it: handed over after the restart
            self.store.save_position(name, event.event_id)
        self.store.save_position(name, read_up_to)
        return True

    def deliver(self, event: LifecycleEvent, stop: StopSignal | None = None) -> Delivery:
        """Try ``event`` until it is taken or the attempts run out (then: a dead letter),
        or until ``stop`` is set while waiting to try again."""
        subscription = self.subscription
        error: Exception | None = None
        for attempt in range(1, subscription.max_attempts + 1):
            try:
                subscription.handler(event)
            except Exception as failure:
                error = failure
                wait = subscription.backoff(attempt)
                log.warning(
                    "subscriber %s failed on event %d (attempt %d of %d): %s",
                    subscription.name,
                    event.event_id,
                    attempt,
                    subscription.max_attempts,
                    type(failure).__name__,
                )
                if attempt < subscription.max_attempts:
                    if stop is None:
                        time.sleep(wait)
                    elif stop.wait(wait):
                        log.info(
                            "subscriber %s stopped before retrying event %d; it is handed "
                            "over again when the subscriber runs next",
                            subscription.name,
                            event.event_id,
                        )
                        return Delivery.INTERRUPTED
                continue
            return Delivery.TAKEN
        described = f"{type(error).__name__}: {error}"[:500] if error else "unknown"
        letter = self.store.add_dead_letter(
            subscription.name, event.as_dict(), described, subscription.max_attempts
        )
        self.telemetry.dead_lettered(subscription.name)
        log.error(
            "subscriber %s gave up on event %d after %d attempts: dead letter %d",
            subscription.name,
            event.event_id,
            subscription.max_attempts,
            letter,
        )
        return Delivery.DEAD_LETTER


def replay(
    letter: DeadLetter,
    subscriptions: Sequence[Subscription],
    feed: LifecycleFeed,
    store: SubscriberStore,
) -> bool:
    """Hand a dead letter to its subscriber once more; on success it is removed."""
    matching = [s for s in subscriptions if s.name == letter.subscriber]
    if not matching:
        raise LookupError(
            f"no subscriber named {letter.subscriber!r} is configured in this process"
        )
    position = int(letter.event["event_id"])
    events, _ = feed.read(position - 1, 1)
    if not events or events[0].event_id != position:
        raise LookupError(f"event {position} is not in the lifecycle feed")
    subscription = matching[0]
    try:
        subscription.handler(events[0])
    except Exception as error:
        log.warning("replay of dead letter %d failed: %s", letter.id, type(error).__name__)
        return False
    store.remove_dead_letter(letter.id)
    return True
