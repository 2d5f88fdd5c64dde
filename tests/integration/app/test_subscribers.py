"""Lifecycle subscribers, on SQLite and PostgreSQL: exactly the events of a run, in order,
durably; retries, dead letters, and subscribers that do not hold each other up."""

from __future__ import annotations

import threading
import time
from uuid import UUID

from conversa.app.reports import StatusReport
from conversa.app.service import ConversaService
from conversa.app.subscribers import SubscriberRunner, Subscription
from conversa.app.worker import Worker
from conversa.domain.status import Status
from conversa.events import (
    LifecycleEvent,
    MessageDelivered,
    MessageFailed,
    MessageRead,
    MessageSent,
)


def report(
    service: ConversaService, message_id: UUID, status: Status, code: str | None = None
) -> None:
    service.record_report(
        StatusReport("twilio", None, message_id, status, status.value, error_code=code)
    )


def drain(service: ConversaService, subscription: Subscription) -> None:
    runner = SubscriberRunner(subscription, service.feed, service.subscriber_store)
    while runner.run_once():
        pass


def test_a_subscriber_gets_exactly_the_lifecycle_of_a_run_once_and_in_order(
    service: ConversaService,
) -> None:
    received: list[LifecycleEvent] = []
    everything = service.subscribe(LifecycleEvent, received.append, name="everything")
    failures: list[LifecycleEvent] = []
    only_failures = service.subscribe(MessageFailed, failures.append, name="failures")

    a = service.send("sms", "+15551234567", {"body": "a"}).message_id
    b = service.send("whatsapp", "+447911123456", {"body": "b"}).message_id
    report(service, a, Status.DELIVERED)
    report(service, a, Status.DELIVERED)  # a duplicate: no second event
    report(service, b, Status.UNDELIVERED, "30003")
    report(service, a, Status.READ)
    drain(service, everything)
    drain(service, only_failures)

    assert [(type(e), e.message_id) for e in received] == [
        (MessageSent, a),
        (MessageSent, b),
        (MessageDelivered, a),
        (MessageFailed, b),
        (MessageRead, a),
    ]
    ids = [e.event_id for e in received]
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert received[0].channel == "sms" and received[0].to == "+15551234567"
    assert received[0].driver == "log" and received[0].provider_message_id is not None
    assert [(type(e), e.message_id) for e in failures] == [(MessageFailed, b)]
    failed = failures[0]
    assert isinstance(failed, MessageFailed)
    assert failed.status == "undelivered"
    assert failed.error is not None and failed.error["code"] == "30003"

    # Positions are durable: a new runner (a restarted worker) hands over only what is new.
    drain(service, everything)
    assert len(received) == 5
    c = service.send("sms", "+15551234567", {"body": "c"}).message_id
    drain(service, everything)
    assert [(type(e), e.message_id) for e in received[5:]] == [(MessageSent, c)]


def test_a_failing_subscriber_is_retried_and_then_dead_lettered_without_holding_others(
    service: ConversaService,
) -> None:
    attempts: dict[int, int] = {}
    flaky_got: list[int] = []

    def flaky(event: LifecycleEvent) -> None:
        attempts[event.event_id] = attempts.get(event.event_id, 0) + 1
        if attempts[event.event_id] <= 10:
            raise ConnectionError("not yet")
        flaky_got.append(event.event_id)

    def always_fails(event: LifecycleEvent) -> None:
        raise RuntimeError(f"cannot take {event.event_id}")

    steady_got: list[float] = []
    service.subscriptions.extend(
        [
            Subscription(
                "flaky", flaky, max_attempts=12, retry_base_seconds=0.001, jitter=lambda c: c
            ),
            Subscription(
                "broken", always_fails, max_attempts=4, retry_base_seconds=0.15, jitter=lambda c: c
            ),
            Subscription("steady", lambda _event: steady_got.append(time.time())),
        ]
    )
    sent = [service.send("sms", "+15551234567", {"body": f"n{n}"}) for n in range(3)]
    stop = threading.Event()
    thread = Worker(service).start(stop)
    try:
        deadline = time.monotonic() + 20
        while len(service.subscriber_store.dead_letters("broken")) < 3:
            assert time.monotonic() < deadline, "the broken subscriber never gave up"
            time.sleep(0.05)
    finally:
        stop.set()
        thread.join(30)

    # The steady one had everything long before the broken one's first retries ended.
    assert len(steady_got) == 3
    # The steady one had every event before the broken one gave up on its first.
    first_given_up = service.subscriber_store.dead_letters("broken")[0].created_at.timestamp()
    assert max(steady_got) < first_given_up
    assert len(flaky_got) == 3 and set(attempts.values()) == {11}
    letters = service.subscriber_store.dead_letters("broken")
    assert [letter.event["message_id"] for letter in letters] == [str(s.message_id) for s in sent]
    assert all(letter.attempts == 4 and "cannot take" in letter.error for letter in letters)
    assert service.subscriber_store.position("broken") >= letters[-1].event["event_id"]


def test_a_shutdown_while_a_subscriber_waits_to_retry_keeps_its_event_for_the_restart(
    service: ConversaService,
) -> None:
    """A receiver that is down during a deploy: the stop ends the wait, no attempt is made
    back to back, nothing is dead-lettered, and the event is handed over after the restart."""
    attempts: list[float] = []

    def receiver_down(event: LifecycleEvent) -> None:
        attempts.append(time.monotonic())
        raise ConnectionError(f"receiver down for {event.event_id}")

    down = Subscription(
        "receiver", receiver_down, max_attempts=5, retry_base_seconds=30, jitter=lambda c: c
    )
    first = service.send("sms", "+15551234567", {"body": "a"}).message_id
    second = service.send("sms", "+15551234567", {"body": "b"}).message_id
    stop = threading.Event()
    runner = SubscriberRunner(down, service.feed, service.subscriber_store)
    thread = threading.Thread(target=runner.run_once, args=(stop,))
    thread.start()
    deadline = time.monotonic() + 10
    while not attempts:
        assert time.monotonic() < deadline, "the subscriber was never called"
        time.sleep(0.01)
    stop.set()  # SIGTERM: the runner is in its 30 s wait before the second attempt
    thread.join(5)
    assert not thread.is_alive(), "the stop did not end the wait"

    assert len(attempts) == 1  # no attempts fired back to back
    assert service.subscriber_store.dead_letters("receiver") == []
    assert service.subscriber_store.position("receiver") == 0  # not moved past the event

    # After the restart, with the receiver back, it gets both events, in order.
    taken: list[LifecycleEvent] = []
    back = Subscription("receiver", taken.append)
    while SubscriberRunner(back, service.feed, service.subscriber_store).run_once():
        pass
    assert [(type(e), e.message_id) for e in taken] == [(MessageSent, first), (MessageSent, second)]
