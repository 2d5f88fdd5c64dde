"""Importing consent from another system: many rows of (number, channel, scope, status).

Rows are taken in chunks: the chunk's recipients are read in one query (the recorder's
``select_events_of``, one read per number where a store has none), each row is applied
to its recipient (source ``import``; a row that already holds records nothing, so a
second run of the same file changes nothing), and the changed recipients are saved
together (``Writer.save_each``: one transaction per chunk; a recipient changed meanwhile
by someone else is refused alone and its rows are applied again on the fresh state).
A row that cannot be read is refused with its line and the field at fault; the others go
on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from conversa.app.application import ConversaApp
from conversa.app.consent import ConsentLedger, ConsentRequest
from conversa.app.writer import Writer
from conversa.domain.errors import InvalidRequest
from conversa.domain.phone import PhoneNumber
from conversa.domain.recipient import (
    ALL_CHANNELS,
    OPTED_OUT,
    SCOPE_ALL,
    Recipient,
)

#: Rows applied and saved together.
CHUNK = 2000
SOURCE = "import"


@dataclass(frozen=True, slots=True)
class ImportRow:
    line: int
    number: str
    change: ConsentRequest


@dataclass(slots=True)
class ImportResult:
    rows: int = 0
    changed: int = 0
    unchanged: int = 0
    #: (line, field, message) of each row refused.
    refused: list[tuple[int, str, str]] = field(default_factory=list)


def parse_row(line: int, raw: Mapping[str, Any]) -> ImportRow:
    """A CSV row (``number``; ``channel``, ``scope`` and ``status`` optional: all, all,
    opted_out), checked (``InvalidRequest`` naming the column)."""
    number = PhoneNumber.parse((raw.get("number") or "").strip(), field="number").e164
    change = ConsentRequest.parse(
        {
            "channel": (raw.get("channel") or ALL_CHANNELS).strip().lower(),
            "scope": (raw.get("scope") or SCOPE_ALL).strip().lower(),
            "status": (raw.get("status") or OPTED_OUT).strip().lower(),
        }
    )
    return ImportRow(line, number, change)


class ConsentImporter:
    def __init__(self, app: ConversaApp, writer: Writer, ledger: ConsentLedger) -> None:
        self.app = app
        self.writer = writer
        self.ledger = ledger

    def run(
        self,
        rows: Iterable[tuple[int, Mapping[str, Any]]],
        progress: Callable[[int], None] | None = None,
        *,
        chunk_size: int = CHUNK,
    ) -> ImportResult:
        """Import ``(line, row)`` pairs; ``progress(n)`` after each chunk of ``n`` rows."""
        result = ImportResult()
        chunk: list[ImportRow] = []
        taken = 0
        for line, raw in rows:
            taken += 1
            try:
                chunk.append(parse_row(line, raw))
            except InvalidRequest as error:
                result.refused.append((line, error.field, error.message))
            if taken >= chunk_size:
                self._apply(chunk, result)
                if progress is not None:
                    progress(taken)
                chunk, taken = [], 0
        if taken:
            self._apply(chunk, result)
            if progress is not None:
                progress(taken)
        return result

    def _apply(self, rows: list[ImportRow], result: ImportResult) -> None:
        result.rows += len(rows)
        if not rows:
            return
        recipients = self.load(row.number for row in rows)
        changed: dict[str, Recipient] = {}
        applied: dict[str, list[ImportRow]] = {}
        for row in rows:
            recipient = recipients.get(row.number)
            if recipient is None:
                recipient = recipients[row.number] = Recipient.register(row.number)
            change = row.change
            if recipient.set(change.status, change.channel, change.scope, SOURCE):
                changed[row.number] = recipient
                applied.setdefault(row.number, []).append(row)
                result.changed += 1
            else:
                result.unchanged += 1
        numbers = list(changed)
        refusals = self.writer.save_each([[changed[n]] for n in numbers])
        for number, refusal in zip(numbers, refusals, strict=True):
            if refusal is None:
                continue
            # Someone changed this recipient meanwhile: its rows again, on the new state.
            for row in applied[number]:
                change = row.change
                _, made = self.ledger.change(
                    number, change.status, change.channel, change.scope, SOURCE
                )
                if not made:
                    result.changed -= 1
                    result.unchanged += 1

    def load(self, numbers: Iterable[str]) -> dict[str, Recipient]:
        """The recorded recipients among ``numbers``, read in bulk where the store can."""
        return self.ledger.load_many(numbers)
