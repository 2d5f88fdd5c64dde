"""The benchmark's rows: medians of alternating rounds, a ratio to the baseline, one table."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class Figure:
    """One side of a row (Conversa, or its baseline): the medians of its rounds."""

    value: float
    p50_ms: float | None = None
    p99_ms: float | None = None
    #: The headline value of each round, in the order measured.
    rounds: list[float] = field(default_factory=list)
    detail: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def of_rounds(
        cls,
        values: Sequence[float],
        p50s: Sequence[float] = (),
        p99s: Sequence[float] = (),
        **detail: Any,
    ) -> Figure:
        return cls(
            value=statistics.median(values),
            p50_ms=statistics.median(p50s) if p50s else None,
            p99_ms=statistics.median(p99s) if p99s else None,
            rounds=[round(v, 2) for v in values],
            detail=detail,
        )


@dataclass
class Row:
    key: str
    label: str
    #: The unit of ``value``: a rate ("msgs/s", "events/s"...) where more is better, or
    #: "ms p99" / "MiB" where less is better.
    unit: str
    conversa: Figure | None = None
    baseline: Figure | None = None
    baseline_label: str = ""
    #: Why there is no figure ("not available: ..."), or a remark on the figure.
    note: str = ""

    @property
    def ratio(self) -> float | None:
        """Conversa's value divided by the baseline's, both from this invocation."""
        if self.conversa is None or self.baseline is None or self.baseline.value == 0:
            return None
        return self.conversa.value / self.baseline.value

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["ratio"] = None if self.ratio is None else round(self.ratio, 3)
        data["available"] = self.conversa is not None
        return data


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


HEADER = (
    "measure",
    "unit",
    "Conversa",
    "p50 ms",
    "p99 ms",
    "baseline",
    "p50 ms",
    "p99 ms",
    "ratio",
)


def table(rows: Sequence[Row]) -> str:
    """One plain-text table; "n/a" where Conversa has no figure, the reason in the notes
    below it with every other remark."""
    lines: list[tuple[str, ...]] = [HEADER]
    for row in rows:
        mine, base = row.conversa, row.baseline
        ratio = "-" if row.ratio is None else f"{row.ratio:.2f}x"
        lines.append(
            (
                row.label + (" *" if row.note else ""),
                row.unit,
                *_cells(mine, missing="n/a"),
                *_cells(base, missing="-"),
                ratio,
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = []
    for n, line in enumerate(lines):
        cells = [line[0].ljust(widths[0]), line[1].ljust(widths[1])]
        cells += [cell.rjust(width) for cell, width in zip(line[2:], widths[2:], strict=True)]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("-" * len(out[0]))
    labels_by_note: dict[str, list[str]] = {}
    for row in rows:
        if row.note:
            labels_by_note.setdefault(row.note, []).append(row.label)
    if labels_by_note:
        out.append("")
        out += [f"* {'; '.join(labels)}: {note}" for note, labels in labels_by_note.items()]
    return "\n".join(out)


def _cells(figure: Figure | None, *, missing: str) -> tuple[str, str, str]:
    if figure is None:
        return (missing, "-", "-")
    return (_number(figure.value), _number(figure.p50_ms), _number(figure.p99_ms))


def write_json(path: Path, header: dict[str, Any], rows: Sequence[Row]) -> None:
    document = {**header, "rows": [row.as_dict() for row in rows]}
    path.write_text(json.dumps(document, indent=2) + "\n")
