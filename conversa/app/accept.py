"""Accepting messages for the dispatcher: one (``queue``, HTTP ``Prefer: respond-async``)
or many at once (``send_batch``, ``POST /conversa/messages/batch``).

A message is validated exactly as a synchronous send validates it, recorded as ``Queued``
with ``attempt_by="dispatcher"``, and the caller is answered once that is committed: the
worker's dispatcher (:mod:`conversa.app.drain`) makes the attempt. Idempotency keys work
as for the synchronous send: the same key with the same request replays the stored
message, with a different request it is refused (``idempotency_key_mismatch``).

A batch is validated item by item (an invalid item is refused alone) and recorded in
one transaction (``Writer.save_each``): an item whose key was used before is refused by
the store on its own and answered as a replay, the others commit.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from uuid import uuid4

from eventsourcing.persistence import IntegrityError

from conversa.app.consent import MAX_DECISIONS, refused_for_consent
from conversa.app.messages import MessageNotFound, load_message
from conversa.app.ports import OutboundMessage
from conversa.app.results import SendResult
from conversa.app.send_options import TERMS_OPTIONS, SendingTerms
from conversa.app.unchanged import StaleRead
from conversa.domain.channel import Channel
from conversa.domain.content import Content, parse_content
from conversa.domain.errors import ConversaError, IdempotencyKeyMismatch, InvalidRequest
from conversa.domain.inbound import InboundMessage
from conversa.domain.message import ATTEMPT_BY_DISPATCHER, Message, message_id_for
from conversa.domain.phone import PhoneNumber

if TYPE_CHECKING:
    from conversa.app.service import ConversaService

log = logging.getLogger(__name__)

#: Most messages in one batch.
MAX_BATCH = 1000
#: Messages recorded in one transaction: a whole batch, so that a batch whose request died
#: before its answer was recorded whole or not at all (unless one of its items conflicted:
#: then each is saved on its own, and retrying with the same keys finishes it).
CHUNK = MAX_BATCH
#: The fields of a batch item: the single send's body, and its idempotency key.
ITEM_FIELDS = frozenset(
    {
        "channel",
        "to",
        "body",
        "template",
        "from",
        "meta",
        "idempotency_key",
        "fallback",
        "reply_to",
        *TERMS_OPTIONS,
    }
)
#: Where the dispatcher's position is kept, among the subscribers' positions.
DRAIN_POSITION = "conversa:dispatcher"


@dataclass(frozen=True, slots=True)
class BatchItemResult:
    """What became of one item of a batch: ``result`` when it was recorded, now
    (``result.replayed`` false) or by an earlier request with its key (true); ``error``
    when it was refused (invalid, or its key used for a different request)."""

    index: int
    result: SendResult | None = None
    error: ConversaError | None = None

    @property
    def accepted(self) -> bool:
        return self.error is None


@dataclass(slots=True)
class _Prepared:
    index: int
    message: Message
    content: Content
    #: The index of an earlier item of the same batch with the same key (a duplicate).
    same_as: int | None = None


def quote_of(reply: InboundMessage | None) -> str | None:
    """What a reply quotes: Meta's id of the message it answers (``context.message_id``);
    another provider's id means nothing to the driver that sends it."""
    if reply is not None and reply.provider == "whatsapp_cloud":
        return reply.provider_message_id
    return None


