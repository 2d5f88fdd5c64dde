"""What one benchmark invocation measures, and how long it spends on each measure."""

from __future__ import annotations

import sys
import uuid
from dataclasses import dataclass
from pathlib import Path

PHASES = ("sends", "webhooks", "projection", "list", "statements")
HTTP_PHASES = frozenset({"sends", "webhooks"})
LIST_FILTERS: tuple[tuple[str, str], ...] = (
    ("none", ""),
    ("status", "status=delivered"),
    ("channel", "channel=whatsapp"),
    ("to", "to=%2B12025550042"),
    ("status_channel", "status=failed&channel=whatsapp"),
    ("to_status", "to=%2B12025550042&status=delivered"),
)
#: The webhook measure needs one seeded message per report; this bounds the rate it can
#: measure without reusing a report (which would then change nothing).
WEBHOOK_MAX_RATE = 3000


@dataclass(frozen=True, slots=True)
class Config:
    quick: bool
    seconds: float
    rounds: int
    clients: tuple[int, ...]
    webhook_clients: int
    lag_clients: int
    batch_items: int
    workers: int
    events: int
    rows: int
    list_seconds: float
    log_level: str
    phases: frozenset[str]
    output: Path
    run_id: str

    @property
    def webhook_pool(self) -> int:
        return int(self.rounds * self.seconds * WEBHOOK_MAX_RATE) + 1000

    def log(self, message: str) -> None:
        print(message, file=sys.stderr, flush=True)


def new_run_id() -> str:
    return uuid.uuid4().hex[:10]
