"""Consent keywords on inbound messages: STOP, START, HELP and their kin.

An inbound message whose whole text (trimmed, in any case) is an opt-out keyword
(``CONVERSA_OPT_OUT_KEYWORDS``) opts its sender out of that channel (scope ``all``,
source ``keyword``); an opt-in keyword (``CONVERSA_OPT_IN_KEYWORDS``) opts them in again.
The inbound message and the consent change are saved in one transaction, so a provider's
retry of the same inbound message (the same id, refused by the store) records nothing
new, and a change that already holds records nothing either.

``HELP`` and ``INFO`` are answered with ``CONVERSA_HELP_REPLY``, and the keywords with
``CONVERSA_OPT_OUT_REPLY`` / ``CONVERSA_OPT_IN_REPLY`` when set: a reply to the inbound
message, sent once (its idempotency key derives from the inbound message's id) and past
the consent check (the one message the rules allow after a STOP).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from eventsourcing.persistence import IntegrityError

from conversa.app.inbound import InboundReport, inbound_message
from conversa.app.settings import Settings
from conversa.domain.recipient import OPTED_IN, OPTED_OUT, SCOPE_ALL

if TYPE_CHECKING:
    from conversa.app.service import ConversaService

log = logging.getLogger(__name__)

HELP_KEYWORDS = ("HELP", "INFO")
#: The idempotency scope of the automatic replies (keys: the inbound message's id).
REPLY_SCOPE = "conversa:consent-reply"
HELP = "help"


def _words(raw: str) -> frozenset[str]:
    return frozenset(word.strip().upper() for word in raw.split(",") if word.strip())


@dataclass(frozen=True, slots=True)
class Keywords:
    opt_out: frozenset[str]
    opt_in: frozenset[str]
    replies: dict[str, str | None]

    @classmethod
    def of(cls, settings: Settings) -> Keywords:
        return cls(
            opt_out=_words(settings.opt_out_keywords),
            opt_in=_words(settings.opt_in_keywords),
            replies={
                OPTED_OUT: settings.opt_out_reply,
                OPTED_IN: settings.opt_in_reply,
                HELP: settings.help_reply,
            },
        )

    def match(self, body: str | None) -> tuple[str, str] | None:
        """``(OPTED_OUT | OPTED_IN | HELP, the keyword)`` for a keyword message, else None."""
        if body is None:
            return None
        word = body.strip().upper()
        if word in self.opt_out:
            return OPTED_OUT, word
        if word in self.opt_in:
            return OPTED_IN, word
        if word in HELP_KEYWORDS:
            return HELP, word
        return None


def record_inbound_with_keywords(service: ConversaService, report: InboundReport) -> bool:
    """Record an inbound message, with the consent change its keyword makes; answer the
    keyword when a reply is configured. False when it was recorded already (a retry)."""
    keywords = service.keywords
    found = keywords.match(report.body)
    message = inbound_message(report, store_body=service.settings.store_body)
    if found is None or found[0] == HELP:
        try:
            service.writer.save(message)
        except IntegrityError:
            return False
    else:
        status, word = found
        try:
            service.consent.change(
                report.sender,
                status,
                report.channel.value,
                SCOPE_ALL,
                "keyword",
                keyword=word,
                message_id=message.id,
                with_=[message],
            )
        except IntegrityError:
            return False  # the inbound message is recorded already: a provider's retry
    if found is not None:
        text = keywords.replies.get(found[0])
        if text:
            _reply(service, report, message.id, text)
    return True


def _reply(service: ConversaService, report: InboundReport, inbound_id: object, text: str) -> None:
    try:
        result = service.send(
            report.channel.value,
            report.sender,
            {"body": text},
            {
                "reply_to": str(inbound_id),
                "idempotency_key": str(inbound_id),
                "consent": "ignore",
            },
            scope=REPLY_SCOPE,
        )
    except Exception:
        # The keyword is recorded; a reply that cannot be made must not fail the webhook
        # (the provider would retry it, and the retry records nothing, replies nothing).
        log.exception("could not send the automatic reply to inbound message %s", inbound_id)
        return
    log.info("automatic reply message_id=%s status=%s", result.message_id, result.status)
