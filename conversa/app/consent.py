"""The consent ledger's use cases: reading a recipient's consent, changing it, and the
check every send makes first.

The send path reads the :class:`Recipient` aggregate from the event store (never a read
model, which trails it), decides, and saves its message on the condition that the
recipient is still at the version it read (:mod:`conversa.app.unchanged`). The store
checks that condition inside the inserting transaction, under the lock that orders every
commit, so:

- a message whose ``Queued`` commits after an opt-out's commit was decided on the
  opt-out: it is recorded failed (``recipient_opted_out``), with no provider call;
- a message whose ``Queued`` commits before it was decided on the consent before it;
- a send that read the recipient, then met an opt-out committed in between, is refused
  by the store (``StaleRead``) and decides again.

Nothing is appended to the recipient by a send, so concurrent sends to one number do
not conflict with one another; only a change of consent makes the sends that read the
version before it decide again (one extra read and save each).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate
from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.known_recipients import KnownRecipients
from conversa.app.results import rfc3339
from conversa.app.unchanged import Unchanged
from conversa.app.writer import Writer
from conversa.domain.errors import InvalidRequest
from conversa.domain.message import Message
from conversa.domain.phone import PhoneNumber
from conversa.domain.recipient import (
    ALL_CHANNELS,
    CHANNELS,
    OPTED_IN,
    OPTED_OUT,
    SCOPE_ALL,
    SCOPE_MARKETING,
    SCOPES,
    ConsentChange,
    Recipient,
    history_of,
    recipient_id_for,
)

#: The error code of a send refused for want of consent.
OPTED_OUT_CODE = "recipient_opted_out"
OPTED_OUT_MESSAGE = "the recipient opted out of messages on this channel"
#: Provider errors that say the recipient opted out: (the scope, the code recorded).
#: Twilio 21610: the recipient replied STOP (Twilio refuses every later send); Meta
#: 131050: the user stopped marketing messages from this business (WhatsApp only).
PROVIDER_SIGNALS = {
    "twilio_21610": (SCOPE_ALL, "21610"),
    "whatsapp_cloud_131050": (SCOPE_MARKETING, "131050"),
}
#: How often a decision is made again when the recipient keeps changing meanwhile.
MAX_DECISIONS = 50


@dataclass(frozen=True, slots=True)
class Decision:
    """Whether a send may go, and the condition its save must carry."""

    blocked: bool
    condition: Unchanged


def conditions_of(decision: Decision | None) -> tuple[Unchanged, ...]:
    return () if decision is None else (decision.condition,)


def refuse_for_consent(message: Message) -> None:
    """Fail ``message`` at once: its recipient opted out (no attempt, no provider call)."""
    message.record_attempt_failed(OPTED_OUT_CODE, OPTED_OUT_MESSAGE, source="consent")


def refused_for_consent(decision: Decision | None, message: Message) -> tuple[Unchanged, ...]:
    """Apply ``decision`` to ``message`` (fail it when its recipient opted out); the
    conditions its save must carry."""
    if decision is not None and decision.blocked:
        refuse_for_consent(message)
    return conditions_of(decision)


def category_of(message: Message) -> str:
    return message.category.value


def overridden(message: Message) -> bool:
    """Sent with ``"consent": "ignore"`` (a token allowed to override, or Conversa's own
    confirmation reply to an opt-out keyword)."""
    return message.consent_override


def _decision(recipient: Recipient | None, number: str, message: Message) -> Decision:
    if recipient is None:
        return Decision(False, Unchanged(recipient_id_for(number), 0))
    blocked = recipient.blocks(message.channel.value, category_of(message))
    return Decision(blocked, Unchanged(recipient.id, recipient.version))


@dataclass(frozen=True, slots=True)
class ConsentSignal:
    """A provider's word that a number opted out or in (source ``provider``)."""

    number: str
    status: str
    channel: str
    scope: str
    code: str


@dataclass(frozen=True, slots=True)
class ConsentView:
    """A recipient as the API shows it (``recipient`` None: nothing recorded yet)."""

    number: str
    recipient: Recipient | None
    history: list[ConsentChange]

    def table(self) -> dict[str, dict[str, str]]:
        return (self.recipient or Recipient.register(self.number)).as_table()

    def as_dict(self) -> dict[str, Any]:
        """The recipient resource of ``GET /conversa/recipients/{number}``."""
        return {
            "number": self.number,
            "consent": self.table(),
            "history": [change_as_dict(change) for change in self.history],
        }


