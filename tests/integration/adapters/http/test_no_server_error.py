"""No input gets a 5xx: arbitrary JSON values, byte strings, header values and query
strings, thrown by hypothesis at every endpoint of the real application (in process, on a
SQLite file and on PostgreSQL), with a valid token most of the time so that the handlers
past authentication run, and webhook bodies signed most of the time so that the providers'
parsers run. The regression cases of the defects found so far are explicit examples.

The application endpoints answer 503 only by choice (a rate-limit storage failing closed),
which this application does not have, so any 5xx here is a defect.
"""

from __future__ import annotations

import json
import uuid
from typing import Any
from urllib.parse import parse_qsl, quote, quote_from_bytes

import httpx
import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from conversa.adapters.providers.twilio_webhook import twilio_signature
from conversa.adapters.providers.whatsapp_webhook import meta_signature
from tests.integration.adapters.http.conftest import (
    APP_SECRET,
    PUBLIC,
    TWILIO_TOKEN,
    VERIFY_TOKEN,
    Api,
)

FUZZ = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

HUGE_INT = "9" * 4301
#: Stands for HUGE_INT in generated values: json.dumps cannot print such an integer.
HUGE_MARK = "<huge integer>"

# Any character, unpaired surrogates included (JSON's \u escapes carry them).
any_text = st.text(st.characters(exclude_categories=()), max_size=40)
# What a URL can carry once percent-encoded as UTF-8.
url_text = st.text(st.characters(codec="utf-8"), max_size=40)
json_leaves = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.just(HUGE_MARK)  # an integer past the int-string limit, once dumped
    | st.floats()
    | any_text
)
json_values = st.recursive(
    json_leaves,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(any_text, children, max_size=4)
    ),
    max_leaves=12,
)
# Unclosed or closed nesting, of arrays or objects, past any recursion limit or not.
nested = st.builds(
    lambda depth, opening, closed: opening * depth + ("1" + "]" * depth if closed else ""),
    st.integers(1, 5000),
    st.sampled_from(["[", '{"a":']),
    st.booleans(),
)


def mostly(usual: st.SearchStrategy[Any], other: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """``usual`` seven times in eight, else ``other``. (``st.one_of`` would not do: it
    draws each distinct strategy equally often.)"""
    choice: st.SearchStrategy[st.SearchStrategy[Any]] = st.sampled_from([usual] * 7 + [other])
    return choice.flatmap(lambda strategy: strategy)


safe_text = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=20)
content = st.one_of(
    st.fixed_dictionaries({"body": mostly(st.just("hello"), any_text)}),
    st.fixed_dictionaries(
        {
            "template": st.fixed_dictionaries(
                {"name": mostly(st.just("order_shipped"), any_text)},
                optional={"variables": st.lists(mostly(safe_text, any_text), max_size=3)},
            )
        }
    ),
)
# Sends that are valid or nearly so (each field usually right), to reach the use case...
near_sends = st.builds(
    lambda head, body, optional: {**head, **body, **optional},
    st.fixed_dictionaries(
        {
            "channel": mostly(st.sampled_from(["sms", "whatsapp"]), json_values),
            "to": mostly(st.sampled_from(["+15551234567", "+447911123456"]), json_values),
        }
    ),
    content,
    st.fixed_dictionaries(
        {},
        optional={
            "from": mostly(st.sampled_from(["+15550001111", "Acme"]), json_values),
            "meta": mostly(st.dictionaries(safe_text, safe_text, max_size=3), json_values),
        },
    ),
)
# ... and anything shaped like a send, to reach every refusal.
send_documents = near_sends | st.fixed_dictionaries(
    {},
    optional={
        "channel": json_values,
        "to": json_values,
        "body": json_values,
        "template": json_values,
        "from": json_values,
        "meta": json_values,
        "colour": json_values,
    },
)


def dumps(value: Any) -> bytes:
    return json.dumps(value).replace(json.dumps(HUGE_MARK), HUGE_INT).encode()


bodies = st.one_of(
    send_documents.map(dumps),
    json_values.map(dumps),
    st.binary(max_size=300),
    nested.map(str.encode),
    st.sampled_from([HUGE_INT.encode(), b"", b"{}", b"null", b"NaN", b"[]"]),
)
header_values = st.binary(max_size=60).filter(lambda b: not (set(b) & {0, 10, 13}))
HEADER_NAMES = [
    "content-type",
    "content-length",
    "idempotency-key",
    "last-event-id",
    "x-twilio-signature",
    "x-hub-signature-256",
    "accept",
    "prefer",
]
headers = st.dictionaries(st.sampled_from(HEADER_NAMES), header_values, max_size=4)
PARAMETER_NAMES = [
    "status",
    "channel",
    "to",
    "page",
    "per_page",
    "after",
    "types",
    "message_id",
    "hub.mode",
    "hub.verify_token",
    "hub.challenge",
    "stauts",
]
parameter_values = url_text | st.sampled_from(
    ["0", "1", "-1", "9" * 30, "sent", "sms", "+15551234567", "message.sent,bogus", ""]
)
# A query string: encoded pairs, or any bytes percent-encoded (not UTF-8 once decoded).
queries = st.one_of(
    st.lists(
        st.tuples(st.sampled_from(PARAMETER_NAMES) | url_text, parameter_values), max_size=5
    ).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode()),
    st.binary(max_size=60).map(lambda raw: quote_from_bytes(raw, safe="=&").encode()),
)
authorizations = st.sampled_from(["valid"] * 6 + ["none", "bogus"])


