"""The OpenAPI description of ``/conversa/recipients`` (merged into the document by
:func:`conversa.adapters.http.openapi.openapi_document`)."""

from __future__ import annotations

from typing import Any

from conversa.adapters.http.openapi import (
    DATABASE_UNAVAILABLE,
    RATE_LIMITED,
    UNAUTHORIZED,
    UUID_STRING,
    _error,
    _json,
    _ref,
)

CONSENT_STATE = {"type": "string", "enum": ["opted_in", "opted_out", "unknown"]}
CHANNEL_CONSENT = {
    "type": "object",
    "required": ["all", "marketing"],
    "properties": {"all": CONSENT_STATE, "marketing": CONSENT_STATE},
}
NUMBER = {
    "name": "number",
    "in": "path",
    "required": True,
    "description": "The phone number, in E.164 or any common international spelling "
    "(URL-encode the +, as %2B)",
    "schema": {"type": "string"},
}

RECIPIENT_SCHEMAS: dict[str, Any] = {
    "Recipient": {
        "type": "object",
        "required": ["number", "consent", "history"],
        "properties": {
            "number": {"type": "string", "description": "E.164"},
            "consent": {
                "type": "object",
                "required": ["sms", "whatsapp"],
                "properties": {"sms": CHANNEL_CONSENT, "whatsapp": CHANNEL_CONSENT},
            },
            "history": {"type": "array", "items": _ref("ConsentChange")},
        },
    },
    "ConsentChange": {
        "type": "object",
        "description": "One change of consent, oldest first",
        "required": ["type", "channel", "scope", "source", "occurred_at"],
        "properties": {
            "type": {"type": "string", "enum": ["opted_out", "opted_in"]},
            "channel": {"type": "string", "enum": ["sms", "whatsapp", "all"]},
            "scope": {"type": "string", "enum": ["all", "marketing"]},
            "source": {"type": "string", "enum": ["keyword", "provider", "api", "import"]},
            "keyword": {"type": "string", "description": "The inbound keyword (source keyword)"},
            "code": {"type": "string", "description": "The provider's error or signal code"},
            "message_id": {**UUID_STRING, "description": "The message that caused it"},
            "by": {"type": "string", "description": "Who: the API token's name"},
            "occurred_at": {"type": "string", "format": "date-time"},
        },
    },
    "ConsentUpdate": {
        "type": "object",
        "additionalProperties": False,
        "required": ["channel", "status"],
        "properties": {
            "channel": {"type": "string", "enum": ["sms", "whatsapp", "all"]},
            "scope": {"type": "string", "enum": ["all", "marketing"], "default": "all"},
            "status": {"type": "string", "enum": ["opted_out", "opted_in"]},
        },
    },
}

RECIPIENT_PATHS: dict[str, Any] = {
    "/conversa/recipients/{number}": {
        "get": {
            "operationId": "showRecipient",
            "summary": "A number's consent per channel and scope, and its whole history",
            "security": [{"bearerAuth": []}],
            "parameters": [NUMBER],
            "responses": {
                "200": _json(_ref("Recipient"), "The recipient (unknown everywhere if never seen)"),
                "401": UNAUTHORIZED,
                "404": _error("A path that names no recipient (a number with a slash)"),
                "422": _error("Not a phone number (field number), or an unknown query parameter"),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
    "/conversa/recipients/{number}/consent": {
        "put": {
            "operationId": "changeConsent",
            "summary": "Opt a number out or in, on one channel or all, for all messages or "
            "marketing only (recorded with source api and the token's name; a state that "
            "already holds records nothing)",
            "security": [{"bearerAuth": []}],
            "parameters": [NUMBER],
            "requestBody": {
                "required": True,
                "content": {"application/json": {"schema": _ref("ConsentUpdate")}},
            },
            "responses": {
                "200": _json(_ref("Recipient"), "The recipient after the change"),
                "400": _error("The body is not a JSON object"),
                "401": UNAUTHORIZED,
                "404": _error("A path that names no recipient (a number with a slash)"),
                "413": _error("The body is too large"),
                "415": _error("The body is not JSON"),
                "422": _error("Invalid number, channel, scope or status (named in fields)"),
                "429": RATE_LIMITED,
                "503": DATABASE_UNAVAILABLE,
            },
        }
    },
}
