"""Fake Vonage SMS API and Africa's Talking SMS API servers on loopback, beside the Twilio and
Meta fakes of :mod:`tests.fakes.providers` (same scripting: ``answer``, ``always``).

- :class:`FakeVonage`: ``POST /sms/json``, a form with ``api_key``/``api_secret``; answers
  HTTP 200 with one ``messages[]`` entry per 160-character part (153 when split), each with
  its own ``message-id``, or with a refused part (``vonage_error``).
- :class:`FakeAfricasTalking`: ``POST /version1/messaging`` with the ``apiKey`` header;
  answers 201 with ``SMSMessageData.Recipients[0]`` (``africastalking_error`` refuses).
"""

from __future__ import annotations

import secrets
from typing import Any

from tests.fakes.providers import Answer, FakeProvider, Received

VONAGE_KEY = "abcd1234"
VONAGE_SECRET = "vonage-api-secret-1"
AT_USERNAME = "conversa-test"
AT_API_KEY = "atsk_" + "5" * 40


def vonage_error(status: int, text: str = "Error") -> Answer:
    """Vonage's refusal: HTTP 200 all the same, one entry with a non-zero status."""
    return Answer.json(
        200, {"message-count": "1", "messages": [{"status": str(status), "error-text": text}]}
    )


class FakeVonage(FakeProvider):
    """``sent`` holds, per accepted message, the form and the part ids."""

    def __init__(self, api_key: str = VONAGE_KEY, api_secret: str = VONAGE_SECRET) -> None:
        super().__init__()
        self.api_key = api_key
        self.api_secret = api_secret

    def handle(self, received: Received) -> Answer:
        if received.method != "POST" or received.path != "/sms/json":
            return Answer(404, b"Not Found", "text/plain")
        if received.content_type != "application/x-www-form-urlencoded":
            return vonage_error(2, "Missing api_key")
        form = received.form
        if form.get("api_key") != self.api_key or form.get("api_secret") != self.api_secret:
            return vonage_error(4, "Bad Credentials")
        if not form.get("to") or not form.get("from") or not form.get("text"):
            return vonage_error(2, "Missing to param")
        text = form["text"]
        size = 70 if form.get("type") == "unicode" else 160
        count = 1 if len(text) <= size else -(-len(text) // (size - 7))
        parts = [secrets.token_hex(8).upper() for _ in range(count)]
        with self._lock:
            self.sent.append({"form": form, "parts": parts})
        entries = []
        for part in parts:
            entry = {
                "to": form["to"],
                "message-id": part,
                "status": "0",
                "remaining-balance": "3.14159265",
                "message-price": "0.03330000",
                "network": "12345",
            }
            if "client-ref" in form:
                entry["client-ref"] = form["client-ref"]
            entries.append(entry)
        return Answer.json(200, {"message-count": str(count), "messages": entries})


def africastalking_error(status_code: int, status: str) -> Answer:
    """A recipient Africa's Talking did not accept (HTTP 201 all the same)."""
    return Answer.json(
        201,
        {
            "SMSMessageData": {
                "Message": "Sent to 0/1 Total Cost: 0",
                "Recipients": [
                    {
                        "statusCode": status_code,
                        "number": "+254711000000",
                        "status": status,
                        "cost": "0",
                        "messageId": "None",
                    }
                ],
            }
        },
    )


class FakeAfricasTalking(FakeProvider):
    """``sent`` holds the accepted forms, each with its ``messageId``."""

    def __init__(self, username: str = AT_USERNAME, api_key: str = AT_API_KEY) -> None:
        super().__init__()
        self.username = username
        self.api_key = api_key

    def handle(self, received: Received) -> Answer:
        if received.method != "POST" or received.path != "/version1/messaging":
            return Answer(404, b"Not Found", "text/plain")
        if received.headers.get("apikey") != self.api_key:
            return Answer(401, b"The supplied authentication is invalid", "text/plain")
        form = received.form
        if form.get("username") != self.username:
            return Answer(401, b"The supplied authentication is invalid", "text/plain")
        if not form.get("to") or not form.get("message"):
            return Answer(400, b"Request is missing required form field 'to'", "text/plain")
        message_id = "ATXid_" + secrets.token_hex(16)
        record: dict[str, Any] = {**form, "messageId": message_id}
        with self._lock:
            self.sent.append(record)
        return Answer.json(
            201,
            {
                "SMSMessageData": {
                    "Message": "Sent to 1/1 Total Cost: KES 0.8000",
                    "Recipients": [
                        {
                            "statusCode": 101,
                            "number": form["to"],
                            "status": "Success",
                            "cost": "KES 0.8000",
                            "messageId": message_id,
                        }
                    ],
                }
            },
        )