def change_as_dict(change: ConsentChange) -> dict[str, Any]:
    item: dict[str, Any] = {
        "type": change.type,
        "channel": change.channel,
        "scope": change.scope,
        "source": change.source,
    }
    if change.keyword is not None:
        item["keyword"] = change.keyword
    if change.code is not None:
        item["code"] = change.code
    if change.message_id is not None:
        item["message_id"] = str(change.message_id)
    if change.by is not None:
        item["by"] = change.by
    item["occurred_at"] = rfc3339(change.occurred_at)
    return item


@dataclass(frozen=True, slots=True)
class ConsentRequest:
    """A change asked for through the API or the command line, checked."""

    status: str
    channel: str
    scope: str

    @classmethod
    def parse(cls, document: Mapping[str, object]) -> ConsentRequest:
        unknown = sorted(set(document) - {"channel", "scope", "status"})
        if unknown:
            raise InvalidRequest(unknown[0], f"unknown field {unknown[0]}")
        channel = document.get("channel")
        if channel not in (*CHANNELS, ALL_CHANNELS):
            raise InvalidRequest("channel", "channel must be one of sms, whatsapp, all")
        scope = document.get("scope", SCOPE_ALL)
        if scope not in SCOPES:
            raise InvalidRequest("scope", "scope must be one of all, marketing")
        status = document.get("status")
        if status not in (OPTED_OUT, OPTED_IN):
            raise InvalidRequest("status", "status must be one of opted_out, opted_in")
        assert isinstance(channel, str) and isinstance(scope, str) and isinstance(status, str)
        return cls(status, channel, scope)


