"""SIGKILL a server in the middle of its group commits, under concurrent sends with
idempotency keys: every send answered 201 before the kill is in the store, no message is
stored twice, and what was recorded without an answer is a valid history (a ``Queued``,
perhaps its outcome), which a retry of its key then finishes without a second message."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from uuid import UUID

import httpx

from conversa.app.bootstrap import bootstrap
from conversa.domain.message import Message
from tests.e2e.conftest import Server, running_server
from tests.support import make_settings

CLIENTS = 24
#: Sends answered before the kill: enough for many batches to have committed.
ANSWERED_BEFORE_KILL = 150


def request(key: str) -> dict[str, str]:
    return {"channel": "sms", "to": "+15551234567", "body": f"body of {key}"}


def client_loop(
    server: Server, number: int, stop: threading.Event, answers: dict[str, int | None]
) -> None:
    with server.client() as client:
        n = 0
        while not stop.is_set():
            key = f"c{number}-{n}"
            n += 1
            try:
                response = client.post(
                    "/conversa/messages", json=request(key), headers={"Idempotency-Key": key}
                )
            except httpx.TransportError:
                answers[key] = None  # no answer: the server died under it
                return
            answers[key] = response.status_code


def test_a_server_killed_mid_batch_loses_no_answered_send_and_doubles_none(
    postgres_url: str, tmp_path: Path
) -> None:
    answers: dict[str, int | None] = {}
    stop = threading.Event()
    with running_server(
        postgres_url, tmp_path, log_level="WARNING", rate_limit="1000000/minute"
    ) as server:
        threads = [
            threading.Thread(target=client_loop, args=(server, n, stop, answers))
            for n in range(CLIENTS)
        ]
        for thread in threads:
            thread.start()
        deadline = time.monotonic() + 60
        while sum(status is not None for status in list(answers.values())) < ANSWERED_BEFORE_KILL:
            assert time.monotonic() < deadline, Counter(answers.values())
            time.sleep(0.01)
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait()
        stop.set()
        for thread in threads:
            thread.join(30)
        token = server.token
    answered = {key for key, status in answers.items() if status is not None}
    unanswered = {key for key, status in answers.items() if status is None}
    assert {answers[key] for key in answered} <= {201}, Counter(answers.values())
    assert unanswered, "the kill found no request in flight"

    with bootstrap(make_settings(postgres_url)) as service:
        notifications = service.app.recorder.select_notifications(start=None, limit=1_000_000)
        # Every aggregate recorded; all of them messages but the token the test made.
        ids = {
            UUID(str(n.originator_id))
            for n in notifications
            if n.topic.startswith("conversa.domain.message:")
        }
        others = {
            n.topic for n in notifications if not n.topic.startswith("conversa.domain.message:")
        }
        assert all(topic.startswith("conversa.domain.token:") for topic in others), others
        histories: dict[UUID, list[str]] = {}
        for message_id in ids:
            events = list(service.app.events.get(message_id))
            message: Message | None = None
            for event in events:  # replays: a history that does not apply raises here
                assert isinstance(event, Message.Event), event
                message = event.mutate(message)
            assert message is not None
            histories[message_id] = [type(e).__name__ for e in events]
        by_key = {service.get_message(i).idempotency_key: i for i in ids}

    # No message twice: one message per key, each recorded once and sent at most once.
    assert len(by_key) == len(ids)
    for history in histories.values():
        assert history[0] == "Queued", history
        assert history in (["Queued"], ["Queued", "Sent"]), history
    # Every answered send is stored, with the outcome it was answered with.
    for key in answered:
        assert key in by_key, f"{key} was answered 201 but is not in the store"
        assert histories[by_key[key]] == ["Queued", "Sent"]
    # What is stored was asked for; what nobody heard of is only the unanswered.
    assert set(by_key) <= answered | unanswered
    half = {key for key in set(by_key) & unanswered if histories[by_key[key]] == ["Queued"]}

    # A retry of every unanswered key, on a new server: the stored ones are replayed (not
    # recorded again), the others sent now; still one message per key.
    with running_server(postgres_url, tmp_path, rate_limit="1000000/minute") as again:
        again.token = token  # keys are scoped by token: the same client, retrying
        with again.client() as client:
            for key in sorted(unanswered):
                response = client.post(
                    "/conversa/messages", json=request(key), headers={"Idempotency-Key": key}
                )
                stored = key in by_key
                assert response.status_code == (200 if stored else 201), (key, response.text)
    with bootstrap(make_settings(postgres_url)) as service:
        notifications = service.app.recorder.select_notifications(start=None, limit=1_000_000)
        keys = Counter(
            service.get_message(UUID(str(n.originator_id))).idempotency_key
            for n in notifications
            if n.topic.endswith("Message.Queued")
        )
        assert set(keys.values()) == {1}, [k for k, count in keys.items() if count > 1]
        assert set(keys) == answered | unanswered
    print(
        f"answered {len(answered)}, unanswered {len(unanswered)}, "
        f"of which stored {len(set(by_key) & unanswered)} ({len(half)} without their outcome)"
    )
