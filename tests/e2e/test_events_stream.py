"""``GET /conversa/events``: the lifecycle events as Server-Sent Events, against
``conversa serve`` on PostgreSQL, read and parsed frame by frame."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from starlette.requests import Request
from starlette.types import Message

from conversa.adapters.http import events as events_module
from conversa.adapters.http.events import KEEP_ALIVE_FRAME, RETRY_FRAME, event_frame, event_frames
from conversa.app.bootstrap import bootstrap
from conversa.app.lifecycle import LifecycleFeed
from conversa.app.reports import StatusReport
from conversa.domain.status import Status
from conversa.events import LifecycleEvent, MessageDelivered, MessageFailed, MessageSent
from tests.e2e.conftest import Server, running_server
from tests.support import make_settings

Frame = dict[str, str]


def frames_of(lines: Iterable[str]) -> Iterator[Frame]:
    """SSE frames as ``{field: value}``; comment lines become ``{"comment": text}``."""
    frame: Frame = {}
    for line in lines:
        if line == "":
            if frame:
                yield frame
            frame = {}
        elif line.startswith(":"):
            frame["comment"] = line[1:].strip()
        else:
            field, _, value = line.partition(":")
            frame[field] = value.removeprefix(" ")
    if frame:
        yield frame


def events_of(frames: Iterable[Frame]) -> list[Frame]:
    return [frame for frame in frames if "event" in frame]


def read_stream(
    client: httpx.Client,
    params: dict[str, str] | None = None,
    headers: dict[str, str] | None = None,
) -> list[Frame]:
    """The whole of a ``live=false`` stream."""
    response = client.get(
        "/conversa/events", params={"live": "false", **(params or {})}, headers=headers
    )
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert response.headers["x-accel-buffering"] == "no"
    return list(frames_of(response.text.split("\n")))


def send(client: httpx.Client, channel: str, to: str, body: str) -> dict[str, Any]:
    response = client.post("/conversa/messages", json={"channel": channel, "to": to, "body": body})
    assert response.status_code == 201, response.text
    message: dict[str, Any] = response.json()
    return message


def test_the_stream_replays_resumes_and_filters(server: Server) -> None:
    with server.client() as client:
        assert read_stream(client) == [{"retry": "2000"}]  # nothing has happened yet

        messages = [
            send(client, "sms", "+15551234567", "one"),
            send(client, "whatsapp", "+447911123456", "two"),
            send(client, "sms", "+15557654321", "three"),
        ]
        frames = read_stream(client)
        assert frames[0] == {"retry": "2000"}
        events = events_of(frames)
        assert len(frames) == 1 + len(events)
        assert [e["event"] for e in events] == ["message.sent"] * 3
        data = [json.loads(e["data"]) for e in events]
        assert [d["message_id"] for d in data] == [m["id"] for m in messages]
        ids = [int(e["id"]) for e in events]
        assert ids == sorted(set(ids)) and ids[0] > 0
        for event, document, message in zip(events, data, messages, strict=True):
            assert document == {
                "type": "message.sent",
                "event_id": int(event["id"]),
                "message_id": message["id"],
                "channel": message["channel"],
                "to": message["to"],
                "driver": "log",
                "provider_message_id": message["provider_message_id"],
                "occurred_at": document["occurred_at"],
            }
            assert document["occurred_at"].endswith("Z")

        # Resuming after the second event, by header (as an SSE client reconnects) or query.
        second = events[1]["id"]
        assert events_of(read_stream(client, headers={"Last-Event-ID": second})) == events[2:]
        assert events_of(read_stream(client, {"after": second})) == events[2:]
        assert events_of(read_stream(client, {"after": "0"})) == events
        assert events_of(read_stream(client, {"after": events[-1]["id"]})) == []
        # The header wins over the query: it is where a reconnecting client has got to.
        resumed = read_stream(client, {"after": "0"}, {"Last-Event-ID": events[0]["id"]})
        assert events_of(resumed) == events[1:]

        # Later lifecycle events of the first message: delivered, and (for the third) failed.
        with bootstrap(make_settings(server.database_url)) as service:
            first, third = uuid.UUID(messages[0]["id"]), uuid.UUID(messages[2]["id"])
            service.record_report(StatusReport("twilio", None, first, Status.DELIVERED, "x"))
            service.record_report(
                StatusReport("twilio", None, third, Status.UNDELIVERED, "x", error_code="30003")
            )
        everything = events_of(read_stream(client))
        assert [e["event"] for e in everything] == ["message.sent"] * 3 + [
            "message.delivered",
            "message.failed",
        ]
        failed = json.loads(everything[-1]["data"])
        assert failed["message_id"] == messages[2]["id"]
        assert failed["status"] == "undelivered" and failed["error"]["code"] == "30003"

        sent_only = events_of(read_stream(client, {"types": "message.sent"}))
        assert sent_only == events
        failures = events_of(read_stream(client, {"types": "message.failed"}))
        assert failures == everything[-1:]
        both = read_stream(client, {"types": "message.failed,message.delivered"})
        assert events_of(both) == everything[3:]
        # Resuming a filtered stream after the last event it showed sends nothing again.
        delivered = events_of(read_stream(client, {"types": "message.delivered"}))
        assert delivered == everything[3:4]
        after = {"types": "message.delivered", "after": delivered[0]["id"]}
        assert events_of(read_stream(client, after)) == []


def test_bad_requests_are_refused_before_streaming(server: Server) -> None:
    with httpx.Client(base_url=server.base_url, timeout=10) as anonymous:
        for headers in ({}, {"Authorization": "Bearer nope"}):
            response = anonymous.get("/conversa/events", headers=headers)
            assert response.status_code == 401
            assert response.headers["content-type"] == "application/json"
            assert response.headers["www-authenticate"] == "Bearer"
            assert response.json()["error"]["code"] == "unauthorized"

    with server.client() as client:
        for params, headers, field in [
            ({"after": "-1"}, {}, "after"),
            ({"after": "x"}, {}, "after"),
            ({"after": ""}, {}, "after"),
            ({"after": "1.5"}, {}, "after"),
            ({"after": "9" * 30}, {}, "after"),
            ({}, {"Last-Event-ID": "-1"}, "Last-Event-ID"),
            ({}, {"Last-Event-ID": "abc"}, "Last-Event-ID"),
            ({"types": "bogus"}, {}, "types"),
            ({"types": "message.sent,bogus"}, {}, "types"),
            ({"types": ","}, {}, "types"),
            ({"live": "maybe"}, {}, "live"),
        ]:
            response = client.get("/conversa/events", params=params, headers=headers)
            assert response.status_code == 422, (params, headers, response.text)
            assert response.headers["content-type"] == "application/json"
            error = response.json()["error"]
            assert error["code"] == "invalid_request"
            assert list(error["fields"]) == [field], (params, headers, error)
        assert "bogus" in client.get("/conversa/events?types=bogus").text
        # HEAD answers at once, though the GET would stream live.
        head = client.head("/conversa/events", timeout=5)
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"].startswith("text/event-stream")


def test_a_rate_limited_token_gets_429_before_streaming(postgres_url: str, tmp_path: Path) -> None:
    with (
        running_server(postgres_url, tmp_path, rate_limit="2/minute") as server,
        server.client() as client,
    ):
        codes = [client.get("/conversa/events?live=false").status_code for _ in range(3)]
        assert codes == [200, 200, 429]
        limited = client.get("/conversa/events?live=false")
        assert limited.headers["content-type"] == "application/json"
        assert limited.json()["error"]["code"] == "rate_limited"
        assert int(limited.headers["retry-after"]) >= 1


def test_a_live_stream_sends_a_new_event_as_it_happens(server: Server) -> None:
    with server.client() as client, server.client() as sender:
        earlier = send(sender, "sms", "+15551234567", "before the stream")
        timeout = httpx.Timeout(10, read=3)
        with client.stream("GET", "/conversa/events", timeout=timeout) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            lines = response.iter_lines()
            frames = frames_of(lines)
            assert next(frames) == {"retry": "2000"}
            replayed = next(frames)
            assert json.loads(replayed["data"])["message_id"] == earlier["id"]

            message = send(sender, "whatsapp", "+447911123456", "while streaming")
            sent_at = time.monotonic()
            frame = next(frames)  # a read timeout (3 s) fails the test
            assert time.monotonic() - sent_at < 2
            assert frame["event"] == "message.sent"
            assert int(frame["id"]) > int(replayed["id"])
            document = json.loads(frame["data"])
            assert document["message_id"] == message["id"]
            assert document["event_id"] == int(frame["id"])


def test_a_closed_stream_ends_on_the_server_and_an_open_one_does_not_delay_shutdown(
    postgres_url: str, tmp_path: Path
) -> None:
    with running_server(postgres_url, tmp_path) as server, server.client() as client:
        with client.stream("GET", "/conversa/events") as response:
            assert next(frames_of(response.iter_lines())) == {"retry": "2000"}
        time.sleep(1.5)  # more than a poll: the server notices the client has gone
    # The server found nothing to wait for: the stream ended with its client.
    assert "Waiting for connections to close" not in server.output()
    assert "Waiting for background tasks" not in server.output()

    with running_server(postgres_url, tmp_path) as server, server.client() as client:
        with client.stream("GET", "/conversa/events") as response:
            frames = frames_of(response.iter_lines())
            assert next(frames) == {"retry": "2000"}
            started = time.monotonic()
            server.process.terminate()
            rest = list(frames)  # the server ends the stream
            assert time.monotonic() - started < 5
            assert rest == []
        server.process.wait(timeout=10)
        assert time.monotonic() - started < 5
    assert "timeout graceful shutdown exceeded" not in server.output()


def test_event_frame_is_one_sse_event_with_the_event_as_json() -> None:
    occurred_at = datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)
    message_id = uuid.UUID("12345678-1234-5678-1234-567812345678")
    sent = MessageSent(42, message_id, "sms", "+15551234567", "log", "log-1", occurred_at)
    frame = event_frame(sent)
    lines = frame.split("\n")
    assert lines[:2] == ["id: 42", "event: message.sent"] and lines[3:] == ["", ""]
    assert lines[2].startswith("data: {")
    (parsed,) = frames_of(lines)
    assert parsed.keys() == {"id", "event", "data"}
    assert json.loads(parsed["data"]) == {
        "type": "message.sent",
        "event_id": 42,
        "message_id": str(message_id),
        "channel": "sms",
        "to": "+15551234567",
        "driver": "log",
        "provider_message_id": "log-1",
        "occurred_at": "2026-01-02T03:04:05.600000Z",
    }

    # A line break in a value cannot end the data line early: JSON escapes it.
    error = {"code": "30003", "message": "Unreachable\n\ndata: forged"}
    failed = MessageFailed(
        7, message_id, "whatsapp", "+447911123456", "log", None, occurred_at, error=error
    )
    (parsed,) = frames_of(event_frame(failed).split("\n"))
    assert parsed["id"] == "7" and parsed["event"] == "message.failed"
    assert json.loads(parsed["data"])["error"] == error


class StoredFeed(LifecycleFeed):
    """The feed over a fixed store: position -> lifecycle event, or None for a stored
    event that is not one (the feed reads past it without an event)."""

    def __init__(self, store: dict[int, LifecycleEvent | None]) -> None:
        self.store = store
        self.reads: list[int] = []

    def read(self, after: int, limit: int = 100) -> tuple[list[LifecycleEvent], int]:
        self.reads.append(after)
        positions = sorted(p for p in self.store if p > after)[:limit]
        events = [e for p in positions if (e := self.store[p]) is not None]
        return events, positions[-1] if positions else after


def test_the_frames_catch_up_in_batches_skip_filtered_events_and_keep_alive(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(events_module, "BATCH_SIZE", 2)
    monkeypatch.setattr(events_module, "POLL_SECONDS", 0.01)
    monkeypatch.setattr(events_module, "KEEP_ALIVE_SECONDS", 0.05)
    at = datetime(2026, 1, 2, tzinfo=UTC)
    common = (uuid.uuid4(), "sms", "+15551234567", "log", "log-1", at)
    store: dict[int, LifecycleEvent | None] = {
        3: MessageSent(3, *common),
        5: MessageDelivered(5, *common),
        7: MessageSent(7, *common),
        9: None,
    }
    gone = False

    async def receive() -> Message:
        return {"type": "http.disconnect"} if gone else {"type": "http.request", "body": b""}

    async def collect(live: bool) -> list[str]:
        nonlocal gone
        request = Request({"type": "http", "method": "GET", "headers": []}, receive)
        frames = []
        async for frame in event_frames(request, feed, 0, {"message.sent"}, live):
            frames.append(frame)
            gone = frame == KEEP_ALIVE_FRAME  # then the client goes away
        return frames

    feed = StoredFeed(store)
    sent = [event_frame(e) for e in (store[3], store[7]) if e is not None]
    assert anyio.run(collect, False) == [RETRY_FRAME, *sent]
    assert feed.reads == [0, 5, 9]  # never again from before a filtered-out event

    feed = StoredFeed(store)
    assert anyio.run(collect, True) == [RETRY_FRAME, *sent, KEEP_ALIVE_FRAME]
    assert feed.reads[:3] == [0, 5, 9] and set(feed.reads[2:]) == {9}


def test_a_revoked_token_ends_its_live_stream_within_seconds(server: Server) -> None:
    with server.client() as client:
        # A read timeout (8 s without a byte) fails the test: the stream must end before.
        timeout = httpx.Timeout(10, read=8)
        with client.stream("GET", "/conversa/events", timeout=timeout) as response:
            assert response.status_code == 200
            frames = frames_of(response.iter_lines())
            assert next(frames) == {"retry": "2000"}
            with bootstrap(make_settings(server.database_url)) as service:
                (token,) = service.tokens.list()
                service.tokens.revoke(token.name)
            revoked_at = time.monotonic()
            rest = list(frames)
            ended_after = time.monotonic() - revoked_at
        assert ended_after < 6, f"the stream went on {ended_after:.1f} s after revocation"
        assert rest == [{"comment": "the API token was revoked"}]
        deadline = time.monotonic() + 6
        while client.get("/conversa/events?live=false").status_code != 401:
            assert time.monotonic() < deadline, "the revoked token still opens streams"
            time.sleep(0.25)