class Fixed:
    """Stands for ``st.data()`` in an explicit example: each draw answers the value given
    for its label, or the strategy's simplest value when none is given."""

    def __init__(self, **values: Any) -> None:
        self.values = values

    def draw(self, _strategy: st.SearchStrategy[Any], label: str) -> Any:
        if label in self.values:
            return self.values[label]
        defaults = {"sign": True, "headers": {}, "query": b""}
        return defaults[label]


def call(
    api: Api,
    method: str,
    path: str,
    *,
    query: bytes = b"",
    body: bytes | None = None,
    extra_headers: dict[str, bytes] | None = None,
    authorization: str = "valid",
) -> httpx.Response:
    request_headers: dict[str, str | bytes] = dict(extra_headers or {})
    if authorization == "valid":
        request_headers["authorization"] = f"Bearer {api.token}"
    elif authorization == "bogus":
        request_headers["authorization"] = "Bearer cnv_" + "A" * 43
    url = httpx.URL("http://conversa" + path, query=query)
    response = api.request(method, url, content=body, headers=request_headers)
    assert response.status_code < 500, (method, path, query, body, response.text)
    event(f"{method} {path.split('/')[2] if path.count('/') > 1 else path} {response.status_code}")
    return response


@pytest.fixture
def message_id(api: Api) -> str:
    """A message that exists, so that reading it and reporting on it run the whole way."""
    return str(api.service.send("sms", "+15551234567", {"body": "hello"}).message_id)


NESTED_META = (
    '{"channel": "sms", "to": "+15551234567", "body": "x", "meta": {"a": '
    + "[" * 1500
    + "]" * 1500
    + "}}"
)


@FUZZ
@given(
    body=mostly(near_sends.map(dumps), bodies),
    extra_headers=mostly(st.just({}), headers),
    query=mostly(st.just(b""), queries),
    authorization=authorizations,
)
@example(body=b"[" * (64 * 1024 - 1), extra_headers={}, query=b"", authorization="valid")
@example(body=NESTED_META.encode(), extra_headers={}, query=b"", authorization="valid")
@example(body=HUGE_INT.encode(), extra_headers={}, query=b"", authorization="valid")
@example(
    body=b'{"channel": "sms", "to": "+15551234567", "body": ' + HUGE_INT.encode() + b"}",
    extra_headers={},
    query=b"",
    authorization="valid",
)
@example(
    body=b'{"channel": "sms", "to": "+15551234567", "body": "x", "meta": {"n": '
    + HUGE_INT.encode()
    + b"}}",
    extra_headers={},
    query=b"",
    authorization="valid",
)
@example(
    body=b'{"channel": "sms", "to": "+15551234567", "template": {"name": "t", "variables": ['
    + HUGE_INT.encode()
    + b"]}}",
    extra_headers={},
    query=b"",
    authorization="valid",
)
@example(
    body=b'{"channel": "sms", "to": "+15551234567", "body": "\\ud800"}',
    extra_headers={},
    query=b"",
    authorization="valid",
)
def test_sending(
    api: Api,
    body: bytes,
    extra_headers: dict[str, bytes],
    query: bytes,
    authorization: str,
) -> None:
    extra_headers.setdefault("content-type", b"application/json")
    call(
        api,
        "POST",
        "/conversa/messages",
        query=query,
        body=body,
        extra_headers=extra_headers,
        authorization=authorization,
    )


READS = ["/conversa/messages", "/conversa/messages/{id}", "/conversa/events"]


@FUZZ
@given(
    path=st.sampled_from(READS),
    some_id=st.sampled_from(["existing", "random"]) | url_text,
    extra_headers=headers,
    query=queries,
    authorization=authorizations,
)
def test_reading(
    api: Api,
    message_id: str,
    path: str,
    some_id: str,
    extra_headers: dict[str, bytes],
    query: bytes,
    authorization: str,
) -> None:
    if path == "/conversa/events":
        # A live stream never ends: every case is sent with live=false last (which wins);
        # the live stream is tested in tests/e2e/test_events_stream.py.
        kept = [pair for pair in query.split(b"&") if not pair.startswith(b"live")]
        query = b"&".join([*kept, b"live=false"]).lstrip(b"&")
    identifier = {"existing": message_id, "random": str(uuid.uuid4())}.get(some_id, some_id)
    call(
        api,
        "GET",
        path.format(id=quote(identifier, safe="")),
        query=query,
        extra_headers=extra_headers,
        authorization=authorization,
    )


