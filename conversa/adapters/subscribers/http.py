"""The built-in subscriber that posts each lifecycle event to the application's own URL.

Each request is signed so that the receiver can check it came from Conversa and refuse
replays of old requests:

    Conversa-Event-Id:  <event id>            (the same on every retry: deduplicate on it)
    Conversa-Timestamp: <unix seconds>
    Conversa-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>

where the HMAC is computed with ``CONVERSA_EVENTS_SECRET`` over
``<timestamp> + "." + <raw request body>``. The body is the event as JSON.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable
from urllib.parse import urlsplit

import httpx

from conversa.events import LifecycleEvent


class EventNotAccepted(Exception):
    """The receiver did not answer 2xx (or did not answer): the event is tried again."""


def signature(secret: str, timestamp: str, body: bytes) -> str:
    return hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()


class HttpEventSubscriber:
    def __init__(
        self,
        url: str,
        secret: str,
        client: httpx.Client,
        *,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url
        self._secret = secret
        self.client = client
        self.clock = clock
        # Errors name the receiver by host only: the URL may carry a token in its query.
        self._where = urlsplit(url).netloc

    def __call__(self, event: LifecycleEvent) -> None:
        body = json.dumps(event.as_dict(), separators=(",", ":"), sort_keys=True).encode()
        timestamp = str(int(self.clock()))
        headers = {
            "Content-Type": "application/json",
            "Conversa-Event-Id": str(event.event_id),
            "Conversa-Timestamp": timestamp,
            "Conversa-Signature": f"t={timestamp},v1={signature(self._secret, timestamp, body)}",
        }
        try:
            response = self.client.post(self.url, content=body, headers=headers)
        except httpx.RequestError as error:
            raise EventNotAccepted(
                f"{self._where} did not answer ({type(error).__name__})"
            ) from None
        if not 200 <= response.status_code < 300:
            raise EventNotAccepted(f"{self._where} answered HTTP {response.status_code}")
