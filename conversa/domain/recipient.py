"""The Recipient aggregate: the consent ledger of one phone number.

Every change of consent is an event (``OptedOut``, ``OptedIn``) with its channel, scope,
source and cause, kept forever: the state per channel is derived from them, and the
history answers "since when, and why". The id derives from the E.164 number
(:func:`recipient_id_for`), so every writer of one number meets on one aggregate and the
event store's optimistic concurrency orders their changes.

Consent has two scopes per channel: ``all`` (every message: keywords, Twilio's 21610, the
API by default) and ``marketing`` (WhatsApp's marketing opt-out, or the API). A marketing
send is blocked by either opt-out, a transactional one only by ``all``.

Recording a state that already holds records nothing (:meth:`Recipient.opt_out` returns
False): a provider's retry of a STOP, or an import run twice, leaves the history as it was.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

from eventsourcing.domain import Aggregate, event

RECIPIENT_NAMESPACE = uuid5(NAMESPACE_URL, "https://conversa.dev/recipients")

CHANNELS = ("sms", "whatsapp")
#: A change's channel: one of CHANNELS, or every channel.
ALL_CHANNELS = "all"
SCOPE_ALL = "all"
SCOPE_MARKETING = "marketing"
SCOPES = (SCOPE_ALL, SCOPE_MARKETING)
SOURCES = ("keyword", "provider", "api", "import")
OPTED_IN = "opted_in"
OPTED_OUT = "opted_out"
UNKNOWN = "unknown"
MARKETING = "marketing"
TRANSACTIONAL = "transactional"


def recipient_id_for(e164: str) -> UUID:
    """The one id the consent ledger of this number (E.164) always has."""
    return uuid5(RECIPIENT_NAMESPACE, e164)


@dataclass(frozen=True, slots=True)
class ConsentChange:
    """One entry of a recipient's history (see :func:`history_of`)."""

    type: str  # OPTED_OUT or OPTED_IN
    channel: str
    scope: str
    source: str
    occurred_at: datetime
    keyword: str | None = None
    code: str | None = None
    message_id: UUID | None = None
    by: str | None = None


def _check(channel: str, scope: str, source: str) -> None:
    if channel not in (*CHANNELS, ALL_CHANNELS):
        raise ValueError(f"unknown channel {channel!r}")
    if scope not in SCOPES:
        raise ValueError(f"unknown scope {scope!r}")
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")


