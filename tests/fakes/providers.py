"""Fake provider servers on real loopback sockets: Twilio and Meta's WhatsApp Cloud API.

Each fake speaks its provider's wire format (paths, auth, success and error bodies as
documented in shared/research/providers.md), records every request it receives, and can be
told how to answer the next requests::

    with FakeTwilio() as twilio:
        twilio.answer(twilio_error(20429))          # the next request is throttled,
        ...                                          # the one after succeeds again
        twilio.always(SERVICE_UNAVAILABLE)           # every request gets an HTML 503
        twilio.always(slow(2.0))                     # every request waits 2 s, then succeeds
        twilio.requests[-1].form["To"], twilio.calls

Point a driver at ``fake.url`` (``CONVERSA_TWILIO_API_BASE`` / ``CONVERSA_WHATSAPP_API_BASE``).
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import json
import secrets
import socket
import threading
from collections import deque
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import parse_qs, urlsplit

TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "twilio-auth-token-" + "7" * 14
WHATSAPP_PHONE_ID = "106540352242922"
WHATSAPP_TOKEN = "EAAG" + "meta-access-token-" + "9" * 12
WHATSAPP_VERSION = "v23.0"


@dataclass(frozen=True)
class Received:
    """One request as the fake server saw it."""

    method: str
    path: str
    query: Mapping[str, list[str]]
    headers: Mapping[str, str]  # lower-case names
    body: bytes

    @property
    def form(self) -> dict[str, str]:
        """The form fields; a repeated field would be a bug in the sender here."""
        fields = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=False)
        repeated = [name for name, values in fields.items() if len(values) != 1]
        assert not repeated, f"repeated form fields {repeated}"
        return {name: values[0] for name, values in fields.items()}

    @property
    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip().lower()

    @property
    def basic_auth(self) -> tuple[str, str] | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value, validate=True).decode().partition(":")
        except (binascii.Error, UnicodeDecodeError):
            return None
        return user, password

    @property
    def bearer(self) -> str | None:
        scheme, _, value = self.headers.get("authorization", "").partition(" ")
        return value if scheme.lower() == "bearer" else None


@dataclass(frozen=True)
class Answer:
    """What the fake sends back. ``delay`` holds the answer back (for client timeouts)."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    delay: float = 0.0
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, status: int, payload: object, *, delay: float = 0.0) -> Answer:
        return cls(status, json.dumps(payload).encode(), "application/json", delay)


@dataclass(frozen=True)
class Slow:
    """Wait ``seconds``, then answer as the provider normally would."""

    seconds: float


#: An answer, a function of the request that makes one (to echo what was sent), or a delay.
Reply = Answer | Slow | Callable[[Received], Answer]

#: What a load balancer in front of a provider says when the service is down: not JSON.
SERVICE_UNAVAILABLE = Answer(
    503, b"<html><body><h1>503 Service Unavailable</h1></body></html>", "text/html"
)


def slow(seconds: float) -> Slow:
    """Wait ``seconds``, then answer as the provider normally would."""
    return Slow(seconds)


class FakeProvider:
    """A threaded HTTP/1.1 server on 127.0.0.1 and a free port. Subclasses answer requests
    as their provider does (:meth:`handle`); :meth:`answer` and :meth:`always` override."""

    def __init__(self) -> None:
        self.requests: list[Received] = []
        self.sent: list[dict[str, Any]] = []  # what the provider accepted (subclasses say)
        self._lock = threading.Lock()
        self._script: deque[Reply] = deque()
        self._always: Reply | None = None
        self._stopping = threading.Event()
        self._connections: set[socket.socket] = set()
        self._server = _Server(("127.0.0.1", 0), _handler_for(self))
        self._thread: threading.Thread | None = None

    # Lifecycle

    def start(self) -> Self:
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name=f"{type(self).__name__}-server",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()  # wakes answers that are being held back
        if self._thread is not None:  # shutdown() waits for serve_forever() to return
            self._server.shutdown()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:  # ends keep-alive handler threads promptly
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    # Scripting

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def answer(self, *replies: Reply) -> None:
        """Answer the next requests with these, one each, in order; then as before."""
        with self._lock:
            self._script.extend(replies)

    def always(self, reply: Reply | None) -> None:
        """Answer every request with ``reply`` (after any scripted ones); None: normally."""
        with self._lock:
            self._always = reply

    def reset(self) -> None:
        with self._lock:
            self.requests.clear()
            self.sent.clear()
            self._script.clear()
            self._always = None

    def handle(self, received: Received) -> Answer:
        """The provider's own behaviour."""
        raise NotImplementedError

    # Serving

    def _record_and_choose(self, received: Received) -> Answer:
        with self._lock:
            self.requests.append(received)
            reply = self._script.popleft() if self._script else self._always
        if isinstance(reply, Slow):
            self._stopping.wait(reply.seconds)
            return self.handle(received)
        if reply is None:
            return self.handle(received)
        if isinstance(reply, Answer):
            return reply
        return reply(received)

    def _hold(self, seconds: float) -> None:
        if seconds > 0:
            self._stopping.wait(seconds)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False  # keep-alive handler threads end when their connection does
    # socketserver's default listen backlog is 5: dozens of clients connecting at once on a
    # busy machine overflow it, and some connections are reset (ReadError), which no real
    # provider's front end does.
    request_queue_size = 256

    def handle_error(self, request: object, client_address: object) -> None:
        """A client that hung up (a timeout in the test) is not an error worth printing."""


