"""The CRUD baseline: a plain messaging service that Conversa's figures are divided by.

What a competent team would write without event sourcing: a Starlette app served by the
same uvicorn, with the same number of worker processes, as the Conversa server under test,
an async psycopg pool, and one table.

- ``POST /messages``: checks a bearer token; validates the body Conversa's send takes
  (``channel`` sms or whatsapp, ``to`` a possible number in E.164 through phonenumbers,
  ``body`` a non-empty string within the channel's length, no unknown field) and the
  ``Idempotency-Key`` header; INSERTs the row (a repeated key answers 200 with the row
  already stored), UPDATEs it to ``sent`` as a driver's outcome would, each statement its
  own transaction (commit before calling the provider, then record the outcome), and
  answers 201 with the row.
- ``POST /reports?message_id=<id>``: a Twilio-style status callback, signed in
  ``X-Twilio-Signature`` (base64 HMAC-SHA1 of the public URL and the sorted form fields):
  the signature is checked, then one UPDATE sets the status; 403 on a bad signature.
- ``GET /messages``: ``status``, ``channel``, ``to``, ``page``, ``per_page``, newest first,
  with ``total`` from a ``count(*)`` of the filtered rows, as Conversa's list does today.
- ``GET /health``: ``SELECT 1``.

Run ``python -m bench.crud_baseline migrate|serve`` (see ``--help``); the benchmark starts it.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import json
import os
import re
import sys
import uuid
from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

import phonenumbers
import psycopg
from psycopg.rows import dict_row
from psycopg_pool import AsyncConnectionPool
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

DATABASE_URL_VARIABLE = "BENCH_CRUD_DATABASE_URL"
TOKEN_VARIABLE = "BENCH_CRUD_TOKEN"
WEBHOOK_BASE_URL_VARIABLE = "BENCH_CRUD_WEBHOOK_BASE_URL"
TWILIO_TOKEN_VARIABLE = "BENCH_CRUD_TWILIO_TOKEN"
POOL_SIZE_VARIABLE = "BENCH_CRUD_POOL_SIZE"
#: Connections per process: Conversa's pool is 2 plus 10 overflow.
DEFAULT_POOL_SIZE = 12

MAX_SEND_BODY = 64 * 1024
MAX_REPORT_BODY = 1024 * 1024
SEND_FIELDS = frozenset({"channel", "to", "body"})
MAX_BODY_LENGTH = {"sms": 1600, "whatsapp": 4096}
MAX_IDEMPOTENCY_KEY = 255
MAX_PER_PAGE = 100
_VISIBLE_ASCII = re.compile(r"^[\x21-\x7e]+$")
#: Twilio's MessageStatus values this service records.
REPORT_STATUSES = frozenset({"sent", "delivered", "read", "undelivered", "failed"})

SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS messages (
        id uuid PRIMARY KEY,
        channel text NOT NULL,
        recipient text NOT NULL,
        body text NOT NULL,
        status text NOT NULL,
        provider_message_id text,
        idempotency_key text UNIQUE,
        created_at timestamptz NOT NULL DEFAULT now(),
        updated_at timestamptz NOT NULL DEFAULT now()
    )
    """,
    # The list's filters, each served by an index ending in its sort order (as Conversa's).
    "CREATE INDEX IF NOT EXISTS messages_newest ON messages (created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS messages_status ON messages (status, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS messages_channel ON messages (channel, created_at DESC, id DESC)",
    "CREATE INDEX IF NOT EXISTS messages_recipient "
    "ON messages (recipient, created_at DESC, id DESC)",
)

INSERT = (
    "INSERT INTO messages (id, channel, recipient, body, status, idempotency_key) "
    "VALUES (%s, %s, %s, %s, 'queued', %s) "
    "ON CONFLICT (idempotency_key) DO NOTHING RETURNING id"
)
MARK_SENT = (
    "UPDATE messages SET status = 'sent', provider_message_id = %s, updated_at = now() "
    "WHERE id = %s RETURNING *"
)
BY_KEY = "SELECT * FROM messages WHERE idempotency_key = %s"
REPORT = "UPDATE messages SET status = %s, updated_at = now() WHERE id = %s"


