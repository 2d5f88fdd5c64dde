"""ConversaService: the use cases behind every adapter (HTTP, command line, Python)."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Callable, Mapping
from types import TracebackType
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from eventsourcing.persistence import IntegrityError

from conversa.app.application import ConversaApp
from conversa.app.history import describe
from conversa.app.ports import Driver, DriverError, DriverResult, OutboundMessage, StorageBackend
from conversa.app.projection import MessagePage, MessageQuery, MessagesView
from conversa.app.projector import Projector
from conversa.app.results import MessageState, SendResult
from conversa.app.settings import Settings
from conversa.app.tokens import TokenService
from conversa.domain.channel import Channel
from conversa.domain.content import Content, parse_content
from conversa.domain.errors import IdempotencyKeyMismatch, InvalidRequest
from conversa.domain.message import Message, message_id_for
from conversa.domain.phone import PhoneNumber

log = logging.getLogger(__name__)

#: Idempotency keys given through the Python API share this scope; HTTP scopes keys by token.
LOCAL_SCOPE = "local"
MAX_IDEMPOTENCY_KEY = 255
MAX_META_BYTES = 4096
MAX_SENDER = 64
SEND_OPTIONS = frozenset({"idempotency_key", "from", "meta"})
#: How often an outcome is re-applied when a status report changed the message meanwhile.
MAX_CONFLICT_RETRIES = 20


class MessageNotFound(LookupError):
    def __init__(self, message_id: object) -> None:
        super().__init__(f"no message with id {message_id}")


class ConversaService:
    def __init__(
        self,
        *,
        settings: Settings,
        app: ConversaApp,
        view: MessagesView,
        drivers: Mapping[Channel, Driver],
        backend: StorageBackend,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.settings = settings
        self.app = app
        self.view = view
        self.drivers = dict(drivers)
        self.backend = backend
        self._on_close = on_close  # closes what bootstrap opened for the drivers
        self.tokens = TokenService(app)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ConversaService:
        """Build the whole service from the ``CONVERSA_*`` environment, as the CLI does."""
        from conversa.app.bootstrap import bootstrap  # the composition root, resolved late

        return bootstrap(Settings.from_environ(environ))

    # Sending

    def send(
        self,
        channel: str,
        to: str,
        payload: Mapping[str, Any],
        opts: Mapping[str, Any] | None = None,
        *,
        scope: str = LOCAL_SCOPE,
    ) -> SendResult:
        """Record a message, hand it to the channel's driver once, and record the outcome.

        ``payload`` holds exactly one of ``body`` or ``template`` (``{"name",
        "variables"}``); ``opts`` may hold ``idempotency_key``, ``from`` and ``meta``.
        Invalid input raises :class:`~conversa.domain.errors.InvalidRequest` and stores
        nothing; a reused key with a different request raises ``IdempotencyKeyMismatch``.
        """
        options = _check_options(opts or {})
        parsed_channel = Channel.parse(channel)
        recipient = PhoneNumber.parse(to)
        content = parse_content(payload, parsed_channel)
        key: str | None = options.get("idempotency_key")
        driver = self.drivers[parsed_channel]
        message = Message(
            id=message_id_for(scope, key),
            channel=parsed_channel.value,
            to=recipient,
            sender=options.get("from"),
            content=content if self.settings.store_body else None,
            driver=driver.name,
            meta=options.get("meta", {}),
            idempotency_key=key,
            fingerprint=_fingerprint(parsed_channel, recipient, content, options),
            next_attempt_at=None,
        )
        try:
            self.app.save(message)
        except IntegrityError:
            if key is None:
                raise
            return self._replay(message)
        log.info(
            "queued message_id=%s channel=%s to=%s driver=%s",
            message.id,
            parsed_channel,
            recipient.masked(),
            driver.name,
        )
        return SendResult.of(self._dispatch(message, driver, content), replayed=False)

    def _replay(self, attempted: Message) -> SendResult:
        stored = self._get(attempted.id)
        if stored.fingerprint != attempted.fingerprint:
            raise IdempotencyKeyMismatch
        return SendResult.of(stored, replayed=True)

    def _dispatch(self, message: Message, driver: Driver, content: Content) -> Message:
        reason = driver.unavailable_reason(message.channel)
        if reason is not None:
            log.warning(
                "driver_unavailable message_id=%s driver=%s: %s", message.id, driver.name, reason
            )
            return self._record(
                message.id,
                lambda m: m.record_attempt_failed(
                    "driver_unavailable", reason, source="driver_unavailable"
                ),
            )
        outbound = OutboundMessage(message.id, message.channel, message.to, message.sender, content)
        try:
            result = driver.send(outbound)
        except Exception as error:
            # A driver must report refusals as results; an exception is a bug in it. The
            # message is failed rather than left queued, and the log says where to look.
            log.exception("driver %s raised on message_id=%s", driver.name, message.id)
            result = DriverResult(error=_driver_crash(driver.name, error))
        return self._record(message.id, lambda m: _apply_outcome(m, result))

    def _record(self, message_id: UUID, command: Callable[[Message], object]) -> Message:
        """Apply ``command`` to the latest version of a message and save it, again and
        again if a concurrent writer (a status report) got there first."""
        for _ in range(MAX_CONFLICT_RETRIES):
            message = self._get(message_id)
            command(message)
            try:
                self.app.save(message)
            except IntegrityError:
                continue
            return message
        msg = f"message {message_id} kept changing; gave up after {MAX_CONFLICT_RETRIES} tries"
        raise RuntimeError(msg)

    # Reading

    def get_message(self, message_id: UUID | str) -> MessageState:
        return MessageState.of(self._get(_as_uuid(message_id)))

    def message_history(self, message_id: UUID | str) -> tuple[MessageState, list[dict[str, Any]]]:
        """The message as it stands and its whole history, oldest first, from one read."""
        events = list(self.app.events.get(_as_uuid(message_id)))
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

    def projector(self, *, batch_size: int | None = None) -> Projector:
        if batch_size is None:
            return Projector(self.app, self.view)
        return Projector(self.app, self.view, batch_size=batch_size)

    def _get(self, message_id: UUID) -> Message:
        try:
            message: object = self.app.repository.get(message_id)
        except AggregateNotFoundError:
            raise MessageNotFound(message_id) from None
        if not isinstance(message, Message):
            raise MessageNotFound(message_id)
        return message

    # Lifecycle

    def close(self) -> None:
        try:
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


def _apply_outcome(message: Message, result: DriverResult) -> None:
    if result.ok and result.provider_message_id is not None:
        message.record_accepted(result.provider_message_id, result.response)
    else:
        error = result.error
        message.record_attempt_failed(
            error.code if error else "driver_error",
            error.message if error else "the driver returned neither a message id nor an error",
        )


def _driver_crash(driver: str, error: Exception) -> DriverError:
    return DriverError("driver_error", f"the {driver} driver failed: {type(error).__name__}")


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
    sender = options.get("from")
    if sender is not None and (not isinstance(sender, str) or not 0 < len(sender) <= MAX_SENDER):
        raise InvalidRequest("from", f"from must be a sender of 1 to {MAX_SENDER} characters")
    meta = options.get("meta")
    if meta is not None:
        if not isinstance(meta, dict):
            raise InvalidRequest("meta", "meta must be an object")
        try:
            size = len(json.dumps(meta, allow_nan=False).encode())
        except (TypeError, ValueError):
            raise InvalidRequest("meta", "meta must hold only JSON values") from None
        if size > MAX_META_BYTES:
            raise InvalidRequest("meta", f"meta must be at most {MAX_META_BYTES} bytes as JSON")
    return options


def _fingerprint(
    channel: Channel, to: PhoneNumber, content: Content, options: Mapping[str, Any]
) -> str:
    """A digest of everything that makes a request what it is, to tell a retry of the same
    request from a different request that reuses its idempotency key."""
    canonical = json.dumps(
        {
            "channel": channel.value,
            "to": to.e164,
            "content": content.as_dict(),
            "from": options.get("from"),
            "meta": options.get("meta", {}),
        },
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
