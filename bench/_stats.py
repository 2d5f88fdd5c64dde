"""Summaries of repeated timings, printed as one plain line each."""

from __future__ import annotations

import contextlib
import logging
import statistics
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Summary:
    median: float
    low: float
    high: float
    runs: int

    @classmethod
    def of(cls, rates: Sequence[float]) -> Summary:
        if not rates:
            msg = "no runs to summarise"
            raise ValueError(msg)
        return cls(statistics.median(rates), min(rates), max(rates), len(rates))

    def line(self, label: str, unit: str, size: int | str) -> str:
        """``label: median 812 unit (min 790, max 830) over 5 runs of 2000``"""
        runs = f"{self.runs} run" if self.runs == 1 else f"{self.runs} runs"
        return (
            f"{label}: median {self.median:.0f} {unit} "
            f"(min {self.low:.0f}, max {self.high:.0f}) over {runs} of {size}"
        )


@contextlib.contextmanager
def quiet_logging() -> Iterator[None]:
    """Silence every logger while timing (the log driver logs each send)."""
    logging.disable(logging.CRITICAL)
    try:
        yield
    finally:
        logging.disable(logging.NOTSET)
