"""The CRUD baseline does the work it stands for: Conversa's validation, an INSERT and an
UPDATE per send, a checked signature and one UPDATE per report, a counted list."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlencode

import httpx
import psycopg
import pytest

from bench import crud_baseline
from bench._db import scratch_database

pytestmark = pytest.mark.postgres

TOKEN = "bench-token"
TWILIO_TOKEN = "twilio-secret"
BASE = "http://testserver"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture(scope="module")
def scratch() -> Iterator[str]:
    with scratch_database() as url:
        yield url


@pytest.fixture
def database(scratch: str) -> str:
    """The module's database with an empty table."""
    with psycopg.connect(scratch, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS messages")
    crud_baseline.migrate(scratch)
    return scratch


Client = Callable[..., httpx.Response]


@pytest.fixture
def client(database: str, monkeypatch: pytest.MonkeyPatch) -> Client:
    """``client(method, path, **request)``: one request to a fresh app (its pool opened
    and closed by its lifespan), answered over ASGI."""
    monkeypatch.setenv(crud_baseline.DATABASE_URL_VARIABLE, database)
    monkeypatch.setenv(crud_baseline.TOKEN_VARIABLE, TOKEN)
    monkeypatch.setenv(crud_baseline.WEBHOOK_BASE_URL_VARIABLE, BASE)
    monkeypatch.setenv(crud_baseline.TWILIO_TOKEN_VARIABLE, TWILIO_TOKEN)

    def request(method: str, path: str, **options: Any) -> httpx.Response:
        async def call() -> httpx.Response:
            app = crud_baseline.create_app()
            transport = httpx.ASGITransport(app=app)
            async with (
                app.router.lifespan_context(app),
                httpx.AsyncClient(transport=transport, base_url=BASE) as http,
            ):
                return await http.request(method, path, **options)

        return asyncio.run(call())

    return request


def status_of(database: str, message_id: str) -> str:
    with psycopg.connect(database) as conn:
        row = conn.execute("SELECT status FROM messages WHERE id = %s", (message_id,)).fetchone()
    assert row is not None
    return str(row[0])


def test_a_send_is_stored_then_marked_sent(client: Client, database: str) -> None:
    answer = client(
        "POST",
        "/messages",
        json={"channel": "sms", "to": "+1 202 555 0123", "body": "hello"},
        headers={**AUTH, "Idempotency-Key": "k1"},
    )

    assert answer.status_code == 201
    message = answer.json()
    assert message["recipient"] == "+12025550123"
    assert message["status"] == "sent"
    assert message["provider_message_id"].startswith("log-")
    assert status_of(database, message["id"]) == "sent"

    again = client(
        "POST",
        "/messages",
        json={"channel": "sms", "to": "+12025550123", "body": "hello"},
        headers={**AUTH, "Idempotency-Key": "k1"},
    )
    assert again.status_code == 200
    assert again.json()["id"] == message["id"]


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({"channel": "fax", "to": "+12025550123", "body": "x"}, "channel"),
        ({"channel": "sms", "to": "+1555", "body": "x"}, "to"),
        ({"channel": "sms", "to": "12025550123", "body": "x"}, "to"),
        ({"channel": "sms", "to": "+12025550123", "body": " "}, "body"),
        ({"channel": "sms", "to": "+12025550123", "body": "x" * 1601}, "body"),
        ({"channel": "sms", "to": "+12025550123", "body": "x", "colour": "red"}, "colour"),
    ],
)
def test_invalid_sends_are_refused_and_not_stored(
    client: Client, database: str, document: dict[str, object], field: str
) -> None:
    answer = client("POST", "/messages", json=document, headers=AUTH)

    assert answer.status_code == 422
    assert field in answer.json()["error"]["fields"]
    with psycopg.connect(database) as conn:
        assert conn.execute("SELECT count(*) FROM messages").fetchone() == (0,)


def test_a_send_needs_the_token(client: Client) -> None:
    document = {"channel": "sms", "to": "+12025550123", "body": "x"}
    assert client("POST", "/messages", json=document).status_code == 401
    wrong = {"Authorization": "Bearer nope"}
    assert client("POST", "/messages", json=document, headers=wrong).status_code == 401


def test_a_signed_report_updates_its_message_and_a_forged_one_does_not(
    client: Client, database: str
) -> None:
    (message_id,) = crud_baseline.seed_sent(database, 1)
    path = f"/reports?message_id={message_id}"
    form = [("MessageSid", "SM1"), ("MessageStatus", "delivered"), ("To", "+12025550123")]
    signature = crud_baseline.twilio_signature(TWILIO_TOKEN, BASE + path, form)
    headers = {"Content-Type": "application/x-www-form-urlencoded"}

    forged = client(
        "POST", path, content=urlencode(form), headers={**headers, "X-Twilio-Signature": "bad"}
    )
    assert forged.status_code == 403
    assert status_of(database, str(message_id)) == "sent"

    signed = client(
        "POST", path, content=urlencode(form), headers={**headers, "X-Twilio-Signature": signature}
    )
    assert signed.status_code == 200
    assert status_of(database, str(message_id)) == "delivered"


def test_the_signature_is_twilios(client: Client) -> None:
    from twilio.request_validator import RequestValidator

    url = "https://example.com/reports?message_id=1"
    form = [("MessageStatus", "delivered"), ("MessageSid", "SM1"), ("AccountSid", "AC1")]
    expected = RequestValidator(TWILIO_TOKEN).compute_signature(url, dict(form))
    assert crud_baseline.twilio_signature(TWILIO_TOKEN, url, form) == expected


def test_the_list_pages_filters_and_counts(client: Client, database: str) -> None:
    crud_baseline.seed_list(database, 200)

    everything = client("GET", "/messages", headers=AUTH).json()
    delivered = client("GET", "/messages?status=delivered&page=2", headers=AUTH).json()
    one_number = client("GET", "/messages?to=%2B12025550007", headers=AUTH).json()

    assert everything["meta"]["total"] == 200
    assert len(everything["data"]) == 25
    created = [m["created_at"] for m in everything["data"]]
    assert created == sorted(created, reverse=True)
    assert delivered["meta"] == {"page": 2, "per_page": 25, "total": 100}
    assert {m["status"] for m in delivered["data"]} == {"delivered"}
    assert one_number["meta"]["total"] == 1
    assert one_number["data"][0]["recipient"] == "+12025550007"


def test_the_baseline_keeps_tcp_nodelay_with_several_workers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """uvicorn#3149: the socket ``--workers N`` binds must say IPPROTO_TCP, or asyncio
    leaves Nagle on for every connection it accepts."""
    import socket

    from uvicorn.config import Config

    monkeypatch.setattr(Config, "bind_socket", Config.bind_socket)  # restored afterwards
    crud_baseline._keep_tcp_nodelay()
    listener = Config(app=crud_baseline.create_app, host="127.0.0.1", port=0).bind_socket()

    async def accepted_nodelay() -> int:
        accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                sock = transport.get_extra_info("socket")
                accepted.set_result(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))

        server = await asyncio.get_running_loop().create_server(Probe, sock=listener)
        async with server:
            _reader, writer = await asyncio.open_connection(*listener.getsockname())
            result = await asyncio.wait_for(accepted, 10)
            writer.close()
            return result

    with listener:
        assert listener.proto == socket.IPPROTO_TCP
        assert asyncio.run(accepted_nodelay()) != 0