class Invalid(Exception):
    def __init__(self, status: int, code: str, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.field = status, code, message, field

    def response(self) -> JSONResponse:
        fields = {self.field: self.message} if self.field else {}
        return JSONResponse(
            {"error": {"code": self.code, "message": self.message, "fields": fields}},
            status_code=self.status,
        )


def e164(raw: object) -> str:
    """``raw`` as an E.164 number, refused as Conversa refuses it (not a possible number)."""
    if not isinstance(raw, str) or not raw.strip():
        raise Invalid(422, "invalid_request", "to must be a phone number in E.164 form", "to")
    try:
        parsed = phonenumbers.parse(raw.strip(), None)
    except phonenumbers.NumberParseException:
        raise Invalid(422, "invalid_request", "to has no country code", "to") from None
    if not phonenumbers.is_possible_number(parsed):
        raise Invalid(422, "invalid_request", "to is not a possible phone number", "to")
    return str(phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164))


def validate_send(document: object) -> tuple[str, str, str]:
    if not isinstance(document, dict):
        raise Invalid(400, "malformed_json", "the body must be a JSON object")
    unknown = sorted(set(document) - SEND_FIELDS)
    if unknown:
        raise Invalid(422, "invalid_request", f"unknown field {unknown[0]}", unknown[0])
    channel = document.get("channel")
    if channel not in MAX_BODY_LENGTH:
        raise Invalid(422, "invalid_request", "channel must be sms or whatsapp", "channel")
    to = e164(document.get("to"))
    body = document.get("body")
    if not isinstance(body, str) or not body.strip() or len(body) > MAX_BODY_LENGTH[channel]:
        raise Invalid(422, "invalid_request", "body must be a non-empty string", "body")
    return channel, to, body


def twilio_signature(token: str, url: str, form: Sequence[tuple[str, str]]) -> str:
    """base64(HMAC-SHA1(token, url + each name and value, names sorted)), as Twilio signs."""
    values: dict[str, set[str]] = {}
    for name, value in form:
        values.setdefault(name, set()).add(value)
    signed = url + "".join(
        name + value for name in sorted(values) for value in sorted(values[name])
    )
    mac = hmac.new(token.encode(), signed.encode(), hashlib.sha1)
    return base64.b64encode(mac.digest()).decode("ascii")


def resource(row: dict[str, Any]) -> dict[str, Any]:
    return {
        key: (
            value.isoformat()
            if isinstance(value, datetime)
            else str(value)
            if isinstance(value, uuid.UUID)
            else value
        )
        for key, value in row.items()
    }


