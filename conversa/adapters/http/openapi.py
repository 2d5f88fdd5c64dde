"""The OpenAPI 3 document of the HTTP API (served at ``/conversa/openapi.json``)."""

from __future__ import annotations

from functools import cache
from typing import Any

from conversa._version import installed_version
from conversa.adapters.http.events import (
    KEEP_ALIVE_SECONDS,
    MAX_POSITION,
    RETRY_MILLISECONDS,
    TYPE_NAMES,
)
from conversa.adapters.http.messages import DEFAULT_PER_PAGE, MAX_PER_PAGE
from conversa.app.accept import MAX_BATCH
from conversa.app.meta import MAX_META_BYTES, MAX_META_DEPTH
from conversa.app.service import MAX_IDEMPOTENCY_KEY
from conversa.domain.channel import Channel
from conversa.domain.content import MAX_TEMPLATE_NAME, MAX_TEMPLATE_VARIABLES, MAX_VARIABLE_LENGTH
from conversa.domain.sending import Category
from conversa.domain.status import Status


#: The query parameters of every paged list.
def _path(name: str) -> dict[str, Any]:
    """A path parameter: any text (an id that is not one answers 404, as an unknown id)."""
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


MESSAGE_ID = _path("message_id")
CONVERSATION_ID = _path("conversation_id")
PAGING: list[dict[str, Any]] = [
    {
        "name": "page",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": 1_000_000},
    },
    {
        "name": "per_page",
        "in": "query",
        "schema": {
            "type": "integer",
            "minimum": 1,
            "maximum": MAX_PER_PAGE,
            "default": DEFAULT_PER_PAGE,
        },
    },
]

CHANNELS = [c.value for c in Channel]
STATUSES = [*(s.value for s in Status), "received"]
DIRECTIONS = ["outbound", "inbound"]
UUID_STRING = {"type": "string", "format": "uuid"}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _error(description: str, **headers: dict[str, Any]) -> dict[str, Any]:
    response = _json(_ref("Error"), description)
    if headers:
        response["headers"] = headers
    return response


RETRY_AFTER = {"description": "Seconds to wait", "schema": {"type": "integer", "minimum": 1}}
UNAUTHORIZED = _error("No valid bearer token")
RATE_LIMITED = _error("Rate limit of the token exceeded", **{"Retry-After": RETRY_AFTER})
DATABASE_UNAVAILABLE = _error(
    "The database could not be reached in time (code database_unavailable)",
    **{"Retry-After": RETRY_AFTER},
)
#: What an endpoint with a token may answer 503 for: the database, or its rate limit.
APPLICATION_UNAVAILABLE = _error(
    "database_unavailable: the database could not be reached in time; or "
    "rate_limit_unavailable: the rate limit cannot be counted (its storage does not answer) "
    "and the server is set to refuse such requests (CONVERSA_RATE_LIMIT_ON_ERROR=closed)",
    **{"Retry-After": RETRY_AFTER},
)
NULLABLE_STRING = {"type": "string", "nullable": True}
CONSENT_OVERRIDE_NOT_ALLOWED = _error(
    'consent_override_not_allowed: "consent": "ignore" from a token created without '
    "--allow-consent-override"
)

TEMPLATE = {
    "type": "object",
    "additionalProperties": False,
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": MAX_TEMPLATE_NAME},
        "variables": {
            "type": "array",
            "maxItems": MAX_TEMPLATE_VARIABLES,
            "items": {"type": "string", "maxLength": MAX_VARIABLE_LENGTH},
        },
    },
}

#: The sending terms, as the single send and each batch item take them.
SENDING_TERMS: dict[str, Any] = {
    "category": {
        "type": "string",
        "enum": [c.value for c in Category],
        "default": "transactional",
        "description": "marketing: quiet hours and marketing opt-outs apply",
    },
    "consent": {
        "type": "string",
        "enum": ["check", "ignore"],
        "default": "check",
        "description": "ignore: sent even to an opted-out recipient (legally required "
        "notices); only a token created with --allow-consent-override may ask (else 403 "
        "consent_override_not_allowed)",
    },
    "send_at": {
        "type": "string",
        "format": "date-time",
        "description": "RFC 3339 with an offset, at most 35 days ahead: the message is queued "
        "with scheduled_at and attempted then (a time already past: at once)",
    },
}

SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                    "request_id": {"type": "string"},
                },
            }
        },
    },
    "Template": TEMPLATE,
    "SendMessage": {
        "type": "object",
        "additionalProperties": False,
        "description": "Exactly one of body or template. Bodies: up to 1,600 characters on "
        "sms, 4,096 on whatsapp. channel and to are required, except on a reply (reply_to), "
        "which takes them (and from) from the inbound message it answers.",
        "properties": {
            "channel": {"type": "string", "enum": CHANNELS},
            "to": {"type": "string", "description": "E.164, e.g. +15551234567"},
            "body": {"type": "string", "minLength": 1, "maxLength": 4096},
            "template": _ref("Template"),
            "from": {"type": "string", "minLength": 1, "maxLength": 64},
            "meta": {
                "type": "object",
                "description": f"Any JSON object up to {MAX_META_BYTES} bytes and "
                f"{MAX_META_DEPTH} levels of nesting, stored as given",
            },
            **SENDING_TERMS,
            "reply_to": {
                "type": "string",
                "format": "uuid",
                "description": "The id of an inbound message: the reply goes on its channel, to "
                "its sender, from the number it reached; on WhatsApp Cloud it quotes it",
            },
            "fallback": {
                "type": "object",
                "description": "On a WhatsApp send: the same content goes out once as an SMS "
                "if the WhatsApp message fails for a reason about the recipient or is not "
                "delivered within after_seconds",
                "required": ["channel", "after_seconds"],
                "properties": {
                    "channel": {"type": "string", "enum": ["sms"]},
                    "after_seconds": {"type": "integer", "minimum": 1, "maximum": 2592000},
                },
                "additionalProperties": False,
            },
        },
        "oneOf": [{"required": ["body"]}, {"required": ["template"]}],
    },
    "BatchItem": {
        "type": "object",
        "additionalProperties": False,
        "description": "A single send's body, and its idempotency key. channel and to are "
        "required, except on a reply (reply_to).",
        "properties": {
            "channel": {"type": "string", "enum": CHANNELS},
            "to": {"type": "string", "description": "E.164, e.g. +15551234567"},
            "body": {"type": "string", "minLength": 1, "maxLength": 4096},
            "template": _ref("Template"),
            "from": {"type": "string", "minLength": 1, "maxLength": 64},
            "meta": {"type": "object"},
            **SENDING_TERMS,
            "reply_to": {
                "type": "string",
                "format": "uuid",
                "description": "The id of an inbound message, as on a single send",
            },
            "idempotency_key": {
                "type": "string",
                "minLength": 1,
                "maxLength": MAX_IDEMPOTENCY_KEY,
                "pattern": "^[!-~]+$",
            },
        },
        "oneOf": [{"required": ["body"]}, {"required": ["template"]}],
    },
    "SendBatch": {
        "type": "object",
        "additionalProperties": False,
        "required": ["messages"],
        "properties": {
            "messages": {
                "type": "array",
                "minItems": 1,
                "maxItems": MAX_BATCH,
                "items": _ref("BatchItem"),
            }
        },
    },
    "BatchItemResult": {
        "type": "object",
        "required": ["index", "status"],
        "description": "status 201: recorded now; 200: recorded before with its key (the "
        "stored message); 422: refused, with the error.",
        "properties": {
            "index": {"type": "integer", "minimum": 0},
            "status": {"type": "integer", "enum": [200, 201, 422]},
            "message": _ref("Message"),
            "error": {
                "type": "object",
                "required": ["code", "message", "fields"],
                "properties": {
                    "code": {"type": "string"},
                    "message": {"type": "string"},
                    "fields": {"type": "object", "additionalProperties": {"type": "string"}},
                },
            },
        },
    },
    "BatchResult": {
        "type": "object",
        "required": ["data"],
        "properties": {"data": {"type": "array", "items": _ref("BatchItemResult")}},
    },
    "MessageError": {
        "type": "object",
        "nullable": True,
        "required": ["code", "message"],
        "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
    },
    "Message": {
        "type": "object",
        "required": [
            "id",
            "channel",
            "to",
            "from",
            "driver",
            "status",
            "provider_message_id",
            "attempts",
            "error",
            "idempotency_key",
            "meta",
            "created_at",
            "updated_at",
        ],
        "properties": {
            "id": {"type": "string", "format": "uuid"},
            "direction": {"type": "string", "enum": DIRECTIONS},
            "channel": {"type": "string", "enum": CHANNELS},
            "to": {"type": "string", "description": "Inbound: our number"},
            "from": {
                **NULLABLE_STRING,
                "description": "Inbound: the contact. Outbound: the request's from, else the "
                "number the driver sent from (null until it is sent)",
            },
            "driver": {"type": "string"},
            "status": {"type": "string", "enum": STATUSES},
            "body": {"type": "string", "description": "Absent when bodies are not stored"},
            "template": _ref("Template"),
            "provider_message_id": NULLABLE_STRING,
            "attempts": {"type": "integer", "minimum": 0},
            "error": _ref("MessageError"),
            "idempotency_key": NULLABLE_STRING,
            "meta": {"type": "object"},
            "created_at": {"type": "string", "format": "date-time"},
            "updated_at": {"type": "string", "format": "date-time"},
            "conversation_id": {**UUID_STRING, "nullable": True},
            "category": {
                "type": "string",
                "nullable": True,
                "enum": [*(c.value for c in Category), None],
                "description": "Outbound: transactional or marketing",
            },
            "scheduled_at": {
                "type": "string",
                "format": "date-time",
                "nullable": True,
                "description": "When the message is to be attempted (send_at, or quiet hours)",
            },
            "reply_to": {
                **UUID_STRING,
                "nullable": True,
                "description": "The inbound message this one answers",
            },
            "media": {
                "type": "array",
                "description": "Inbound: the attachments, each fetched with "
                "GET /conversa/messages/{id}/media/{n} (n from 0)",
                "items": {
                    "type": "object",
                    "required": ["content_type"],
                    "properties": {
                        "content_type": {"type": "string"},
                        "caption": {"type": "string"},
                        "filename": {"type": "string"},
                    },
                },
            },
            "fallback_message_id": {
                "type": "string",
                "format": "uuid",
                "description": "The SMS this WhatsApp message fell back to (one message)",
            },
            "fallback_of": {
                "type": "string",
                "format": "uuid",
                "description": "The WhatsApp message this SMS is the fallback of (one message)",
            },
        },
    },
    "Event": {
        "type": "object",
        "required": ["type", "occurred_at", "version"],
        "properties": {
            "type": {
                "type": "string",
                "description": "queued (with category and scheduled_at), attempt_started, "
                "retried, sent, delivered, read, failed, cancelled, ...",
            },
            "occurred_at": {"type": "string", "format": "date-time"},
            "version": {"type": "integer", "minimum": 1},
        },
        "additionalProperties": True,
    },
    "MessageWithEvents": {
        "allOf": [
            _ref("Message"),
            {
                "type": "object",
                "required": ["events"],
                "properties": {"events": {"type": "array", "items": _ref("Event")}},
            },
        ]
    },
    "Conversation": {
        "type": "object",
        "required": [
            "id",
            "channel",
            "contact",
            "business_number",
            "last_message_at",
            "last_inbound_at",
            "window_expires_at",
            "inbound_count",
            "outbound_count",
        ],
        "properties": {
            "id": UUID_STRING,
            "channel": {"type": "string", "enum": CHANNELS},
            "contact": {"type": "string"},
            "business_number": NULLABLE_STRING,
            "last_message_at": {"type": "string", "format": "date-time"},
            "last_inbound_at": {"type": "string", "format": "date-time", "nullable": True},
            "window_expires_at": {
                "type": "string",
                "format": "date-time",
                "nullable": True,
                "description": "WhatsApp: when the 24-hour customer service window closes",
            },
            "inbound_count": {"type": "integer", "minimum": 0},
            "outbound_count": {"type": "integer", "minimum": 0},
        },
    },
    "ConversationList": {
        "type": "object",
        "required": ["data", "meta"],
        "properties": {
            "data": {"type": "array", "items": _ref("Conversation")},
            "meta": _ref("PageMeta"),
        },
    },
    "ConversationThread": {
        "allOf": [
            _ref("Conversation"),
            {
                "type": "object",
                "required": ["messages", "meta"],
                "properties": {
                    "messages": {"type": "array", "items": _ref("Message")},
                    "meta": _ref("PageMeta"),
                },
            },
        ]
    },
    "PageMeta": {
        "type": "object",
        "required": ["page", "per_page", "total"],
        "properties": {
            "page": {"type": "integer", "minimum": 1},
            "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
            "total": {"type": "integer", "minimum": 0},
        },
    },
    "MessageList": {
        "type": "object",
        "required": ["data", "meta"],
        "properties": {
            "data": {"type": "array", "items": _ref("Message")},
            "meta": {
                "type": "object",
                "required": ["page", "per_page", "total"],
                "properties": {
                    "page": {"type": "integer", "minimum": 1},
                    "per_page": {"type": "integer", "minimum": 1, "maximum": MAX_PER_PAGE},
                    "total": {"type": "integer", "minimum": 0},
                },
            },
        },
    },
    "WebhookReceipt": {
        "type": "object",
        "required": ["received", "inbound_messages"],
        "properties": {
            "received": {"type": "integer", "minimum": 0},
            "inbound_messages": {"type": "integer", "minimum": 0},
        },
    },
    "Health": {
        "type": "object",
        "required": ["status"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "reason": {"type": "string", "description": "Why not ready (when unavailable)"},
        },
    },
}

