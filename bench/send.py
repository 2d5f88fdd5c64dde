"""Single sends per second through ``ConversaService.send`` with the ``log`` driver.

Each send records a message, hands it to the driver and records the outcome: two
transactions and a read in between. Measured on PostgreSQL (a scratch database) without
and with an idempotency key, and on SQLite in a temporary directory for comparison.

    python -m bench.send [--count 2000] [--runs 5] [--warmup 50] [--backend postgresql]
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

if __package__ in (None, ""):  # run as a file (python bench/send.py): make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import bench_settings, scratch_database
from bench._stats import Summary, quiet_logging
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService

RECIPIENT = "+15551234567"


@dataclass(frozen=True, slots=True)
class Variant:
    label: str
    backend: str
    database: Callable[[], contextlib.AbstractContextManager[str]]
    keyed: bool


@contextlib.contextmanager
def sqlite_database() -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix="conversa-bench-") as directory:
        yield f"sqlite:///{Path(directory) / 'bench.sqlite3'}"


VARIANTS = (
    Variant("postgresql send", "postgresql", scratch_database, keyed=False),
    Variant("postgresql send with idempotency key", "postgresql", scratch_database, keyed=True),
    Variant("sqlite send", "sqlite", sqlite_database, keyed=False),
    Variant("sqlite send with idempotency key", "sqlite", sqlite_database, keyed=True),
)


class Sender:
    """Sends distinct messages, each with a fresh idempotency key when ``keyed``."""

    def __init__(self, service: ConversaService, *, keyed: bool) -> None:
        self.service = service
        self.keyed = keyed
        self.sent = 0

    def send(self, count: int) -> float:
        """Send ``count`` messages; return the seconds it took."""
        started = time.perf_counter()
        for _ in range(count):
            n = self.sent = self.sent + 1
            opts = {"idempotency_key": f"bench-{n}"} if self.keyed else None
            result = self.service.send("sms", RECIPIENT, {"body": f"benchmark message {n}"}, opts)
            if result.replayed or not result.ok:
                msg = f"send {n} was not a new, accepted send: {result.status} {result.error}"
                raise AssertionError(msg)
        return time.perf_counter() - started


def bench_variant(variant: Variant, *, count: int, runs: int, warmup: int) -> Summary:
    with variant.database() as url:
        settings = bench_settings(url)
        migrate(settings)
        with bootstrap(settings) as service, quiet_logging():
            sender = Sender(service, keyed=variant.keyed)
            sender.send(warmup)
            rates = [count / sender.send(count) for _ in range(runs)]
    return Summary.of(rates)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.send", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=2000, help="sends per run (2000)")
    parser.add_argument("--runs", type=int, default=5, help="timed runs per backend (5)")
    parser.add_argument("--warmup", type=int, default=50, help="untimed sends first (50)")
    parser.add_argument(
        "--backend",
        choices=("postgresql", "sqlite"),
        action="append",
        help="only this backend (repeatable; default: both)",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.runs < 1 or args.warmup < 0:
        parser.error("--count and --runs must be at least 1, --warmup at least 0")
    backends = set(args.backend or ("postgresql", "sqlite"))
    for variant in VARIANTS:
        if variant.backend in backends:
            summary = bench_variant(variant, count=args.count, runs=args.runs, warmup=args.warmup)
            print(summary.line(variant.label, "sends/s", args.count), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