class Baseline:
    """One process's state: its pool and its secrets."""

    def __init__(self, pool: AsyncConnectionPool[Any], token: str, base_url: str, twilio: str):
        self.pool = pool
        self.token = token.encode()
        self.base_url = base_url.rstrip("/")
        self.twilio_token = twilio

    def authenticate(self, request: Request) -> None:
        scheme, _, secret = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            secret.strip().encode(), self.token
        ):
            raise Invalid(401, "unauthorized", "send the API token as Authorization: Bearer")

    async def send(self, request: Request) -> Response:
        self.authenticate(request)
        raw = await request.body()
        if len(raw) > MAX_SEND_BODY:
            raise Invalid(413, "payload_too_large", "the body is too large")
        try:
            document = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Invalid(400, "malformed_json", "the body is not valid JSON") from None
        channel, to, body = validate_send(document)
        key = request.headers.get("idempotency-key")
        if key is not None and (len(key) > MAX_IDEMPOTENCY_KEY or not _VISIBLE_ASCII.match(key)):
            raise Invalid(422, "invalid_request", "bad Idempotency-Key", "Idempotency-Key")
        message_id = uuid.uuid4()
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(INSERT, (message_id, channel, to, body, key))
            if await cur.fetchone() is None:  # the key was used before: answer that message
                await cur.execute(BY_KEY, (key,))
                existing = await cur.fetchone()
                assert existing is not None
                return JSONResponse(resource(existing), status_code=200)
            # The "driver": the log driver makes up a provider id, as here.
            await cur.execute(MARK_SENT, (f"log-{uuid.uuid4().hex}", message_id))
            row = await cur.fetchone()
        assert row is not None
        return JSONResponse(resource(row), status_code=201)

    async def report(self, request: Request) -> Response:
        raw = await request.body()
        if len(raw) > MAX_REPORT_BODY:
            raise Invalid(413, "payload_too_large", "the body is too large")
        try:
            form = parse_qsl(raw.decode(), keep_blank_values=True, errors="strict")
        except (UnicodeDecodeError, ValueError):
            raise Invalid(400, "malformed_webhook", "the body is not a form") from None
        query = request.scope.get("query_string", b"").decode("latin-1")
        url = self.base_url + request.scope["raw_path"].decode("latin-1")
        url += f"?{query}" if query else ""
        expected = twilio_signature(self.twilio_token, url, form).encode()
        given = request.headers.get("x-twilio-signature", "").encode()
        if not hmac.compare_digest(expected, given):
            raise Invalid(403, "forbidden", "the signature does not match")
        status = dict(form).get("MessageStatus", "").lower()
        try:
            message_id = uuid.UUID(request.query_params.get("message_id", ""))
        except ValueError:
            raise Invalid(400, "malformed_webhook", "message_id is not a UUID") from None
        if status in REPORT_STATUSES:
            async with self.pool.connection() as conn:
                await conn.execute(REPORT, (status, message_id))
        return JSONResponse({"received": 1})

    async def list(self, request: Request) -> Response:
        self.authenticate(request)
        params = request.query_params
        filters: dict[str, str] = {}
        if (status := params.get("status")) is not None:
            filters["status"] = status
        if (channel := params.get("channel")) is not None:
            filters["channel"] = channel
        if (to := params.get("to")) is not None:
            filters["recipient"] = e164(to)
        page = _number(params.get("page"), 1, 1_000_000, "page")
        per_page = _number(params.get("per_page"), 25, MAX_PER_PAGE, "per_page")
        where = " AND ".join(f"{column} = %({column})s" for column in filters)
        where = f" WHERE {where}" if where else ""
        async with self.pool.connection() as conn, conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(
                f"SELECT * FROM messages{where} ORDER BY created_at DESC, id DESC "
                "LIMIT %(limit)s OFFSET %(offset)s",
                {**filters, "limit": per_page, "offset": (page - 1) * per_page},
            )
            rows = await cur.fetchall()
            await cur.execute(f"SELECT count(*) AS n FROM messages{where}", filters)
            total = await cur.fetchone()
        return JSONResponse(
            {
                "data": [resource(row) for row in rows],
                "meta": {"page": page, "per_page": per_page, "total": total["n"] if total else 0},
            }
        )

    async def health(self, _request: Request) -> Response:
        async with self.pool.connection() as conn:
            await conn.execute("SELECT 1")
        return JSONResponse({"status": "ok"})


def _number(raw: str | None, default: int, maximum: int, field: str) -> int:
    if raw is None:
        return default
    if not (raw.isascii() and raw.isdigit()) or not 1 <= int(raw) <= maximum:
        raise Invalid(422, "invalid_request", f"{field} must be 1 to {maximum}", field)
    return int(raw)


def create_app() -> Starlette:
    """The ASGI app, configured from the ``BENCH_CRUD_*`` environment (uvicorn's factory)."""
    url = os.environ[DATABASE_URL_VARIABLE]
    pool_size = int(os.environ.get(POOL_SIZE_VARIABLE, DEFAULT_POOL_SIZE))
    pool: AsyncConnectionPool[Any] = AsyncConnectionPool(
        url, min_size=2, max_size=pool_size, kwargs={"autocommit": True}, open=False
    )
    baseline = Baseline(
        pool,
        token=os.environ[TOKEN_VARIABLE],
        base_url=os.environ.get(WEBHOOK_BASE_URL_VARIABLE, "http://127.0.0.1"),
        twilio=os.environ.get(TWILIO_TOKEN_VARIABLE, ""),
    )

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await pool.open(wait=True)
        try:
            yield
        finally:
            await pool.close()

    async def invalid(_request: Request, error: Exception) -> Response:
        assert isinstance(error, Invalid)
        return error.response()

    return Starlette(
        routes=[
            Route("/messages", baseline.send, methods=["POST"]),
            Route("/messages", baseline.list, methods=["GET"]),
            Route("/reports", baseline.report, methods=["POST"]),
            Route("/health", baseline.health, methods=["GET"]),
        ],
        exception_handlers={Invalid: invalid},
        lifespan=lifespan,
    )


