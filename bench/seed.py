"""Fast, faithful seeding of Conversa's event store: a million messages in about a minute.

``app.save`` of 500 aggregates at a time writes about 5,000-25,000 events/s here, most of
it Python: building each aggregate through its commands, then the JSON transcoder. The
seeder below writes the bytes ``app.save`` would write, faster:

- the stored state of each kind of event comes from a template, made once by running the
  domain commands on a message with marker values and mapping its events with the
  application's own mapper; rendering an event is then a string substitution;
- rows go in with ``COPY`` inside a transaction that takes the same ``EXCLUSIVE`` lock and
  sends the same ``NOTIFY`` as the recorder's insert, so a live projection sees them in
  order, as it would see a save;
- every :data:`VERIFY_EVERY`-th message is also built for real (the commands, then the
  mapper) and its rendered events must decode to exactly those events, or the seeding
  stops. When the mapper's output cannot be templated (a cipher or a compressor is
  configured), every event is built and mapped for real instead: slow, still correct.
"""

from __future__ import annotations

import json
import random
import secrets
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
from eventsourcing.persistence import StoredEvent
from eventsourcing.utils import get_topic
from psycopg import sql

from conversa.app.application import ConversaApp
from conversa.domain.content import Body
from conversa.domain.message import ATTEMPT_BY_REQUEST, Message
from conversa.domain.phone import PhoneNumber
from conversa.domain.provider_message import ProviderMessage, provider_message_id_for
from conversa.domain.status import Status

EVENTS_TABLE = "conversa_events"
#: Rows per COPY transaction.
CHUNK = 20_000
VERIFY_EVERY = 997
#: A plausible idempotency fingerprint (the service stores a SHA-256 hex digest).
FINGERPRINT = "5" * 64
#: Messages go to +1 202 555 0000 to 9999 (possible numbers, as Conversa requires).
RECIPIENTS = 10_000
#: The lease the service puts on a send's first attempt (CONVERSA_ATTEMPT_LEASE_SECONDS).
LEASE = timedelta(seconds=60)

Row = tuple[UUID, int, str, bytes]


_random = random.Random(secrets.randbits(64))


def uuid4() -> UUID:
    """A random (version 4) UUID, three times cheaper than ``uuid.uuid4``'s urandom call."""
    return UUID(int=_random.getrandbits(128), version=4)


def recipient(n: int) -> str:
    return f"+1202555{n % RECIPIENTS:04d}"


@dataclass(frozen=True, slots=True)
class MessageSpec:
    """One message to seed and what happened to it."""

    id: UUID
    created_at: datetime
    channel: str
    to: str
    body: str
    driver: str
    outcome: Status  # SENT, DELIVERED or FAILED
    provider_message_id: str | None = None
    #: Also open the provider-id index, as a send through a reporting driver (Twilio) does.
    indexed: bool = False

    @property
    def events(self) -> int:
        return len(self.times())

    def times(self) -> list[datetime]:
        """When each event happened: queued at ``created_at``, the driver's outcome (and
        the index) 5 ms later, a delivery report 2 s after that."""
        outcome = self.created_at + timedelta(milliseconds=5)
        times = [self.created_at, outcome]
        if self.outcome is Status.DELIVERED:
            times.append(outcome + timedelta(seconds=2))
        if self.indexed:
            times.append(outcome)
        return times


def log_messages(
    count: int, *, start: int = 0, base: datetime | None = None
) -> Iterator[MessageSpec]:
    """Messages as the ``log`` driver leaves them, for the list and rebuild measures: one in
    two delivered, one in twenty failed, the rest sent (2.5 events a message); one in five
    on WhatsApp; ``recipient(n)`` as the number; one millisecond apart from ``base``."""
    base = base or default_base(start + count)
    for n in range(start, start + count):
        outcome = Status.FAILED if n % 20 == 19 else Status.DELIVERED if n % 2 == 0 else Status.SENT
        yield MessageSpec(
            id=uuid4(),
            created_at=base + timedelta(milliseconds=n),
            channel="whatsapp" if n % 5 == 4 else "sms",
            to=recipient(n),
            body=f"benchmark message {n}",
            driver="log",
            outcome=outcome,
            provider_message_id=None if outcome is Status.FAILED else f"log-{uuid4().hex}",
        )


