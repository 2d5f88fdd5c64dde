"""ConversaService: the use cases behind every adapter (HTTP, command line, Python)."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any, Literal
from uuid import UUID, uuid4

from eventsourcing.persistence import IntegrityError

from conversa.app.accept import MAX_BATCH, Acceptor, BatchItemResult
from conversa.app.application import ConversaApp
from conversa.app.consent import (
    MAX_DECISIONS,
    ConsentLedger,
    Decision,
    conditions_of,
    refuse_for_consent,
)
from conversa.app.consent_keywords import Keywords, record_inbound_with_keywords
from conversa.app.conversations import (
    WHATSAPP_WINDOW,
    ConversationPage,
    ConversationQuery,
    ConversationRow,
)
from conversa.app.dispatch import Dispatcher
from conversa.app.drain import DRAIN_LOCK, Drain
from conversa.app.fallback import SCOPE as FALLBACK_SCOPE
from conversa.app.fallback import FallbackRunner, parse_fallback
from conversa.app.history import describe
from conversa.app.inbound import InboundReport
from conversa.app.lifecycle import LifecycleFeed
from conversa.app.messages import ConversationNotFound, MessageNotFound, load_message
from conversa.app.meta import check_meta
from conversa.app.outage import DATABASE_OUTAGE
from conversa.app.pacing import pacers_of
from conversa.app.ports import (
    Driver,
    OutboundMessage,
    PayloadStore,
    StorageBackend,
    SubscriberStore,
)
from conversa.app.projection import (
    MessagePage,
    MessageQuery,
    MessageRow,
    MessagesView,
    business_number,
)
from conversa.app.projector import DEFAULT_BATCH_SIZE, Projector
from conversa.app.reporting import Reporter
from conversa.app.reports import ReportOutcome, StatusReport
from conversa.app.results import MessageState, SendResult, rfc3339
from conversa.app.retry import RetryPolicy
from conversa.app.scheduling import Scheduler, WakeUps, cancel_message
from conversa.app.send_options import (
    TERMS_OPTIONS,
    SendingTerms,
    check_terms,
    fingerprint_terms,
)
from conversa.app.settings import Settings
from conversa.app.subscribers import Handler, Subscription
from conversa.app.telemetry import NoTelemetry, Telemetry
from conversa.app.tokens import TokenService
from conversa.app.unchanged import StaleRead
from conversa.app.writer import DirectWriter, Writer
from conversa.domain.channel import Channel
from conversa.domain.content import Body, Content, Template, parse_content
from conversa.domain.errors import IdempotencyKeyMismatch, InvalidRequest, OutsideServiceWindow
from conversa.domain.inbound import InboundMessage
from conversa.domain.message import (
    ATTEMPT_BY_DISPATCHER,
    ATTEMPT_BY_REQUEST,
    Message,
    message_id_for,
)
from conversa.domain.phone import PhoneNumber
from conversa.domain.quiet_hours import QuietHours
from conversa.domain.status import Status
from conversa.domain.text import UNSTORABLE, is_storable
from conversa.events import EVENT_TYPES, LifecycleEvent
from conversa.notifications import ChannelManager, MessageChannel

__all__ = ["BatchItemResult", "ConversaService", "ConversationNotFound", "MessageNotFound"]

log = logging.getLogger(__name__)

#: Idempotency keys given through the Python API share this scope; HTTP scopes keys by token.
LOCAL_SCOPE = "local"
MAX_IDEMPOTENCY_KEY = 255
MAX_SENDER = 64
SEND_OPTIONS = frozenset(
    {"idempotency_key", "from", "meta", "fallback", "reply_to", *TERMS_OPTIONS}
)
#: Where a new subscriber begins: after the events stored when it is registered, or at the
#: first event ever stored.
Start = Literal["now", "beginning"]
#: How often running() looks whether the subscribers and the projection caught up.
DRAIN_POLL = 0.05


@dataclass(frozen=True, slots=True)
class _Fallback:
    channel: Channel
    after_seconds: int
    text: str | None


def _no_text(name: str, variables: tuple[str, ...]) -> str | None:  # noqa: ARG001
    return None


class ConversaService:
    def __init__(
        self,
        *,
        settings: Settings,
        app: ConversaApp,
        view: MessagesView,
        drivers: Mapping[Channel, Driver],
        backend: StorageBackend,
        payloads: PayloadStore,
        subscriber_store: SubscriberStore,
        subscriptions: Sequence[Subscription] = (),
        on_close: Callable[[], None] | None = None,
        clock: Callable[[], datetime] | None = None,
        jitter: Callable[[float], float] | None = None,
        telemetry: Telemetry | None = None,
        writer: Writer | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        #: Every write of the request paths goes through it (see :mod:`conversa.app.writer`).
        self.writer: Writer = writer or DirectWriter(app)
        self.view = view
        self.drivers = dict(drivers)
        self.backend = backend
        self.payloads = payloads
        self.clock = clock or _utc_now
        self.telemetry: Telemetry = telemetry or NoTelemetry()
        self._on_close = on_close  # closes the HTTP clients bootstrap opened
        self.tokens = TokenService(app)
        #: The consent ledger every send checks first (conversa/app/consent.py).
        self.consent = ConsentLedger(app, self.writer)
        self.keywords = Keywords.of(settings)
        self.reporter = Reporter(
            app, self.writer, parked_window=timedelta(hours=settings.parked_report_hours)
        )
        self.fallbacks = FallbackRunner(app, self.writer, self.send_fallback)
        #: A template's SMS text with its variables filled in, for fallbacks (bootstrap
        #: sets the templates file's; none by default).
        self.fallback_texts: Callable[[str, tuple[str, ...]], str | None] = _no_text
        self.channels = ChannelManager()
        self.channels.register_channel(MessageChannel(self, "sms"))
        self.channels.register_channel(MessageChannel(self, "whatsapp"))
        self.feed = LifecycleFeed(app)
        self.subscriber_store = subscriber_store
        self.subscriptions: list[Subscription] = list(subscriptions)
        self._running = False
        self._running_lock = threading.Lock()
        policy = RetryPolicy(
            max_retries=settings.max_retries,
            base_seconds=settings.retry_base_seconds,
            max_seconds=settings.retry_max_seconds,
        )
        if jitter is not None:
            policy = replace(policy, jitter=jitter)
        self.lease = timedelta(seconds=settings.attempt_lease_seconds)
        self.payload_window = policy.window(settings.attempt_lease_seconds)
        pacers = pacers_of(settings.max_per_second())
        self.dispatcher = Dispatcher(
            pacers=pacers,
            app=app,
            writer=self.writer,
            view=view,
            drivers=self.drivers,
            payloads=payloads,
            policy=policy,
            lease=self.lease,
            clock=self.clock,
            telemetry=self.telemetry,
        )
        #: Set when this process queues messages for the dispatcher (see drain.py).
        self._dispatch_wake = threading.Event()
        self.acceptor = Acceptor(self)
        self.drain = Drain(
            dispatcher=self.dispatcher,
            store=subscriber_store,
            pacers=pacers,
            concurrency=settings.dispatch_concurrency,
            poll_seconds=settings.dispatch_poll_seconds,
            local_wake=self._dispatch_wake,
            notified_across_processes=backend.kind == "postgresql",
        )
        self.dispatcher.drain_runs = self._drain_runs
        self.dispatcher.consent_decision = self.consent_decision
        self.dispatcher.consent_decisions = self.consent.decide_many
        self.dispatcher.provider_signal = self.consent.provider_signal
        self.reporter.provider_signal = self.consent.provider_signal
        #: When first attempts wait: send_at, and quiet hours for marketing.
        self.scheduler = Scheduler(
            QuietHours.parse(settings.quiet_hours) if settings.quiet_hours else None
        )
        #: Wakes the worker's dispatcher for the next scheduled attempt.
        self.wake_ups = WakeUps(view, self.clock)

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, *, migrate: bool = False
    ) -> ConversaService:
        """Build the whole service from the ``CONVERSA_*`` environment, as the CLI does.

        The embedded SQLite store creates its tables on first use. A PostgreSQL database
        needs ``conversa migrate`` first (a deploy step), or ``migrate=True`` here, which
        creates or upgrades the tables of either store.
        """
        from conversa.app.bootstrap import open_service  # the composition root, resolved late

        return open_service(Settings.from_environ(environ), create_tables=migrate)

    # Sending

    def send(
        self,
        channel: str,
        to: str,
        payload: Mapping[str, Any],
        opts: Mapping[str, Any] | None = None,
        *,
        scope: str = LOCAL_SCOPE,
        fallback_of: UUID | None = None,
        decisions: int = 0,
    ) -> SendResult:
        """Record a message, hand it to the channel's driver once, and record the outcome.

        ``payload`` holds exactly one of ``body`` or ``template`` (``{"name",
        "variables"}``); ``opts`` may hold ``idempotency_key``, ``from``, ``meta``,
        ``fallback``, ``reply_to``, ``category`` (``transactional`` or ``marketing``),
        ``consent`` (``check`` or ``ignore``) and ``send_at`` (RFC 3339 or an aware
        datetime).
        Invalid input raises :class:`~conversa.domain.errors.InvalidRequest` and stores
        nothing; a reused key with a different request raises ``IdempotencyKeyMismatch``.
        """
        options = _check_options(opts or {})
        reply = self._reply_to(options.get("reply_to"))
        if reply is not None:
            channel, to = self._reply_route(reply, channel, to, options)
        parsed_channel = Channel.parse(channel)
        recipient = PhoneNumber.parse(to)
        content = parse_content(payload, parsed_channel)
        self._check_window(parsed_channel, recipient, content, reply)
        key: str | None = options.get("idempotency_key")
        driver = self.drivers[parsed_channel]
        message_id = message_id_for(scope, key)
        sender = options.get("from")
        driver.validate(OutboundMessage(message_id, parsed_channel, recipient, sender, content))
        store_body = self.settings.store_body
        fallback = self._fallback(options, parsed_channel, message_id, recipient, content)
        now = self.clock()
        terms = SendingTerms.of(options, now)
        scheduled_at = self.scheduler.scheduled_at(
            terms.category, recipient, terms.scheduled_at, now
        )
        nonce = uuid4().hex  # tells this request's own write from another's
        message = Message(
            id=message_id,
            channel=parsed_channel.value,
            to=recipient,
            sender=sender,
            content=content if store_body else None,
            driver=driver.name,
            meta=options.get("meta", {}),
            idempotency_key=key,
            fingerprint=_fingerprint(parsed_channel, recipient, content, options, store_body),
            # The first attempt happens right below; if this process dies before its
            # outcome is recorded, a dispatcher takes the message over once this passes.
            # A scheduled one: a dispatcher's, then (see app/scheduling.py).
            next_attempt_at=scheduled_at or now + self.lease,
            nonce=nonce,
            attempt_by=ATTEMPT_BY_REQUEST if scheduled_at is None else ATTEMPT_BY_DISPATCHER,
            reply_to=None if reply is None else reply.id,
            # Meta quotes the message it answers; the id means nothing to other providers.
            quote=reply.provider_message_id
            if reply is not None and reply.provider == "whatsapp_cloud"
            else None,
            category=terms.category.value,
            consent_override=terms.consent_override,
            scheduled_at=scheduled_at,
        )
        start = scheduled_at or now
        if fallback is not None:
            message.request_fallback(
                fallback.channel, start + timedelta(seconds=fallback.after_seconds), fallback.text
            )
        if fallback_of is not None:
            message.mark_fallback_of(fallback_of)
        # Consent first: an opted-out recipient's message is recorded failed, and the save
        # holds only while the recipient is as read (see conversa/app/consent.py). The
        # first decision assumes the recipient as last read, without a read; the store
        # refuses the save if that is not the recipient at commit, and then it is read.
        decision = (
            self.consent.assume_for(message) if decisions == 0 else self.consent_decision(message)
        )
        if decision is not None and decision.blocked:
            refuse_for_consent(message)
        try:
            self.writer.save(message, unchanged=conditions_of(decision))
        except DATABASE_OUTAGE:
            # Perhaps committed, perhaps not: the caller hears 503, and if the message
            # turns out to be stored, this process attempts it once the database is back.
            self.dispatcher.unfinished.queued_unconfirmed(message.id, nonce, content)
            raise
        except StaleRead:
            # The recipient's consent changed between the read and the commit: nothing
            # was recorded; decide again on the new consent.
            if decisions >= MAX_DECISIONS:
                raise
            return self.send(
                channel,
                to,
                payload,
                opts,
                scope=scope,
                fallback_of=fallback_of,
                decisions=decisions + 1,
            )
        except IntegrityError:
            stored = self._own_write(message)
            if stored is None:
                if key is None:
                    raise
                return self._replay(message)
            # Our commit went through but its answer was lost, and the event store's retry
            # met our own write: this request recorded the message, so it makes the attempt.
            log.warning("recognised own write of message_id=%s after a lost answer", message.id)
            if stored.version > stored.recorded_version:  # already taken over (a dispatcher,
                # once the lease ran out)
                return SendResult.of(stored, replayed=False)
            message = stored
        if message.status is not Status.QUEUED:
            return SendResult.of(message, replayed=False)  # refused for want of consent
        if not store_body:
            # Only the request that recorded the message keeps its content, for the retries:
            # a replay (or the loser of a race on one key) writes nothing down. No dispatcher
            # takes the message before its lease ends, long after this.
            self.payloads.put(message_id, content, start + self.payload_window)
        if log.isEnabledFor(logging.INFO):  # masking the number costs; skip it when unlogged
            log.info(
                "queued message_id=%s channel=%s to=%s driver=%s",
                message.id,
                parsed_channel,
                recipient.masked(),
                driver.name,
            )
        if message.scheduled_at is not None:
            return self._scheduled(message)
        return SendResult.of(self.dispatcher.attempt(message, content), replayed=False)

    def consent_decision(self, message: Message) -> Decision | None:
        """Whether ``message`` may be sent as its recipient's consent stands (None: the
        check is overridden for it)."""
        return self.consent.decide_for(message)

    def _scheduled(self, message: Message) -> SendResult:
        """A scheduled message is answered as recorded: a dispatcher attempts it then."""
        assert message.scheduled_at is not None
        log.info("message_id=%s scheduled for %s", message.id, rfc3339(message.scheduled_at))
        self.wake_ups.expect(message.scheduled_at)
        return SendResult.of(message, replayed=False)

    def cancel(self, message_id: UUID | str) -> MessageState:
        """Cancel a message no attempt has started for (a scheduled one, or one queued for
        the dispatcher and not yet claimed): it is never sent. Cancelling it again answers
        the cancelled message. Raises ``MessageNotFound``, and ``AlreadyAttempted`` once an
        attempt has started."""
        message = cancel_message(self.app, self.writer, _as_uuid(message_id))
        return MessageState.of(message)

    def _reply_to(self, raw: object) -> InboundMessage | None:
        if raw is None:
            return None
        try:
            reply_id = UUID(str(raw))
        except ValueError:
            raise InvalidRequest("reply_to", "reply_to must be an inbound message's id") from None
        inbound = self.get_inbound(reply_id)
        if inbound is None:
            raise InvalidRequest("reply_to", "reply_to names no inbound message")
        return inbound

    def _reply_route(
        self, reply: InboundMessage, channel: object, to: object, options: dict[str, Any]
    ) -> tuple[str, str]:
        """A reply goes on the inbound message's channel, to its sender, from the number it
        reached; a ``channel``, ``to`` or ``from`` given with it must say the same."""
        if channel is not None and channel != reply.channel.value:
            raise InvalidRequest("channel", "a reply goes on the channel of the message it answers")
        if to is not None and to != reply.sender:
            raise InvalidRequest("to", "a reply goes to the sender of the message it answers")
        sender = options.get("from")
        if sender is not None and business_number(sender) != reply.recipient:
            raise InvalidRequest("from", "a reply comes from the number the message reached")
        if sender is None:
            options["from"] = reply.recipient  # a driver adds its own "whatsapp:"
        options.pop("reply_to", None)
        return reply.channel.value, reply.sender

    def _check_window(
        self,
        channel: Channel,
        recipient: PhoneNumber,
        content: Content,
        reply: InboundMessage | None,
    ) -> None:
        """With ``CONVERSA_WHATSAPP_WINDOW_CHECK``: refuse a free-form WhatsApp body to a
        contact whose last message is older than 24 hours, or who never wrote."""
        if not self.settings.whatsapp_window_check or channel is not Channel.WHATSAPP:
            return
        if not isinstance(content, Body):
            return  # a template may always be sent
        now = self.clock()
        if reply is not None and reply.received_at + WHATSAPP_WINDOW > now:
            return
        last = self.last_inbound_at(Channel.WHATSAPP, recipient.e164)
        if last is None or last + WHATSAPP_WINDOW <= now:
            raise OutsideServiceWindow(
                "body",
                "the contact has not written in the last 24 hours: outside WhatsApp's customer "
                "service window only a template may be sent",
            )

    def last_inbound_at(self, channel: Channel, contact: str) -> datetime | None:
        """When ``contact`` last wrote to any of our numbers on ``channel`` (the read model)."""
        page = self.view.conversations(
            ConversationQuery(channel=channel.value, contact=contact, per_page=100)
        )
        times = [row.last_inbound_at for row in page.rows if row.last_inbound_at is not None]
        return max(times, default=None)

    def list_conversations(self, query: ConversationQuery) -> ConversationPage:
        return self.view.conversations(query)

    def conversation(
        self, conversation_id: UUID | str, page: int = 1, per_page: int = 25
    ) -> tuple[ConversationRow, list[MessageRow]]:
        """A conversation and one page of its messages, oldest first."""
        found = self.view.conversation(_as_uuid(conversation_id))
        if found is None:
            raise ConversationNotFound(str(conversation_id))
        return found, self.view.thread(found.id, page, per_page)

    def queue(
        self,
        channel: str,
        to: str,
        payload: Mapping[str, Any],
        opts: Mapping[str, Any] | None = None,
        *,
        scope: str = LOCAL_SCOPE,
    ) -> SendResult:
        """Record a message for the worker's dispatcher and return once it is committed,
        without waiting for the provider (HTTP ``Prefer: respond-async``).

        Takes what :meth:`send` takes and validates it the same way (``InvalidRequest``,
        ``IdempotencyKeyMismatch``); the result's status is ``queued`` (or, for a replayed
        key, whatever became of the message). The dispatcher of ``conversa worker``, of a
        server, or of :meth:`running` in this process sends it.
        """
        return self.acceptor.queue(channel, to, payload, opts, scope)

    def send_batch(
        self, items: Sequence[Mapping[str, Any]], *, scope: str = LOCAL_SCOPE
    ) -> list[BatchItemResult]:
        """Queue many messages for the dispatcher at once, each refused or recorded on its
        own (in one transaction; see accept.py). Each item is a mapping as the HTTP batch
        item: ``channel``, ``to``, ``body`` or ``template``, and optionally ``from``,
        ``meta`` and ``idempotency_key``. Returns one :class:`BatchItemResult` per item, in
        order. At most :data:`~conversa.app.accept.MAX_BATCH` items."""
        if len(items) > MAX_BATCH:
            raise InvalidRequest("messages", f"a batch holds at most {MAX_BATCH} messages")
        return self.acceptor.accept(items, scope)

    def _drain_runs(self) -> bool:
        """Whether a drain runs, here or in another process (it holds the lock)."""
        if self.drain.read_to is not None:
            return True
        with self.backend.lock(DRAIN_LOCK) as lock:
            return not lock

    def wake_dispatcher(self) -> None:
        """Tell this process's dispatcher that messages were queued."""
        self._dispatch_wake.set()

    def _fallback(
        self,
        options: Mapping[str, Any],
        channel: Channel,
        message_id: UUID,
        recipient: PhoneNumber,
        content: Content,
    ) -> _Fallback | None:
        """The fallback a send asks for, checked: the SMS driver must be able to send it,
        and a template needs an SMS text in the templates file."""
        if "fallback" not in options:
            return None
        request = parse_fallback(options["fallback"], channel)
        if not self.settings.store_body:
            raise InvalidRequest(
                "fallback", "a fallback needs the content, which CONVERSA_STORE_BODY=false forbids"
            )
        text = None
        if isinstance(content, Template):
            text = self.fallback_texts(content.name, content.variables)
            if text is None:
                raise InvalidRequest(
                    "fallback",
                    f"template {content.name!r} has no SMS text in CONVERSA_TEMPLATES_FILE; "
                    'add sms = { text = "..." } to its table',
                )
        sms = Body(text) if text is not None else content
        self.drivers[request.channel].validate(
            OutboundMessage(message_id, request.channel, recipient, None, sms)
        )
        return _Fallback(request.channel, request.after_seconds, text)

    def send_fallback(self, original: Message) -> UUID:
        """Send the fallback of ``original`` (once: its id derives from the original's)."""
        assert original.fallback is not None
        channel, _due, text = original.fallback
        content = original.content
        payload: dict[str, Any]
        if text is not None:
            payload = {"body": text}
        elif isinstance(content, Body):
            payload = {"body": content.text}
        else:
            raise RuntimeError(f"message {original.id} has no content to fall back with")
        result = self.send(
            channel.value,
            original.to.e164,
            payload,
            {"idempotency_key": str(original.id), "meta": original.meta},
            scope=FALLBACK_SCOPE,
            fallback_of=original.id,
        )
        return result.message_id

    def run_fallbacks(self) -> int:
        """Send the WhatsApp-to-SMS fallbacks that are due (the worker calls this)."""
        return self.fallbacks.run(self.clock())

    def _own_write(self, attempted: Message) -> Message | None:
        """The stored message if this very request recorded it (its nonce), else None."""
        try:
            stored = self._get(attempted.id)
        except MessageNotFound:
            return None
        if attempted.nonce is None or stored.nonce != attempted.nonce:
            return None
        return stored

    def _replay(self, attempted: Message) -> SendResult:
        # An earlier request of this key that an outage interrupted in this process is
        # finished first, so that the replay reports what became of it.
        self.dispatcher.unfinished.finish(attempted.id)
        stored = self._get(attempted.id)
        if stored.fingerprint != attempted.fingerprint:
            raise IdempotencyKeyMismatch
        self.telemetry.send_replayed(stored.channel.value)
        return SendResult.of(stored, replayed=True)

    def subscribe(
        self,
        event_type: type[LifecycleEvent],
        handler: Handler,
        *,
        name: str | None = None,
        start: Start = "now",
        max_attempts: int | None = None,
        retry_base_seconds: float | None = None,
        retry_max_seconds: float | None = None,
    ) -> Subscription:
        """Hand every ``event_type`` event (a class of :mod:`conversa.events`, or
        ``LifecycleEvent`` for all) to ``handler``, at least once, in order per message.

        ``name`` keys the subscriber's stored position: keep it stable across restarts.
        It defaults to the handler's qualified name and the event type.

        ``start`` says where a new subscriber (one with no stored position) begins:
        ``"now"``, after the events stored when it is registered (its position is stored
        at once, so a restart keeps that start), or ``"beginning"``, the whole history. A
        subscriber that has a position resumes from it, whatever ``start`` says.

        The events are handed over inside :meth:`running` in this process, or by a worker
        (``conversa worker``, or a server's own) configured with the subscriber.
        """
        if not (isinstance(event_type, type) and issubclass(event_type, LifecycleEvent)):
            raise TypeError("event_type must be one of the classes of conversa.events")
        if start not in ("now", "beginning"):
            raise ValueError(f"start must be 'now' or 'beginning', not {start!r}")
        if self._running:
            raise RuntimeError(
                "subscribe before service.running(): it runs the subscribers it starts with"
            )
        types = EVENT_TYPES if event_type is LifecycleEvent else (event_type,)
        if name is None:
            qualname = getattr(handler, "__qualname__", type(handler).__qualname__)
            if "<lambda>" in qualname or "<locals>" in qualname:
                raise ValueError("give a name= to a subscriber defined inline")
            module = getattr(handler, "__module__", type(handler).__module__)
            name = f"{module}.{qualname}:{event_type.type_name}"
        if any(s.name == name for s in self.subscriptions):
            raise ValueError(f"a subscriber named {name!r} is already registered")
        settings = self.settings
        subscription = Subscription(
            name=name,
            handler=handler,
            event_types=types,
            max_attempts=max_attempts or settings.subscriber_max_attempts,
            retry_base_seconds=retry_base_seconds or settings.subscriber_retry_base_seconds,
            retry_max_seconds=retry_max_seconds or settings.subscriber_retry_max_seconds,
        )
        if start == "now":
            self.subscriber_store.start_at(name, self.feed.head())
        self.subscriptions.append(subscription)
        return subscription

    @contextmanager
    def running(self, *, drain_timeout: float = 10.0) -> Iterator[None]:
        """Run, in background threads of this process, what ``conversa worker`` runs: the
        projection of the message log, the dispatcher (retries, sends a crash left
        unfinished, clean-ups) and every subscriber registered so far.

        Leaving the block normally first waits, up to ``drain_timeout`` seconds, until the
        subscribers have taken and the projection has applied every event stored by then;
        leaving it with an exception does not wait. Either way the threads are stopped and
        joined before the block ends; whatever a subscriber has not taken yet is handed
        over the next time it runs. Another process (a worker) that runs the projection or
        a subscriber of the same name keeps doing so; this process stands by for it.
        """
        from conversa.app.worker import Worker  # it drives this service

        with self._running_lock:
            if self._running:
                raise RuntimeError("the service is already running")
            self._running = True
        stop = threading.Event()
        self.drain.tried.clear()  # what this run's worker finds, not an earlier run's
        thread = Worker(self).start(stop)
        try:
            yield
            self._drain(thread, drain_timeout)
        finally:
            stop.set()
            thread.join()
            with self._running_lock:
                self._running = False

    def _drain(self, worker: threading.Thread, timeout: float) -> None:
        head = self.feed.head()
        deadline = time.monotonic() + timeout
        while worker.is_alive():
            behind = [
                s.name
                for s in self.subscriptions
                if self.feed.has_events(self.subscriber_store.position(s.name), head)
            ]
            if self.projector().status().position < head:
                behind.append("the projection")
            if self._drain_behind(head):
                behind.append("the dispatcher")
            if not behind:
                return
            if time.monotonic() >= deadline:
                log.warning(
                    "stopping before %s took every event (%.0f s); the rest is handed over "
                    "the next time",
                    ", ".join(behind),
                    timeout,
                )
                return
            time.sleep(DRAIN_POLL)

    def _drain_behind(self, head: int) -> bool:
        """Whether this process's drain has yet to send what was queued up to ``head``
        (false when another process drains)."""
        drain = self.drain
        if not drain.tried.is_set():
            return True  # starting: it is about to take the lock, or to stand by
        if not drain.holds:
            return False
        return not drain.caught_up(head)

    def record_report(self, report: StatusReport) -> ReportOutcome:
        """Apply a provider's status report (see :class:`Reporter`)."""
        return self.reporter.record(report)

    def record_inbound(self, report: InboundReport) -> bool:
        """Record an inbound message; False when it is recorded already (a provider's
        retry). Its body is kept only with ``CONVERSA_STORE_BODY``."""
        return record_inbound_with_keywords(self, report)

    def expire_parked_reports(self) -> int:
        """Give up on reports parked longer than ``CONVERSA_PARKED_REPORT_HOURS`` for a
        provider id no send claimed; return how many. The worker calls this periodically."""
        return self.reporter.expire_parked(self.clock())

    # Reading

    def get_message(self, message_id: UUID | str) -> MessageState:
        inbound = self.get_inbound(message_id)
        if inbound is not None:
            return MessageState.of_inbound(inbound)
        return MessageState.of(self._get(_as_uuid(message_id)))

    def get_inbound(self, message_id: UUID | str) -> InboundMessage | None:
        """The inbound message of this id; None when there is none (or it is outbound)."""
        events = list(self.app.events.get(_as_uuid(message_id), limit=1))
        if not events or not isinstance(events[0], InboundMessage.Received):
            return None
        message = events[0].mutate(None)
        assert isinstance(message, InboundMessage)
        return message

    def message_history(self, message_id: UUID | str) -> tuple[MessageState, list[dict[str, Any]]]:
        """The message as it stands and its whole history, oldest first, from one read."""
        events = list(self.app.events.get(_as_uuid(message_id)))
        if events and isinstance(events[0], InboundMessage.Received):
            inbound = events[0].mutate(None)
            assert isinstance(inbound, InboundMessage)
            return MessageState.of_inbound(inbound), [
                {"type": "received", "occurred_at": rfc3339(inbound.received_at), "version": 1}
            ]
        message: Message | None = None
        for event in events:
            if not isinstance(event, Message.Event):
                raise MessageNotFound(message_id)
            message = event.mutate(message)
        if message is None:
            raise MessageNotFound(message_id)
        return MessageState.of(message), [
            describe(e) for e in events if isinstance(e, Message.Event)
        ]

    def list_messages(self, query: MessageQuery) -> MessagePage:
        return self.view.query(query)

    def projector(self, *, batch_size: int = DEFAULT_BATCH_SIZE) -> Projector:
        return Projector(
            self.app,
            self.view,
            batch_size=batch_size,
            keep_finished=self.settings.log_messages,
        )

    def _get(self, message_id: UUID) -> Message:
        return load_message(self.app, message_id)

    # Lifecycle

    def close(self) -> None:
        try:
            self.dispatcher.unfinished.close()
            self.writer.close()  # commits what is queued
            self.app.close()
        finally:
            if self._on_close is not None:
                self._on_close()

    def __enter__(self) -> ConversaService:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _check_options(opts: Mapping[str, Any]) -> dict[str, Any]:
    unknown = set(opts) - SEND_OPTIONS
    if unknown:
        field = sorted(unknown)[0]
        raise InvalidRequest(
            field, f"unknown option {field}; known: {', '.join(sorted(SEND_OPTIONS))}"
        )
    options = {k: v for k, v in opts.items() if v is not None}
    key = options.get("idempotency_key")
    if key is not None and (
        not isinstance(key, str) or not key.strip() or len(key) > MAX_IDEMPOTENCY_KEY
    ):
        raise InvalidRequest(
            "idempotency_key", f"the idempotency key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        )
    if key is not None and not is_storable(key):
        raise InvalidRequest("idempotency_key", f"the idempotency key {UNSTORABLE}")
    sender = options.get("from")
    if sender is not None and (not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER):
        raise InvalidRequest("from", f"from must be a sender of 1 to {MAX_SENDER} characters")
    if sender is not None and not is_storable(sender):
        raise InvalidRequest("from", f"from {UNSTORABLE}")
    meta = options.get("meta")
    if meta is not None:
        check_meta(meta)
    check_terms(options)
    return options


def _fingerprint(
    channel: Channel,
    to: PhoneNumber,
    content: Content,
    options: Mapping[str, Any],
    include_content: bool,
) -> str:
    """A digest of everything that makes a request what it is, to tell a retry of the same
    request from a different request that reuses its idempotency key.

    When bodies must not be stored, the digest covers only the content's shape (its length,
    or the template's name and number of variables): a digest of a short text such as a
    one-time code could be reversed by trying every code.
    """
    shape: dict[str, object] = (
        {"body": len(content.text)}
        if isinstance(content, Body)
        else {"template": content.name, "variables": len(content.variables)}
    )
    described: dict[str, object] = {
        "channel": channel.value,
        "to": to.e164,
        "content": content.as_dict() if include_content else shape,
        "from": options.get("from"),
        "meta": options.get("meta", {}),
    }
    if "fallback" in options:  # only then, so that earlier requests keep their digest
        described["fallback"] = options["fallback"]
    described.update(fingerprint_terms(options))
    canonical = json.dumps(
        described,
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(canonical.encode()).hexdigest()


def _as_uuid(value: UUID | str) -> UUID:
    if isinstance(value, UUID):
        return value
    try:
        return UUID(value)
    except ValueError:
        raise MessageNotFound(value) from None


def _utc_now() -> datetime:
    return datetime.now(UTC)