class ConsentLedger:
    def __init__(self, app: ConversaApp, writer: Writer) -> None:
        self.app = app
        self.writer = writer
        self.known = KnownRecipients()

    # Reading

    def events(self, number: str) -> list[Any]:
        return list(self.app.events.get(recipient_id_for(number)))

    def load(self, number: str) -> Recipient | None:
        recipient: Recipient | None = None
        for stored in self.events(number):
            recipient = stored.mutate(recipient)
        return recipient

    def view(self, number: str) -> ConsentView:
        events = self.events(number)
        recipient: Recipient | None = None
        for stored in events:
            recipient = stored.mutate(recipient)
        return ConsentView(number, recipient, history_of(events))

    def decide(self, channel: str, number: str, category: str) -> Decision:
        """Whether a send of ``category`` to ``number`` on ``channel`` is blocked now,
        and the condition under which that answer still holds at commit."""
        recipient = self.load(number)
        if recipient is None:
            return Decision(False, Unchanged(recipient_id_for(number), 0))
        return Decision(
            recipient.blocks(channel, category), Unchanged(recipient.id, recipient.version)
        )

    def decide_for(self, message: Message) -> Decision | None:
        """:meth:`decide` for ``message`` (None when its check is overridden), on a fresh
        read of the recipient, which is also kept for :meth:`assume_for`."""
        if overridden(message):
            return None
        number = message.to.e164
        recipient = self.load(number)
        self.known.remember(number, recipient)
        return _decision(recipient, number, message)

    def assume_for(self, message: Message) -> Decision | None:
        """:meth:`decide_for` without a read: on the recipient as this process last read
        it, or, for a number it never read, on an empty ledger. The save's condition
        makes the store refuse it (``StaleRead``) when that is not the recipient at
        commit; decide again with :meth:`decide_for` then (see known_recipients.py)."""
        if overridden(message):
            return None
        number = message.to.e164
        return _decision(self.known.get(number), number, message)

    def provider_signal(self, message: Message, error_code: str | None) -> list[Aggregate]:
        """The recipient, opted out, when a provider's error on ``message`` says it opted
        out (to be saved with the message's failure); nothing when it says nothing of
        the kind or the opt-out is recorded already."""
        signal = PROVIDER_SIGNALS.get(error_code or "")
        if signal is None:
            return []
        scope, code = signal
        channel = message.channel.value
        recipient = self.load(message.to.e164) or Recipient.register(message.to.e164)
        if not recipient.opt_out(channel, scope, "provider", code=code, message_id=message.id):
            return []
        return [recipient]

    def assume_many(self, messages: Sequence[Message]) -> list[Decision | None]:
        """:meth:`assume_for` for many messages."""
        return [self.assume_for(message) for message in messages]

    def decide_many(self, messages: Sequence[Message]) -> list[Decision | None]:
        """:meth:`decide_for` for many messages, their recipients read in bulk."""
        recipients = self.load_many(m.to.e164 for m in messages if not overridden(m))
        decisions: list[Decision | None] = []
        for message in messages:
            if overridden(message):
                decisions.append(None)
                continue
            number = message.to.e164
            recipient = recipients.get(number)
            self.known.remember(number, recipient)
            if recipient is None:
                decisions.append(Decision(False, Unchanged(recipient_id_for(number), 0)))
            else:
                blocked = recipient.blocks(message.channel.value, category_of(message))
                decisions.append(Decision(blocked, Unchanged(recipient.id, recipient.version)))
        return decisions

    def load_many(self, numbers: Iterable[str]) -> dict[str, Recipient]:
        """The recorded recipients among ``numbers``: in one query where the store's
        recorder can (``select_events_of``), else one read per number."""
        ids: dict[UUID, str] = {recipient_id_for(n): n for n in numbers}
        if not ids:
            return {}
        select = getattr(self.app.recorder, "select_events_of", None)
        found: dict[str, Recipient] = {}
        if select is None:
            for number in ids.values():
                recipient = self.load(number)
                if recipient is not None:
                    found[number] = recipient
            return found
        mapper = self.app.mapper
        for stored in select(list(ids)):
            event: Any = mapper.to_domain_event(stored)
            number = ids[event.originator_id]
            found[number] = event.mutate(found.get(number))
        return found

    # The use cases of the API and the command line

    def show(self, raw_number: object) -> ConsentView:
        """The consent of a number given in any spelling (``InvalidRequest`` field
        ``number`` when it is not a phone number)."""
        return self.view(PhoneNumber.parse(raw_number, field="number").e164)

    def request(
        self, raw_number: object, change: ConsentRequest, source: str, *, by: str | None = None
    ) -> ConsentView:
        number = PhoneNumber.parse(raw_number, field="number").e164
        self.change(number, change.status, change.channel, change.scope, source, by=by)
        return self.view(number)

    def record_signal(self, signal: ConsentSignal) -> bool:
        """Record a provider's signal; False when it holds already (a provider's retry)."""
        _, changed = self.change(
            signal.number, signal.status, signal.channel, signal.scope, "provider", code=signal.code
        )
        return changed

    # Changing

    def change(
        self,
        number: str,
        status: str,
        channel: str,
        scope: str,
        source: str,
        *,
        keyword: str | None = None,
        code: str | None = None,
        message_id: UUID | None = None,
        by: str | None = None,
        with_: Sequence[Aggregate] = (),
    ) -> tuple[Recipient, bool]:
        """Record the change unless it holds already; saved together with ``with_`` (an
        inbound message: a provider's retry of it then records nothing). Returns the
        recipient and whether anything was recorded. A concurrent change of the same
        recipient makes it decide again."""
        last: IntegrityError | None = None
        for _ in range(MAX_DECISIONS):
            recipient = self.load(number) or Recipient.register(number)
            changed = recipient.set(
                status,
                channel,
                scope,
                source,
                keyword=keyword,
                code=code,
                message_id=message_id,
                by=by,
            )
            if not changed and not with_:
                return recipient, False
            try:
                if changed:
                    self.writer.save(recipient, *with_)
                else:
                    self.writer.save(*with_)
            except IntegrityError as error:
                if with_ and self._stored(with_[0]):
                    raise  # the other aggregate is recorded already: the caller's call
                last = error
                continue
            return recipient, changed
        raise RuntimeError(f"the consent of a recipient kept changing: {last}")

    def _stored(self, aggregate: Aggregate) -> bool:
        return bool(list(self.app.events.get(aggregate.id, limit=1)))