def twilio_messages(count: int, *, base: datetime | None = None) -> Iterator[MessageSpec]:
    """SMS sent through Twilio, with their provider-id index, for status callbacks."""
    base = base or default_base(count)
    for n in range(count):
        yield MessageSpec(
            id=uuid4(),
            created_at=base + timedelta(milliseconds=n),
            channel="sms",
            to=recipient(n),
            body=f"benchmark message {n}",
            driver="twilio",
            outcome=Status.SENT,
            provider_message_id="SM" + uuid4().hex,
            indexed=True,
        )


def default_base(count: int) -> datetime:
    """A start that puts the last of ``count`` messages a millisecond apart a minute ago."""
    return datetime.now(UTC) - timedelta(milliseconds=count, minutes=1)


def domain_events(spec: MessageSpec) -> list[Any]:
    """The events the service's own commands record for ``spec``, stamped with its times."""
    message = Message(
        id=spec.id,
        channel=spec.channel,
        to=PhoneNumber.parse(spec.to),
        sender=None,
        content=Body(spec.body),
        driver=spec.driver,
        meta={},
        idempotency_key=None,
        fingerprint=FINGERPRINT,
        next_attempt_at=spec.created_at + LEASE,
        nonce=None,
        attempt_by=ATTEMPT_BY_REQUEST,
        reply_to=None,
        quote=None,
        category="transactional",
        consent_override=False,
        scheduled_at=None,
    )
    if spec.outcome is Status.FAILED:
        message.record_attempt_failed("invalid_recipient", "the provider refused the number")
    else:
        message.record_accepted(spec.provider_message_id or "", {"driver": spec.driver})
        if spec.outcome is Status.DELIVERED:
            message.record_report(Status.DELIVERED)
    events: list[Any] = list(message.collect_events())
    if spec.indexed:
        index = ProviderMessage.open(spec.driver, spec.provider_message_id or "", spec.id)
        events.extend(index.collect_events())
    return [replace(e, timestamp=t) for e, t in zip(events, spec.times(), strict=True)]


# Marker values: each appears in a mapped event only where its field is.
_MARK_ID = UUID("0badc0de-0000-4000-8000-00000000feed")
_MARK_TIME = datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=UTC)
_MARKS = {"body": "MarkBodyQ7x", "to": "+12025559876", "pmid": "MarkPmidZ3k", "channel": "whatsapp"}


class Templates:
    """The stored state of each event of a :class:`MessageSpec`, as ``str.format``
    templates, one list per shape (driver, outcome, indexed)."""

    def __init__(self, app: ConversaApp) -> None:
        self.app = app
        self._cache: dict[tuple[str, Status, bool], list[tuple[str, str]] | None] = {}

    def rows(self, spec: MessageSpec) -> list[Row] | None:
        """``(originator_id, version, topic, state)`` of each event of ``spec``, or None
        when this application's stored events cannot be templated."""
        shape = (spec.driver, spec.outcome, spec.indexed)
        if shape not in self._cache:
            self._cache[shape] = self._make(spec)
        templates = self._cache[shape]
        if templates is None:
            return None
        values = {
            "body": spec.body,
            "to": spec.to,
            "pmid": spec.provider_message_id or "",
            "channel": spec.channel,
            "mid": spec.id.hex,
            "next": (spec.created_at + LEASE).isoformat(),
        }
        index_id = provider_message_id_for(spec.driver, values["pmid"]) if spec.indexed else None
        rows: list[Row] = []
        for i, ((topic, state), moment) in enumerate(zip(templates, spec.times(), strict=True)):
            values["ts"] = moment.isoformat()
            originator, version = (
                (spec.id, i + 1) if index_id is None or topic != _OPENED else (index_id, 1)
            )
            rows.append((originator, version, topic, state.format(**values).encode()))
        return rows

    def _make(self, spec: MessageSpec) -> list[tuple[str, str]] | None:
        marked = replace(
            spec,
            id=_MARK_ID,
            created_at=_MARK_TIME,
            body=_MARKS["body"],
            to=_MARKS["to"],
            channel=_MARKS["channel"],
            provider_message_id=None if spec.provider_message_id is None else _MARKS["pmid"],
        )
        templates = []
        for event, moment in zip(domain_events(marked), marked.times(), strict=True):
            stored = self.app.mapper.to_stored_event(event)
            try:
                text = stored.state.decode("utf-8")
            except UnicodeDecodeError:
                return None  # compressed or enciphered
            text = text.replace("{", "{{").replace("}", "}}")
            marks = {
                moment.isoformat(): "ts",
                (marked.created_at + LEASE).isoformat(): "next",
                _MARK_ID.hex: "mid",
                **{mark: name for name, mark in _MARKS.items()},
            }
            for mark, name in marks.items():
                text = text.replace(json.dumps(mark), '"{' + name + '}"')
            if "{ts}" not in text:
                return None
            templates.append((stored.topic, text))
        return templates