class Recipient(Aggregate):
    class Registered(Aggregate.Created):
        number: str

    class OptedOut(Aggregate.Event):
        """``channel``: sms, whatsapp or all; ``scope``: all or marketing; ``source``:
        keyword, provider, api or import; ``keyword``/``code``: what said so;
        ``message_id``: the message that caused it; ``by``: who (an API token's name)."""

        channel: str
        scope: str
        source: str
        keyword: str | None
        code: str | None
        message_id: UUID | None
        by: str | None

    class OptedIn(Aggregate.Event):
        channel: str
        scope: str
        source: str
        keyword: str | None
        code: str | None
        message_id: UUID | None
        by: str | None

    @event(Registered)
    def __init__(
        self,
        *,
        id: UUID,  # noqa: ARG002 - taken by the library as the new aggregate's id
        number: str,
    ) -> None:
        self.number = number
        #: (channel, scope) -> OPTED_IN | OPTED_OUT; absent: unknown.
        self.consent: dict[tuple[str, str], str] = {}

    @classmethod
    def register(cls, number: str) -> Recipient:
        return cls(id=recipient_id_for(number), number=number)

    # Queries

    def state(self, channel: str, scope: str) -> str:
        return self.consent.get((channel, scope), UNKNOWN)

    def blocks(self, channel: str, category: str) -> bool:
        """Whether a send of ``category`` on ``channel`` must be refused."""
        if self.state(channel, SCOPE_ALL) == OPTED_OUT:
            return True
        return category == MARKETING and self.state(channel, SCOPE_MARKETING) == OPTED_OUT

    def as_table(self) -> dict[str, dict[str, str]]:
        return {c: {s: self.state(c, s) for s in SCOPES} for c in CHANNELS}

    # Commands: each returns whether anything was recorded.

    def opt_out(
        self,
        channel: str,
        scope: str,
        source: str,
        *,
        keyword: str | None = None,
        code: str | None = None,
        message_id: UUID | None = None,
        by: str | None = None,
    ) -> bool:
        _check(channel, scope, source)
        if not self._changes(channel, [scope], OPTED_OUT):
            return False
        self._opted_out(channel, scope, source, keyword, code, message_id, by)
        return True

    def opt_in(
        self,
        channel: str,
        scope: str,
        source: str,
        *,
        keyword: str | None = None,
        code: str | None = None,
        message_id: UUID | None = None,
        by: str | None = None,
    ) -> bool:
        """Opting in to ``all`` also ends a ``marketing`` opt-out (everything may be sent
        again); opting in to ``marketing`` leaves an ``all`` opt-out standing."""
        _check(channel, scope, source)
        if not self._changes(channel, self._opt_in_scopes(channel, scope), OPTED_IN):
            return False
        self._opted_in(channel, scope, source, keyword, code, message_id, by)
        return True

    def set(self, status: str, channel: str, scope: str, source: str, **cause: Any) -> bool:
        """``opt_out`` or ``opt_in`` by the state's name."""
        if status == OPTED_OUT:
            return self.opt_out(channel, scope, source, **cause)
        if status == OPTED_IN:
            return self.opt_in(channel, scope, source, **cause)
        raise ValueError(f"unknown status {status!r}")

    def _opt_in_scopes(self, channel: str, scope: str) -> list[str]:
        if scope != SCOPE_ALL:
            return [scope]
        channels = CHANNELS if channel == ALL_CHANNELS else (channel,)
        marketing_out = any(self.state(c, SCOPE_MARKETING) == OPTED_OUT for c in channels)
        return [SCOPE_ALL, SCOPE_MARKETING] if marketing_out else [SCOPE_ALL]

    def _changes(self, channel: str, scopes: list[str], status: str) -> bool:
        channels = CHANNELS if channel == ALL_CHANNELS else (channel,)
        return any(self.state(c, s) != status for c in channels for s in scopes)

    def _apply(self, type_: str, channel: str, scope: str) -> None:
        channels = CHANNELS if channel == ALL_CHANNELS else (channel,)
        scopes = self._opt_in_scopes(channel, scope) if type_ == OPTED_IN else [scope]
        for c in channels:
            for s in scopes:
                if type_ == OPTED_OUT or s == scope or self.state(c, s) == OPTED_OUT:
                    self.consent[(c, s)] = type_

    @event(OptedOut)
    def _opted_out(
        self,
        channel: str,
        scope: str,
        source: str,
        keyword: str | None,
        code: str | None,
        message_id: UUID | None,
        by: str | None,
    ) -> None:
        del source, keyword, code, message_id, by  # the cause is recorded in the event
        self._apply(OPTED_OUT, channel, scope)

    @event(OptedIn)
    def _opted_in(
        self,
        channel: str,
        scope: str,
        source: str,
        keyword: str | None,
        code: str | None,
        message_id: UUID | None,
        by: str | None,
    ) -> None:
        del source, keyword, code, message_id, by  # the cause is recorded in the event
        self._apply(OPTED_IN, channel, scope)


def history_of(events: Iterable[Any]) -> list[ConsentChange]:
    """The consent changes among a recipient's stored events, oldest first."""
    changes = []
    for item in events:
        if isinstance(item, Recipient.OptedOut | Recipient.OptedIn):
            changes.append(
                ConsentChange(
                    type=OPTED_OUT if isinstance(item, Recipient.OptedOut) else OPTED_IN,
                    channel=item.channel,
                    scope=item.scope,
                    source=item.source,
                    occurred_at=item.timestamp,
                    keyword=item.keyword,
                    code=item.code,
                    message_id=item.message_id,
                    by=item.by,
                )
            )
    return changes