def migrate(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in SCHEMA:
            conn.execute(statement)


def seed_sent(url: str, count: int) -> list[uuid.UUID]:
    """``count`` sent messages for reports to name; return their ids."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute(
            "INSERT INTO messages (id, channel, recipient, body, status, provider_message_id) "
            "SELECT gen_random_uuid(), 'sms', '+1202555' || lpad((n %% 10000)::text, 4, '0'), "
            "'benchmark message ' || n, 'sent', 'log-' || n "
            "FROM generate_series(1, %s) AS n RETURNING id",
            (count,),
        ).fetchall()
    return [row[0] for row in rows]


def seed_list(url: str, count: int) -> None:
    """``count`` messages spread as the Conversa list seed spreads them (bench.seed):
    delivered one in two, failed one in twenty, sent otherwise; WhatsApp one in five;
    10,000 recipients; a millisecond apart. The indexes are built after the rows."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS messages")
        conn.execute(SCHEMA[0])
        conn.execute(
            "INSERT INTO messages (id, channel, recipient, body, status, provider_message_id, "
            "created_at, updated_at) "
            "SELECT gen_random_uuid(), CASE WHEN n %% 5 = 4 THEN 'whatsapp' ELSE 'sms' END, "
            "'+1202555' || lpad((n %% 10000)::text, 4, '0'), 'benchmark message ' || n, "
            "CASE WHEN n %% 20 = 19 THEN 'failed' WHEN n %% 2 = 0 THEN 'delivered' "
            "ELSE 'sent' END, 'log-' || n, "
            "now() - interval '1 minute' - (%s - n) * interval '1 millisecond', "
            "now() - interval '1 minute' - (%s - n) * interval '1 millisecond' "
            "FROM generate_series(0, %s - 1) AS n",
            (count, count, count),
        )
        for statement in SCHEMA[1:]:
            conn.execute(statement)
        conn.execute("VACUUM ANALYZE messages")


def _keep_tcp_nodelay() -> None:
    """Work around uvicorn#3149: with ``--workers N`` uvicorn binds the listening socket
    with ``proto`` 0, accepted sockets inherit it, and asyncio then leaves Nagle's
    algorithm on, so a keep-alive response sent in two writes (head, then body) waits for
    the client's delayed ACK, about 40 ms on Linux. Re-wrapping the socket with
    ``IPPROTO_TCP`` (what uvicorn's pending fix does) restores TCP_NODELAY. ``conversa
    serve`` has the problem too; see bench/README.md."""
    import socket

    from uvicorn.config import Config

    bind = Config.bind_socket

    def bind_socket(config: Config) -> socket.socket:
        sock = bind(config)
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto:
            return sock
        family, kind = sock.family, sock.type
        fixed = socket.socket(family, kind, socket.IPPROTO_TCP, fileno=sock.detach())
        fixed.set_inheritable(True)
        return fixed

    Config.bind_socket = bind_socket  # type: ignore[method-assign,assignment]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.crud_baseline", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    migrating = commands.add_parser("migrate", help="create the table")
    migrating.add_argument("--database-url", required=True)
    serving = commands.add_parser(
        "serve", help=f"serve with uvicorn; configured by {DATABASE_URL_VARIABLE} and friends"
    )
    serving.add_argument("--host", default="127.0.0.1")
    serving.add_argument("--port", type=int, default=8100)
    serving.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    if args.command == "migrate":
        migrate(args.database_url)
        return 0
    import uvicorn

    _keep_tcp_nodelay()
    uvicorn.run(
        "bench.crud_baseline:create_app",
        factory=True,
        host=args.host,
        port=args.port,
        workers=args.workers,
        # uvicorn's defaults: an access line per request, as Conversa logs its own.
        log_level="info",
        access_log=True,
        timeout_graceful_shutdown=20,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
