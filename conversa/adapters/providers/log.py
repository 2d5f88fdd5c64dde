"""The ``log`` driver: writes each message to the log instead of sending it."""

from __future__ import annotations

import logging
from uuid import uuid4

from conversa.adapters.providers.templates import TemplateCatalog, UnknownTemplate
from conversa.app.ports import DriverResult, OutboundMessage
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Template

log = logging.getLogger("conversa.driver.log")


class LogDriver:
    """Serves both channels, always. The number is masked; the text is logged only when
    bodies may be stored (``CONVERSA_STORE_BODY``)."""

    name = "log"

    def __init__(self, *, log_text: bool, templates: TemplateCatalog | None = None) -> None:
        self.log_text = log_text
        self.templates = templates or TemplateCatalog()

    def unavailable_reason(self, channel: Channel) -> str | None:  # noqa: ARG002 - serves all
        return None

    def validate(self, message: OutboundMessage) -> None:
        """Any body will do. A template must be one the templates file defines, when there
        is one, so that a name that would fail in production fails here too."""
        content = message.content
        if isinstance(content, Template) and self.templates and content.name not in self.templates:
            raise UnknownTemplate(content.name, self.name, known=False)

    def send(self, message: OutboundMessage) -> DriverResult:
        provider_message_id = f"log-{uuid4().hex}"
        if log.isEnabledFor(logging.INFO):
            self._log(message, provider_message_id)
        return DriverResult(provider_message_id=provider_message_id, response={"driver": "log"})

    def _log(self, message: OutboundMessage, provider_message_id: str) -> None:
        content = message.content
        if isinstance(content, Body):
            what = (
                f"body={content.text!r}" if self.log_text else f"body=<{len(content.text)} chars>"
            )
        else:
            variables = list(content.variables) if self.log_text else f"<{len(content.variables)}>"
            what = f"template={content.name!r} variables={variables}"
        log.info(
            "send channel=%s to=%s message_id=%s provider_message_id=%s %s",
            message.channel,
            message.to.masked(),
            message.message_id,
            provider_message_id,
            what,
        )