def _handler_for(fake: FakeProvider) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        timeout = 10  # an idle keep-alive connection is closed after this

        def setup(self) -> None:
            super().setup()
            with fake._lock:
                fake._connections.add(self.connection)

        def finish(self) -> None:
            with fake._lock:
                fake._connections.discard(self.connection)
            with contextlib.suppress(OSError):
                super().finish()

        def log_message(self, format: str, *args: Any) -> None:
            """Quiet: the tests look at ``fake.requests`` instead."""

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def _serve(self) -> None:
            target = urlsplit(self.path)
            received = Received(
                method=self.command,
                path=target.path,
                query=parse_qs(target.query, keep_blank_values=True),
                headers={name.lower(): value for name, value in self.headers.items()},
                body=self._read_body(),
            )
            answer = fake._record_and_choose(received)
            fake._hold(answer.delay)
            try:
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                for name, value in answer.headers.items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(answer.body)
            except OSError:  # the client gave up waiting
                self.close_connection = True

        def _read_body(self) -> bytes:
            if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
                chunks = []
                while size := int(self.rfile.readline().split(b";")[0].strip(), 16):
                    chunks.append(self.rfile.read(size))
                    self.rfile.readline()
                self.rfile.readline()
                return b"".join(chunks)
            return self.rfile.read(int(self.headers.get("Content-Length") or 0))

    return Handler


# Twilio


def twilio_error(
    code: int, message: str | None = None, status: int | None = None, *, delay: float = 0.0
) -> Callable[[Received], Answer]:
    """Twilio's error body ``{code, message, more_info, status}`` for a documented code.

    The messages of 21211 and 21408 quote the recipient's number, as Twilio's do.
    """
    default_status, default_message = TWILIO_ERRORS.get(code, (400, "Error"))
    final_status = status or default_status

    def reply(received: Received) -> Answer:
        to = _form_or_empty(received).get("To", "")
        text = (message or default_message).replace("{to}", to)
        payload = {
            "code": code,
            "message": text,
            "more_info": f"https://www.twilio.com/docs/errors/{code}",
            "status": final_status,
        }
        return Answer.json(final_status, payload, delay=delay)

    return reply


def twilio_problem(code: int, title: str, status: int) -> Answer:
    """The RFC 9457 shape some newer Twilio services answer with."""
    return Answer(
        status,
        json.dumps(
            {
                "type": f"https://www.twilio.com/docs/errors/{code}",
                "title": title,
                "status": status,
                "code": code,
                "detail": f"{title}.",
                "instance": "/2010-04-01/Accounts/ACxx/Messages.json",
            }
        ).encode(),
        "application/problem+json",
    )


TWILIO_ERRORS: dict[int, tuple[int, str]] = {
    20003: (401, "Authenticate"),
    20404: (404, "The requested resource was not found"),
    20429: (429, "Too Many Requests"),
    20500: (500, "Internal Server Error"),
    20503: (503, "Service Unavailable"),
    21211: (400, "The 'To' number {to} is not a valid phone number."),
    21408: (
        400,
        "Permission to send an SMS has not been enabled for the region indicated by the "
        "'To' number: {to}.",
    ),
    21602: (400, "Message body is required."),
    21603: (400, "A 'From' phone number is required."),
    21604: (400, "A 'To' phone number is required."),
    21606: (
        400,
        "The 'From' phone number provided is not a valid message-capable Twilio phone "
        "number for this destination/account.",
    ),
    21610: (400, "Attempt to send to unsubscribed recipient"),
    21612: (400, "The 'To' phone number is not currently reachable via SMS."),
    21614: (400, "'To' number is not a valid mobile number"),
}


