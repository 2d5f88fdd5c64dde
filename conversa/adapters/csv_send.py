"""``conversa send --csv FILE``: the rows of a CSV file as batch items.

Columns (a header row names them, in any order): ``channel``, ``to``, ``body`` or
``template`` with ``variables`` (a JSON array of strings), and optionally
``idempotency_key``, ``from`` and ``meta`` (a JSON object).

Every row is sent with an idempotency key, so that running the file again (after an
interruption, say) records nothing twice: its own ``idempotency_key``, or one derived from
the row's content and how many identical rows come before it in the file. Rows can be
added, removed or reordered between runs; an edited row is a new message.
"""

from __future__ import annotations

import csv
import hashlib
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

COLUMNS = frozenset(
    {"channel", "to", "body", "template", "variables", "idempotency_key", "from", "meta"}
)
REQUIRED = ("channel", "to")
#: The prefix of derived keys: a key of the file's own never starts with it by accident.
DERIVED_PREFIX = "csv-"


class CsvProblem(Exception):
    """The file as a whole cannot be read (its header, its encoding)."""


@dataclass(frozen=True, slots=True)
class Row:
    """One data row: its line in the file, and the batch item it makes or why it cannot."""

    line: int
    item: dict[str, Any] | None
    problem: tuple[str, str] | None = None  # (field, message)
    derived_key: bool = False


def count_rows(path: Path) -> int:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return max(sum(1 for _ in csv.reader(handle)) - 1, 0)


def read_rows(handle: TextIO) -> Iterator[Row]:
    reader = csv.DictReader(handle)
    try:
        header = reader.fieldnames
    except (csv.Error, UnicodeDecodeError) as error:
        raise CsvProblem(f"cannot read the header: {error}") from None
    if not header:
        raise CsvProblem("the file is empty: it needs a header row (channel,to,body,...)")
    names = [name.strip() for name in header]
    unknown = sorted(set(names) - COLUMNS)
    if unknown:
        raise CsvProblem(
            f"unknown column {unknown[0]!r}; the columns are {', '.join(sorted(COLUMNS))}"
        )
    missing = [name for name in REQUIRED if name not in names]
    if missing or not ({"body", "template"} & set(names)):
        raise CsvProblem("the header needs channel, to, and body or template")
    reader.fieldnames = names
    seen: Counter[str] = Counter()
    try:
        for record in reader:
            yield _row(reader.line_num, record, seen)
    except (csv.Error, UnicodeDecodeError) as error:
        raise CsvProblem(f"line {reader.line_num}: {error}") from None


def _row(line: int, record: dict[str, Any], seen: Counter[str]) -> Row:
    if None in record:
        return Row(line, None, ("row", "more cells than the header has columns"))
    cells: dict[str, str] = {k: (v or "").strip() for k, v in record.items()}
    item: dict[str, Any] = {"channel": cells.get("channel") or None, "to": cells.get("to") or None}
    if cells.get("body"):
        item["body"] = record["body"]
    if cells.get("template"):
        item["template"] = {"name": cells["template"], "variables": []}
        if cells.get("variables"):
            variables = _json(cells["variables"])
            if not isinstance(variables, list):
                return Row(line, None, ("variables", "variables must be a JSON array of strings"))
            item["template"]["variables"] = variables
    elif cells.get("variables"):
        return Row(line, None, ("variables", "variables need a template"))
    if cells.get("from"):
        item["from"] = cells["from"]
    if cells.get("meta"):
        meta = _json(cells["meta"])
        if not isinstance(meta, dict):
            return Row(line, None, ("meta", "meta must be a JSON object"))
        item["meta"] = meta
    if cells.get("idempotency_key"):
        item["idempotency_key"] = cells["idempotency_key"]
        return Row(line, item)
    content = json.dumps(item, sort_keys=True, separators=(",", ":"))
    seen[content] += 1
    digest = hashlib.sha256(f"{content}\x00{seen[content]}".encode()).hexdigest()[:40]
    item["idempotency_key"] = DERIVED_PREFIX + digest
    return Row(line, item, derived_key=True)


def _json(text: str) -> object:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None