_OPENED = get_topic(ProviderMessage.Opened)


class EventCopier:
    """COPYs seeded messages into ``conversa_events`` of the database at ``conninfo``."""

    def __init__(self, app: ConversaApp, conninfo: str, *, schema: str = "public") -> None:
        self.app = app
        self.conninfo = conninfo
        self.table = sql.Identifier(schema, EVENTS_TABLE)
        self.channel = sql.Identifier(f"{app.name}_events")
        self.templates = Templates(app)
        self.messages = 0

    def copy(self, specs: Iterable[MessageSpec]) -> int:
        """Store every message of ``specs``; return the number of events written."""
        written = 0
        chunk: list[Row] = []
        with psycopg.connect(self.conninfo) as conn:
            for spec in specs:
                chunk.extend(self._rows(spec))
                if len(chunk) >= CHUNK:
                    written += self._copy_chunk(conn, chunk)
            written += self._copy_chunk(conn, chunk)
        return written

    def _rows(self, spec: MessageSpec) -> Sequence[Row]:
        self.messages += 1
        rows = self.templates.rows(spec)
        if rows is None:
            return [_row(self.app.mapper.to_stored_event(e)) for e in domain_events(spec)]
        if self.messages % VERIFY_EVERY == 1:
            self.verify(spec, rows)
        return rows

    def verify(self, spec: MessageSpec, rows: Sequence[Row]) -> None:
        """Raise AssertionError unless ``rows`` decode to the events the commands record."""
        mapper = self.app.mapper
        want = domain_events(spec)
        got = [mapper.to_domain_event(StoredEvent(*row)) for row in rows]
        if got != want:
            msg = f"templated events do not decode as the real ones:\n{got!r}\n{want!r}"
            raise AssertionError(msg)

    def _copy_chunk(self, conn: psycopg.Connection[Any], chunk: list[Row]) -> int:
        if not chunk:
            return 0
        with conn.transaction(), conn.cursor() as cursor:
            # What the recorder does before its INSERT: commit order = notification order.
            cursor.execute(sql.SQL("LOCK TABLE {} IN EXCLUSIVE MODE").format(self.table))
            cursor.execute(sql.SQL("NOTIFY {}").format(self.channel))
            statement = sql.SQL(
                "COPY {} (originator_id, originator_version, topic, state) FROM STDIN "
                "(FORMAT BINARY)"
            ).format(self.table)
            with cursor.copy(statement) as copy:
                copy.set_types(["uuid", "int8", "text", "bytea"])
                for row in chunk:
                    copy.write_row(row)
        count = len(chunk)
        chunk.clear()
        return count


def _row(stored: StoredEvent) -> Row:
    originator = stored.originator_id
    return (
        originator if isinstance(originator, UUID) else UUID(originator),
        stored.originator_version,
        stored.topic,
        stored.state,
    )