class FakeTwilio(FakeProvider):
    """``POST /2010-04-01/Accounts/{sid}/Messages.json`` with Basic auth and a form body.
    ``sent`` holds the message resources created (the 201 bodies)."""

    def __init__(self, account_sid: str = TWILIO_SID, auth_token: str = TWILIO_TOKEN) -> None:
        super().__init__()
        self.account_sid = account_sid
        self.auth_token = auth_token

    def messages_path(self) -> str:
        return f"/2010-04-01/Accounts/{self.account_sid}/Messages.json"

    def handle(self, received: Received) -> Answer:
        if received.basic_auth != (self.account_sid, self.auth_token):
            return _answer(twilio_error(20003), received)
        if received.method != "POST" or received.path != self.messages_path():
            return _answer(twilio_error(20404), received)
        if received.content_type != "application/x-www-form-urlencoded":
            return Answer(415, b"", "text/plain")
        form = received.form
        if not form.get("To"):
            return _answer(twilio_error(21604), received)
        if not (form.get("From") or form.get("MessagingServiceSid")):
            return _answer(twilio_error(21603), received)
        if not (form.get("Body") or form.get("ContentSid") or form.get("MediaUrl")):
            return _answer(twilio_error(21602), received)
        resource = self.message_resource(form)
        with self._lock:
            self.sent.append(resource)
        return Answer.json(201, resource)

    def message_resource(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The 201 body: ``api.v2010.account.message``, as in the spec's ``create`` example."""
        sid = "SM" + secrets.token_hex(16)
        now = formatdate(usegmt=True).replace("GMT", "+0000")
        service = form.get("MessagingServiceSid")
        base = f"/2010-04-01/Accounts/{self.account_sid}/Messages/{sid}"
        return {
            "account_sid": self.account_sid,
            "api_version": "2010-04-01",
            "body": form.get("Body", ""),
            "date_created": now,
            "date_sent": None,
            "date_updated": now,
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
            "from": form.get("From"),
            "messaging_service_sid": service,
            "num_media": "0",
            "num_segments": "1",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "status": "accepted" if service else "queued",
            "subresource_uris": {"media": f"{base}/Media.json"},
            "to": form["To"],
            "uri": f"{base}.json",
        }


# Meta WhatsApp Cloud API


def meta_error(
    code: int,
    message: str | None = None,
    *,
    status: int = 400,
    details: str | None = None,
    is_transient: bool | None = None,
    error_type: str = "OAuthException",
) -> Answer:
    """Graph's error body ``{"error": {message, type, code, error_data, fbtrace_id}}``.

    Meta answers throttling with HTTP 400 too: the code, not the status, says what it is.
    """
    default_message, default_details = META_ERRORS.get(code, (f"(#{code}) Error", None))
    error: dict[str, Any] = {
        "message": message or default_message,
        "type": error_type,
        "code": code,
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    }
    if details or default_details:
        error["error_data"] = {
            "messaging_product": "whatsapp",
            "details": details or default_details,
        }
    if is_transient is not None:
        error["is_transient"] = is_transient
    return Answer.json(status, {"error": error})


#: The documented example of providers.md 2.1, verbatim.
META_RATE_LIMIT_EXAMPLE = {
    "error": {
        "message": "(#130429) Rate limit hit",
        "type": "OAuthException",
        "code": 130429,
        "error_data": {
            "messaging_product": "whatsapp",
            "details": "Cloud API message throughput has been reached.",
        },
        "error_subcode": 2494055,
        "fbtrace_id": "Az8or2yhqkZfEZ-_4Qn_Bam",
    }
}

META_ERRORS: dict[int, tuple[str, str | None]] = {
    1: ("An unknown error occurred", "Invalid request or possible server error."),
    2: ("Service temporarily unavailable", None),
    4: ("(#4) Application request limit reached", None),
    100: ("(#100) Invalid parameter", None),
    190: ("Error validating access token: Session has expired.", None),
    80007: ("(#80007) Rate limit issues", None),
    130429: ("(#130429) Rate limit hit", "Cloud API message throughput has been reached."),
    131000: ("(#131000) Something went wrong", "Something went wrong. Try again."),
    131008: ("(#131008) Required parameter is missing", None),
    131009: ("(#131009) Parameter value is not valid", None),
    131016: ("(#131016) Service unavailable", "A service is temporarily unavailable."),
    131026: ("(#131026) Message undeliverable", "Unable to deliver message."),
    131047: (
        "(#131047) Re-engagement message",
        "More than 24 hours have passed since the recipient last replied to the sender number.",
    ),
    131056: (
        "(#131056) (Business Account, Consumer Account) pair rate limit hit",
        "Too many messages sent from the sender phone number to the same recipient phone "
        "number in a short period of time.",
    ),
    131057: ("(#131057) Account in maintenance mode", None),
    132000: (
        "(#132000) Number of parameters does not match the expected number of params",
        None,
    ),
    132001: ("(#132001) Template name does not exist in the translation", None),
    133004: ("(#133004) Server temporarily unavailable", None),
}


#: How Graph writes our number (tests.fakes.inbound.BUSINESS) as ``display_phone_number``
#: of the phone number node: for people, as in the spec's examples.
WHATSAPP_DISPLAY_NUMBER = "+1 555-000-1111"


class FakeWhatsAppCloud(FakeProvider):
    """``POST /{version}/{phone-number-id}/messages`` with a bearer token and a JSON body.
    ``sent`` holds the request bodies accepted.

    ``GET /{version}/{phone-number-id}`` (the phone number node, ``getPhoneNumberById``)
    answers the number's fields; these reads are kept in ``lookups``, apart from
    ``requests`` and from the scripted answers, which are about sending. ``lookup_reply``
    overrides the answer."""

    def __init__(
        self,
        phone_id: str = WHATSAPP_PHONE_ID,
        token: str = WHATSAPP_TOKEN,
        version: str = WHATSAPP_VERSION,
        display_number: str = WHATSAPP_DISPLAY_NUMBER,
    ) -> None:
        super().__init__()
        self.phone_id = phone_id
        self.token = token
        self.version = version
        self.display_number = display_number
        self.lookups: list[Received] = []
        self.lookup_reply: Answer | None = None

    def messages_path(self) -> str:
        return f"/{self.version}/{self.phone_id}/messages"

    def _record_and_choose(self, received: Received) -> Answer:
        if received.method == "GET" and received.path == f"/{self.version}/{self.phone_id}":
            with self._lock:
                self.lookups.append(received)
                reply = self.lookup_reply
            return reply if reply is not None else self.phone_number(received)
        return super()._record_and_choose(received)

    def phone_number(self, received: Received) -> Answer:
        """The node's fields: those asked for in ``fields`` (Graph adds ``id``), else
        the defaults (id, display_phone_number, verified_name, quality_rating)."""
        if received.bearer != self.token:
            return meta_error(
                190, "Invalid OAuth access token - Cannot parse access token", status=401
            )
        node = {
            "id": self.phone_id,
            "display_phone_number": self.display_number,
            "verified_name": "Jaspers Market",
            "quality_rating": "GREEN",
        }
        asked = [f for v in received.query.get("fields", []) for f in v.split(",") if f]
        if asked:
            unknown = [f for f in asked if f not in node]
            if unknown:
                return meta_error(100, f"(#100) Tried accessing nonexisting field ({unknown[0]})")
            node = {k: v for k, v in node.items() if k == "id" or k in asked}
        return Answer.json(200, node)

    def handle(self, received: Received) -> Answer:
        if received.bearer != self.token:
            return meta_error(
                190, "Invalid OAuth access token - Cannot parse access token", status=401
            )
        if received.method != "POST" or received.path != self.messages_path():
            return meta_error(
                100,
                f"Unsupported post request. Object with ID '{received.path}' does not exist",
                error_type="GraphMethodException",
            )
        try:
            body = received.json
        except ValueError:
            return meta_error(100, "(#100) Invalid JSON in the request body")
        if not isinstance(body, dict) or body.get("messaging_product") != "whatsapp":
            return meta_error(100, "(#100) The parameter messaging_product is required.")
        if not body.get("to"):
            return meta_error(100, "(#100) The parameter to is required.")
        kind = body.get("type")
        if kind not in {"text", "template"} or not isinstance(body.get(kind), dict):
            return meta_error(131009, details=f"type {kind!r} is not supported here")
        with self._lock:
            self.sent.append(body)
        to = str(body["to"])
        wamid = "wamid." + base64.b64encode(secrets.token_bytes(24)).decode()
        message: dict[str, str] = {"id": wamid}
        if kind == "template":
            message["message_status"] = "accepted"
        return Answer.json(
            200,
            {
                "messaging_product": "whatsapp",
                "contacts": [{"input": to, "wa_id": to.removeprefix("+")}],
                "messages": [message],
            },
        )


# Helpers


def _answer(reply: Answer | Callable[[Received], Answer], received: Received) -> Answer:
    return reply if isinstance(reply, Answer) else reply(received)


def _form_or_empty(received: Received) -> dict[str, str]:
    try:
        return received.form
    except (AssertionError, UnicodeDecodeError):
        return {}


F = TypeVar("F", bound=FakeProvider)


def running(fake: F) -> Iterator[F]:
    """For fixtures: ``yield from running(FakeTwilio())``."""
    with fake:
        yield fake