class Acceptor:
    def __init__(self, service: ConversaService) -> None:
        self.service = service
        self._drain_started = False
        self._start_lock = threading.Lock()

    def queue(
        self,
        channel: str,
        to: str,
        payload: Mapping[str, Any],
        opts: Mapping[str, Any] | None,
        scope: str,
    ) -> SendResult:
        from conversa.app.service import _check_options

        options = _check_options(opts or {})  # an unknown option is refused, as by send()
        item = {
            "channel": channel,
            "to": to,
            "body": payload.get("body"),
            "template": payload.get("template"),
            **options,
        }
        (outcome,) = self.accept([item], scope)
        if outcome.error is not None:
            raise outcome.error
        assert outcome.result is not None
        return outcome.result

    def accept(
        self, items: Sequence[Mapping[str, Any]], scope: str, decided: int = 0
    ) -> list[BatchItemResult]:
        # Resolved late: the service module imports this one.
        from conversa.app.service import _check_options, _fingerprint

        service = self.service
        now = service.clock()
        lease_until = now + service.lease
        store_body = service.settings.store_body
        outcomes: dict[int, BatchItemResult] = {}
        prepared: list[_Prepared] = []
        first_of: dict[Any, _Prepared] = {}
        for index, item in enumerate(items):
            try:
                if not isinstance(item, Mapping):
                    raise InvalidRequest("message", "each message must be a JSON object")
                unknown = sorted(set(item) - ITEM_FIELDS)
                if unknown:
                    raise InvalidRequest(unknown[0], f"unknown field {unknown[0]}")
                options = _check_options(
                    {
                        k: item[k]
                        for k in (
                            "idempotency_key",
                            "from",
                            "meta",
                            "fallback",
                            "reply_to",
                            *TERMS_OPTIONS,
                        )
                        if k in item
                    }
                )
                # A reply: its channel, recipient and sender are the inbound message's.
                raw_channel, raw_to = item.get("channel"), item.get("to")
                reply = service._reply_to(options.get("reply_to"))
                if reply is not None:
                    raw_channel, raw_to = service._reply_route(reply, raw_channel, raw_to, options)
                channel = Channel.parse(raw_channel)
                recipient = PhoneNumber.parse(raw_to)
                content = parse_content(
                    {"body": item.get("body"), "template": item.get("template")}, channel
                )
                service._check_window(channel, recipient, content, reply)
                key: str | None = options.get("idempotency_key")
                driver = service.drivers[channel]
                message_id = message_id_for(scope, key)
                sender = options.get("from")
                driver.validate(OutboundMessage(message_id, channel, recipient, sender, content))
                fallback = service._fallback(options, channel, message_id, recipient, content)
                terms = SendingTerms.of(options, now)
                scheduled_at = service.scheduler.scheduled_at(
                    terms.category, recipient, terms.scheduled_at, now
                )
            except ConversaError as error:
                outcomes[index] = BatchItemResult(index, error=error)
                continue
            fingerprint = _fingerprint(channel, recipient, content, options, store_body)
            earlier = first_of.get(message_id)
            if earlier is not None:
                if earlier.message.fingerprint != fingerprint:
                    outcomes[index] = BatchItemResult(index, error=IdempotencyKeyMismatch())
                else:
                    prepared.append(
                        _Prepared(index, earlier.message, content, same_as=earlier.index)
                    )
                continue
            message = Message(
                id=message_id,
                channel=channel.value,
                to=recipient,
                sender=sender,
                content=content if store_body else None,
                driver=driver.name,
                meta=options.get("meta", {}),
                idempotency_key=key,
                fingerprint=fingerprint,
                # The dispatcher claims it at once; if none runs, any worker's due scan
                # takes it once this passes (as it recovers an attempt a crash cut short).
                # A scheduled one: the due scan, when its time comes (app/scheduling.py).
                next_attempt_at=scheduled_at or lease_until,
                nonce=uuid4().hex,
                attempt_by=ATTEMPT_BY_DISPATCHER,
                reply_to=None if reply is None else reply.id,
                quote=quote_of(reply),
                category=terms.category.value,
                consent_override=terms.consent_override,
                scheduled_at=scheduled_at,
            )
            if fallback is not None:
                message.request_fallback(
                    fallback.channel,
                    (scheduled_at or now) + timedelta(seconds=fallback.after_seconds),
                    fallback.text,
                )
            entry = _Prepared(index, message, content)
            first_of[message_id] = entry
            prepared.append(entry)
        originals = [p for p in prepared if p.same_as is None]
        if originals:
            self._ensure_drain_position()
        stale: list[_Prepared] = []
        for start in range(0, len(originals), CHUNK):
            chunk = originals[start : start + CHUNK]
            # Consent first, as for a synchronous send (see conversa/app/consent.py): the
            # first time on the recipients as last read, without reading (the store
            # refuses a wrong assumption); items refused for that are read and decided
            # again below.
            messages = [p.message for p in chunk]
            verdicts = (
                service.consent.assume_many(messages)
                if decided == 0
                else service.consent.decide_many(messages)
            )
            conditions = [
                refused_for_consent(verdict, p.message)
                for verdict, p in zip(verdicts, chunk, strict=True)
            ]
            refusals = service.writer.save_each([[p.message] for p in chunk], conditions)
            for entry, refusal in zip(chunk, refusals, strict=True):
                if isinstance(refusal, StaleRead):
                    stale.append(entry)  # nothing recorded: decided again below
                    continue
                outcomes[entry.index] = self._settle(entry, refusal)
        if stale:
            if decided >= MAX_DECISIONS:
                raise StaleRead
            again = self.accept([items[e.index] for e in stale], scope, decided + 1)
            for entry, outcome in zip(stale, again, strict=True):
                outcomes[entry.index] = BatchItemResult(
                    entry.index, result=outcome.result, error=outcome.error
                )
            redone = {id(entry) for entry in stale}
            originals = [p for p in originals if id(p) not in redone]
        created = [
            p
            for p in originals
            if (result := outcomes[p.index].result) is not None and not result.replayed
        ]
        if not store_body:
            # Kept outside the event store for the dispatcher; only by the request that
            # recorded the message (a replay writes nothing down). The dispatcher waits a
            # moment for a payload it does not find yet.
            for entry in created:
                until = (entry.message.scheduled_at or now) + service.payload_window
                service.payloads.put(entry.message.id, entry.content, until)
        for entry in prepared:
            if entry.same_as is not None:
                original = outcomes[entry.same_as]
                outcomes[entry.index] = (
                    BatchItemResult(entry.index, error=original.error)
                    if original.error is not None
                    else BatchItemResult(
                        entry.index,
                        result=SendResult.of(entry.message, replayed=True),
                    )
                )
        if created:
            service.wake_dispatcher()
            for entry in created:
                if entry.message.scheduled_at is not None:
                    service.wake_ups.expect(entry.message.scheduled_at)
            # One line per message for a single send, as send() logs; one per batch
            # otherwise (a thousand lines per request would cost more than the request).
            each = log.info if len(items) == 1 else log.debug
            for entry in created:
                each(
                    "queued message_id=%s channel=%s to=%s driver=%s for the dispatcher",
                    entry.message.id,
                    entry.message.channel,
                    entry.message.to.masked(),
                    entry.message.driver,
                )
            if len(items) > 1:
                log.info(
                    "queued %d messages for the dispatcher (%d items, %d refused)",
                    len(created),
                    len(items),
                    sum(1 for outcome in outcomes.values() if outcome.error is not None),
                )
        return [outcomes[index] for index in range(len(items))]

    def _settle(self, entry: _Prepared, refusal: IntegrityError | None) -> BatchItemResult:
        attempted = entry.message
        if refusal is None:
            return BatchItemResult(entry.index, result=SendResult.of(attempted, replayed=False))
        try:
            stored = load_message(self.service.app, attempted.id)
        except MessageNotFound:
            raise refusal from None
        if stored.nonce is not None and stored.nonce == attempted.nonce:
            # Our own commit, whose answer an outage lost and the store's retry met.
            return BatchItemResult(entry.index, result=SendResult.of(stored, replayed=False))
        if attempted.idempotency_key is None:
            raise refusal
        if stored.fingerprint != attempted.fingerprint:
            return BatchItemResult(entry.index, error=IdempotencyKeyMismatch())
        self.service.telemetry.send_replayed(stored.channel.value)
        return BatchItemResult(entry.index, result=SendResult.of(stored, replayed=True))

    def _ensure_drain_position(self) -> None:
        """Give the dispatcher a position before the first message it is to send is
        recorded, so that a dispatcher that has never run yet starts before it. Once per
        process; committed before the save, so a position set by another process's first
        call cannot lie past this message."""
        if self._drain_started:
            return
        with self._start_lock:
            if not self._drain_started:
                service = self.service
                head = service.app.recorder.max_notification_id() or 0
                service.subscriber_store.start_at(DRAIN_POSITION, head)
                self._drain_started = True