PATHS: dict[str, Any] = {
    "/conversa/messages": {
        "post": {
            "operationId": "sendMessage",
            "summary": "Send an SMS or WhatsApp message",
            "security": [{"bearerAuth": []}],
            "parameters": [
                {
                    "name": "Idempotency-Key",
                    "in": "header",
                    "required": False,
                    "description": "The same key with the same request sends once; scoped "
                    "to the token.",
                    "schema": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": MAX_IDEMPOTENCY_KEY,
                        "pattern": "^[!-~]+$",
                    },
                },
                {
                    "name": "Prefer",
                    "in": "header",
                    "required": False,
                    "description": "respond-async: answer 202 once the message is recorded "
                    "(status queued); the worker's dispatcher sends it (RFC 7240).",
                    "schema": {"type": "string", "example": "respond-async"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("SendMessage")}},
            },
            "responses": {
                "201": _json(_ref("Message"), "Recorded and handed to the driver"),
                "202": {
                    **_json(
                        _ref("Message"),
                        "Prefer: respond-async: recorded (status queued); the dispatcher sends it",
                    ),
                    "headers": {
                        "Preference-Applied": {
                            "schema": {"type": "string", "enum": ["respond-async"]}
                        }
                    },
                },
                "200": {
                    **_json(_ref("Message"), "Idempotent replay: the original message"),
                    "headers": {
                        "Idempotent-Replayed": {"schema": {"type": "string", "enum": ["true"]}}
                    },
                },
                "400": _error("Malformed JSON"),
                "401": UNAUTHORIZED,
                "403": CONSENT_OVERRIDE_NOT_ALLOWED,
                "413": _error("Body over 64 KiB"),
                "415": _error("Not a JSON body"),
                "422": _error(
                    "Invalid field, idempotency_key_mismatch, or a query parameter (this "
                    "endpoint takes none)"
                ),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        },
        "get": {
            "operationId": "listMessages",
            "summary": "The message log, newest first",
            "security": [{"bearerAuth": []}],
            "parameters": [
                {"name": "status", "in": "query", "schema": {"type": "string", "enum": STATUSES}},
                {
                    "name": "direction",
                    "in": "query",
                    "schema": {"type": "string", "enum": DIRECTIONS},
                },
                {"name": "channel", "in": "query", "schema": {"type": "string", "enum": CHANNELS}},
                {
                    "name": "to",
                    "in": "query",
                    "description": "A phone number in any common format",
                    "schema": {"type": "string"},
                },
                *PAGING,
            ],
            "responses": {
                "200": _json(_ref("MessageList"), "One page of messages"),
                "401": UNAUTHORIZED,
                "422": _error("Invalid filter, or a query parameter this endpoint does not take"),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        },
    },
    "/conversa/messages/batch": {
        "post": {
            "operationId": "sendBatch",
            "summary": "Queue up to 1,000 messages; each is recorded or refused on its own",
            "description": "Each item is validated and recorded as a single send with "
            "Prefer: respond-async would be; the dispatcher sends the recorded ones. An "
            "item's idempotency_key is scoped to the token and replays like the header.",
            "security": [{"bearerAuth": []}],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("SendBatch")}},
            },
            "responses": {
                "202": _json(_ref("BatchResult"), "One result per item, in order"),
                "400": _error("Malformed JSON"),
                "401": UNAUTHORIZED,
                "403": CONSENT_OVERRIDE_NOT_ALLOWED,
                "413": _error("Body over 8 MiB"),
                "415": _error("Not a JSON body"),
                "422": _error(
                    "messages is not a list of 1 to 1,000 items, an unknown field, or a "
                    "query parameter (this endpoint takes none)"
                ),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/messages/{message_id}": {
        "get": {
            "operationId": "showMessage",
            "summary": "One message and its whole history, oldest first",
            "security": [{"bearerAuth": []}],
            "parameters": [MESSAGE_ID],
            "responses": {
                "200": _json(_ref("MessageWithEvents"), "The message and its events"),
                "401": UNAUTHORIZED,
                "404": _error("No such message"),
                "422": _error("A query parameter this endpoint does not take"),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/messages/{message_id}/cancel": {
        "post": {
            "operationId": "cancelMessage",
            "summary": "Cancel a message no attempt has started for: it is never sent",
            "description": "A scheduled message (send_at, or deferred by quiet hours) or one "
            "queued for the dispatcher and not yet claimed is recorded cancelled (a final "
            "status). Cancelling it again answers the cancelled message. Once an attempt has "
            "started (or for a synchronous send, attempted by its request at once): 409 "
            "already_attempted.",
            "security": [{"bearerAuth": []}],
            "parameters": [MESSAGE_ID],
            "responses": {
                "200": _json(_ref("Message"), "The cancelled message"),
                "401": UNAUTHORIZED,
                "404": _error("No such outbound message"),
                "409": _error("already_attempted: an attempt to send it has started"),
                "422": _error("A query parameter this endpoint does not take"),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/messages/{message_id}/media/{n}": {
        "get": {
            "operationId": "messageMedia",
            "summary": "An inbound message's attachment n (from 0), streamed from its provider",
            "description": "Fetched through the provider's authenticated download (Twilio's "
            "media URL with basic auth; Meta's media lookup, then its URL, with the token) "
            "and never stored; up to CONVERSA_MEDIA_MAX_BYTES.",
            "security": [{"bearerAuth": []}],
            "parameters": [
                MESSAGE_ID,
                _path("n"),
            ],
            "responses": {
                "200": {
                    "description": "The attachment, with its content type",
                    "content": {"*/*": {"schema": {"type": "string", "format": "binary"}}},
                },
                "401": UNAUTHORIZED,
                "404": _error("No such inbound message, or no attachment n"),
                "422": _error("A query parameter this endpoint does not take"),
                "429": RATE_LIMITED,
                "502": _error(
                    "media_unavailable: the provider refused or failed; media_too_large: over "
                    "CONVERSA_MEDIA_MAX_BYTES"
                ),
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/conversations": {
        "get": {
            "operationId": "listConversations",
            "summary": "Conversations (channel, our number, the contact), newest activity first",
            "security": [{"bearerAuth": []}],
            "parameters": [
                {"name": "channel", "in": "query", "schema": {"type": "string", "enum": CHANNELS}},
                {
                    "name": "contact",
                    "in": "query",
                    "description": "The contact's number, in any common format",
                    "schema": {"type": "string"},
                },
                *PAGING,
            ],
            "responses": {
                "200": _json(_ref("ConversationList"), "One page of conversations"),
                "401": UNAUTHORIZED,
                "422": _error("Invalid filter, or a query parameter this endpoint does not take"),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/conversations/{conversation_id}": {
        "get": {
            "operationId": "showConversation",
            "summary": "A conversation and one page of its messages, both directions, oldest first",
            "security": [{"bearerAuth": []}],
            "parameters": [
                CONVERSATION_ID,
                *PAGING,
            ],
            "responses": {
                "200": _json(_ref("ConversationThread"), "The conversation and its messages"),
                "401": UNAUTHORIZED,
                "404": _error("No such conversation"),
                "422": _error("Invalid page, or a query parameter this endpoint does not take"),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/events": {
        "get": {
            "operationId": "streamEvents",
            "summary": "The lifecycle events as a Server-Sent Events stream",
            "description": "Every lifecycle event in the order of the event store, from a "
            "position on; then, unless live is false, each new one as it happens. One frame "
            "per event: `id: <event_id>`, `event: <type>`, `data: <the event as JSON>`. The "
            f"stream starts with `retry: {RETRY_MILLISECONDS}` and sends the comment "
            f"`: keep-alive` after {KEEP_ALIVE_SECONDS:g} seconds of silence. Resume after the "
            "last event seen with Last-Event-ID (browsers send it when they reconnect) or "
            "after; events left out by types are not sent again.",
            "security": [{"bearerAuth": []}],
            "parameters": [
                {
                    "name": "Last-Event-ID",
                    "in": "header",
                    "required": False,
                    "description": "Send the events after this one; takes precedence over after.",
                    "schema": {"type": "string", "pattern": "^[0-9]+$"},
                },
                {
                    "name": "after",
                    "in": "query",
                    "description": "Send the events after this position; 0 (the default) "
                    "sends them all.",
                    "schema": {"type": "integer", "minimum": 0, "maximum": MAX_POSITION},
                },
                {
                    "name": "types",
                    "in": "query",
                    "description": "Only these event types, comma-separated.",
                    "style": "form",
                    "explode": False,
                    "schema": {
                        "type": "array",
                        "minItems": 1,
                        "items": {"type": "string", "enum": list(TYPE_NAMES)},
                    },
                },
                {
                    "name": "live",
                    "in": "query",
                    "description": "false: end the stream once every stored event is sent.",
                    "schema": {"type": "boolean", "default": True},
                },
            ],
            "responses": {
                "200": {
                    "description": "The event stream",
                    "content": {"text/event-stream": {"schema": {"type": "string"}}},
                },
                "401": UNAUTHORIZED,
                "422": _error(
                    "Invalid position, event type or live flag, or a query parameter this "
                    "endpoint does not take"
                ),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/webhooks/{provider}": {
        "parameters": [
            {
                "name": "provider",
                "in": "path",
                "required": True,
                "schema": {
                    "type": "string",
                    "enum": ["twilio", "whatsapp_cloud", "vonage", "africastalking"],
                },
            }
        ],
        "get": {
            "operationId": "webhookHandshake",
            "summary": "Meta's subscription handshake; Vonage's webhooks sent with GET",
            "parameters": [
                {"name": "hub.mode", "in": "query", "schema": {"type": "string"}},
                {"name": "hub.verify_token", "in": "query", "schema": {"type": "string"}},
                {"name": "hub.challenge", "in": "query", "schema": {"type": "string"}},
                {
                    "name": "sig",
                    "in": "query",
                    "description": "Vonage: the signature of the other query parameters",
                    "schema": {"type": "string"},
                },
            ],
            "responses": {
                "200": {
                    "description": "Meta: the challenge, echoed; Vonage: verified and processed",
                    "content": {
                        "text/plain": {"schema": {"type": "string"}},
                        "application/json": {"schema": _ref("WebhookReceipt")},
                    },
                },
                "400": _error("Vonage: not a delivery receipt or an inbound SMS"),
                "403": _error(
                    "The verify token or signature does not match, or none is configured"
                ),
                "404": _error("Unknown provider"),
                "405": _error("Twilio and Africa's Talking send their callbacks with POST"),
            },
        },
        "post": {
            "operationId": "webhookCallback",
            "summary": "A provider's status callback (signed)",
            "parameters": [
                {"name": "X-Twilio-Signature", "in": "header", "schema": {"type": "string"}},
                {"name": "X-Hub-Signature-256", "in": "header", "schema": {"type": "string"}},
                {
                    "name": "message_id",
                    "in": "query",
                    "description": "Our message id, in the callback URL given to Twilio or Vonage",
                    "schema": {"type": "string"},
                },
                {
                    "name": "token",
                    "in": "query",
                    "description": "Africa's Talking: the secret token of the delivery-report URL",
                    "schema": {"type": "string"},
                },
            ],
            "requestBody": {
                "required": True,
                "content": {
                    "application/x-www-form-urlencoded": {"schema": {"type": "object"}},
                    "application/json": {"schema": {"type": "object"}},
                },
            },
            "responses": {
                "200": _json(_ref("WebhookReceipt"), "Verified and processed"),
                "400": _error("Not the provider's format"),
                "403": _error("Missing or wrong signature, or no secret configured"),
                "404": _error("Unknown provider"),
                "413": _error("Body over 1 MiB"),
                "503": DATABASE_UNAVAILABLE,
            },
        },
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics of this process",
            "responses": {
                "200": {
                    "description": "Prometheus text format",
                    "content": {"text/plain": {"schema": {"type": "string"}}},
                }
            },
        }
    },
    "/conversa/health": {
        "get": {
            "operationId": "health",
            "summary": "Whether the database answers",
            "responses": {
                "200": _json(_ref("Health"), "The database answers"),
                "503": _json(_ref("Health"), "The database does not answer"),
            },
        }
    },
    "/conversa/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This document",
            "responses": {
                "200": {
                    "description": "The OpenAPI document",
                    "content": {"application/json": {"schema": {"type": "object"}}},
                }
            },
        }
    },
}


def _with_rate_limit_unavailable(paths: dict[str, Any]) -> dict[str, Any]:
    """Every application endpoint (those with a token) may also answer 503 when its rate
    limit cannot be counted: said here once rather than in each operation above."""
    for item in paths.values():
        for operation in item.values():
            if isinstance(operation, dict) and "security" in operation:
                operation["responses"]["503"] = APPLICATION_UNAVAILABLE
    return paths


@cache
def openapi_document() -> dict[str, Any]:
    from conversa.adapters.http.openapi_recipients import RECIPIENT_PATHS, RECIPIENT_SCHEMAS

    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Conversa",
            "version": installed_version(),
            "description": "SMS and WhatsApp delivery with an exact record of every message. "
            "The application endpoints (those that need a token) answer 422 naming a query "
            "parameter they do not define; the webhook endpoints take any.",
        },
        "paths": _with_rate_limit_unavailable({**PATHS, **RECIPIENT_PATHS}),
        "components": {
            "schemas": {**SCHEMAS, **RECIPIENT_SCHEMAS},
            "securitySchemes": {"bearerAuth": {"type": "http", "scheme": "bearer"}},
        },
    }