status_items = st.fixed_dictionaries(
    {
        "id": mostly(st.sampled_from(["wamid.1", "wamid.2"]), json_values),
        "status": mostly(st.sampled_from(["sent", "delivered", "read", "failed"]), json_values),
    },
    optional={
        "timestamp": mostly(st.sampled_from(["1700000000", HUGE_INT, "-1"]), json_values),
        "recipient_id": mostly(st.just("15551234567"), json_values),
        "biz_opaque_callback_data": mostly(st.uuids().map(str), json_values),
        "errors": mostly(
            st.lists(
                st.fixed_dictionaries({}, optional={"code": json_values, "title": json_values}),
                max_size=2,
            ),
            json_values,
        ),
    },
)
meta_values = st.fixed_dictionaries(
    {},
    optional={
        "statuses": mostly(st.lists(status_items, max_size=3), json_values),
        "messages": st.lists(json_values, max_size=2),
    },
)
meta_changes = st.fixed_dictionaries(
    {"field": mostly(st.just("messages"), json_values), "value": mostly(meta_values, json_values)}
)
meta_entries = st.fixed_dictionaries(
    {"changes": mostly(st.lists(mostly(meta_changes, json_values), max_size=2), json_values)}
)
meta_documents = st.fixed_dictionaries(
    {
        "object": mostly(st.just("whatsapp_business_account"), json_values),
        "entry": mostly(st.lists(mostly(meta_entries, json_values), max_size=2), json_values),
    }
)
twilio_forms = st.lists(
    st.tuples(
        st.sampled_from(["MessageSid", "MessageStatus", "SmsSid", "SmsStatus", "ErrorCode"])
        | url_text,
        st.sampled_from(["SM1", "delivered", "failed", "undelivered", "30003", "canceled"])
        | url_text
        | st.just("\x00"),
    ),
    max_size=6,
).map(lambda pairs: "&".join(f"{quote(k)}={quote(v)}" for k, v in pairs).encode())


HANDSHAKE = f"hub.mode=subscribe&hub.verify_token={VERIFY_TOKEN}&hub.challenge=42".encode()


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "POST"]),
    provider=st.sampled_from(["twilio", "whatsapp_cloud", "other"]),
    data=st.data(),
)
@example(method="POST", provider="whatsapp_cloud", data=Fixed(body=b"[" * 100_000))
@example(method="POST", provider="whatsapp_cloud", data=Fixed(body=HUGE_INT.encode()))
@example(
    method="POST",
    provider="twilio",
    data=Fixed(body=b"MessageSid=SM%00&MessageStatus=delivered"),
)
def test_webhooks(api: Api, message_id: str, method: str, provider: str, data: Any) -> None:
    """Bodies in the provider's own format, usually signed, so that the parsers run."""
    usual = {"twilio": twilio_forms, "whatsapp_cloud": meta_documents.map(dumps)}.get(
        provider, bodies
    )
    body: bytes = data.draw(mostly(usual, bodies), label="body")
    sign: bool = data.draw(mostly(st.just(True), st.just(False)), label="sign")
    extra_headers: dict[str, bytes] = data.draw(mostly(st.just({}), headers), label="headers")
    usual_query = st.just(HANDSHAKE) if method == "GET" else st.just(b"")
    query: bytes = data.draw(mostly(usual_query, queries), label="query")
    path = f"/conversa/webhooks/{provider}"
    if method == "POST" and sign:
        if provider == "whatsapp_cloud":
            extra_headers["x-hub-signature-256"] = meta_signature(APP_SECRET, body).encode()
        elif provider == "twilio":
            query = query or f"message_id={message_id}".encode()
            try:
                form = parse_qsl(body.decode(), keep_blank_values=True, errors="strict")
            except UnicodeDecodeError:
                form = []
            url = PUBLIC + path + "?" + query.decode("latin-1")
            extra_headers["x-twilio-signature"] = twilio_signature(TWILIO_TOKEN, url, form).encode()
    call(
        api,
        method,
        path,
        query=query,
        body=body if method == "POST" else None,
        extra_headers=extra_headers,
        authorization="none",
    )


@FUZZ
@given(
    method=st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]),
    path=st.sampled_from(
        ["/conversa/health", "/conversa/openapi.json", "/metrics", "/conversa/messages"]
    ),
    body=bodies,
    extra_headers=headers,
    query=queries,
    authorization=authorizations,
)
def test_every_other_method_and_open_endpoint(
    api: Api,
    method: str,
    path: str,
    body: bytes,
    extra_headers: dict[str, bytes],
    query: bytes,
    authorization: str,
) -> None:
    if path == "/conversa/messages" and method in ("GET", "POST"):
        method = "PUT"  # those two are fuzzed above
    call(
        api,
        method,
        path,
        query=query,
        body=body if method not in ("GET", "HEAD") else None,
        extra_headers=extra_headers,
        authorization=authorization,
    )
