"""Our WhatsApp Cloud number as contacts see it, for the ``whatsapp_cloud`` driver."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

import httpx
from pydantic import SecretStr

from conversa.adapters.providers.common import json_body
from conversa.domain.errors import InvalidPhoneNumber
from conversa.domain.phone import PhoneNumber

log = logging.getLogger("conversa.driver.whatsapp_cloud")


class DisplayNumber:
    """Our WhatsApp number as contacts see it, in E.164: what Meta's webhooks carry as
    ``metadata.display_phone_number`` (the ``to`` of inbound messages), while a send names
    only the phone number id. Looked up once with ``GET /{version}/{phone-number-id}
    ?fields=display_phone_number`` and kept for the driver's life; a failed lookup is
    tried again after :data:`RETRY_SECONDS`, and never fails a send (that message then
    names no sender, and stays in the conversation without a business number).

    Why the Graph API rather than the webhooks' ``metadata``: the lookup works in
    whichever process sends (a worker never sees a webhook), from the first send on (a
    number nobody has written to yet has had no webhook), and needs no shared state.
    """

    #: After a failed lookup, the wait before the next one.
    RETRY_SECONDS = 60.0
    #: The lookup's own timeout: it runs after a send succeeded, on the send's thread.
    TIMEOUT_SECONDS = 5.0

    def __init__(
        self,
        url: str,
        token: SecretStr | None,
        client: httpx.Client,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``url``: the phone number's node, ``{api}/{version}/{phone-number-id}``."""
        self._url = url
        self.token = token
        self.client = client
        self.clock = clock
        self._number: str | None = None
        self._next_try = float("-inf")
        self._lock = threading.Lock()

    def get(self) -> str | None:
        """The number, or None while it cannot be found out."""
        if self._number is not None:
            return self._number
        with self._lock:  # one lookup at a time; the others wait for its answer
            if self._number is None and self.clock() >= self._next_try:
                self._number = self._look_up()
                if self._number is None:
                    self._next_try = self.clock() + self.RETRY_SECONDS
            return self._number

    def _look_up(self) -> str | None:
        token = self.token.get_secret_value() if self.token else ""
        try:
            response = self.client.get(
                self._url,
                params={"fields": "display_phone_number"},
                headers={"Authorization": f"Bearer {token}", "Accept": "application/json"},
                timeout=self.TIMEOUT_SECONDS,
            )
        except httpx.RequestError as error:
            log.warning("could not look up the display number: %s", type(error).__name__)
            return None
        payload = json_body(response)
        display = payload.get("display_phone_number") if isinstance(payload, dict) else None
        if not response.is_success or not isinstance(display, str):
            log.warning(
                "could not look up the display number: the Graph API answered HTTP %d%s",
                response.status_code,
                "" if response.is_success else " (an error)",
            )
            return None
        try:
            # Meta writes it for people ("+1 555-555-5555"); webhooks carry its digits.
            text = display.strip()
            text = text if text.startswith("+") else "+" + text
            return PhoneNumber.parse(text, field="display_phone_number").e164
        except InvalidPhoneNumber:
            log.warning("the display number the Graph API answered is not a phone number")
            return None
