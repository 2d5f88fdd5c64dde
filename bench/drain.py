"""Batch accepts and the dispatcher's drain, in-process, on PostgreSQL with the log driver.

Each run queues ``--count`` messages through ``ConversaService.send_batch`` (batches of
1,000, each item with its own key), then starts the drain alone (no projection, no HTTP)
and times it until the last message is sent, as the event store says. Prints messages/s
accepted and drained, medians of the runs.

    python -m bench.drain [--count 20000] [--runs 3]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import bench_settings, scratch_database
from bench._stats import Summary, quiet_logging
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from conversa.app.worker import Worker

BATCH = 1000


def accept(service: ConversaService, count: int, run: int) -> tuple[float, str]:
    """Queue ``count`` messages; return the seconds it took and the last message's id."""
    started = time.perf_counter()
    last = ""
    for first in range(0, count, BATCH):
        items = [
            {
                "channel": "sms",
                "to": f"+1202555{n % 10_000:04d}",
                "body": f"benchmark message {run}-{n}",
                "idempotency_key": f"drain-{run}-{n}",
            }
            for n in range(first, min(first + BATCH, count))
        ]
        results = service.send_batch(items)
        if not all(r.result is not None and not r.result.replayed for r in results):
            raise AssertionError("a batch item was refused or replayed")
        last = str(results[-1].result.message_id)  # type: ignore[union-attr]
    return time.perf_counter() - started, last


def drain(service: ConversaService, last: str) -> float:
    """Run the drain until ``last`` is sent; return the seconds it took."""
    stop = threading.Event()
    started = time.perf_counter()
    thread = threading.Thread(
        target=Worker(service).run_exclusive, args=("dispatcher", service.drain.run, stop)
    )
    thread.start()
    try:
        while service.get_message(last).status == "queued":
            time.sleep(0.01)
        return time.perf_counter() - started
    finally:
        stop.set()
        thread.join()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.drain", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=20_000, help="messages per run (20000)")
    parser.add_argument("--runs", type=int, default=3, help="timed runs (3)")
    args = parser.parse_args(argv)
    if args.count < 1 or args.runs < 1:
        parser.error("--count and --runs must be at least 1")
    accepted: list[float] = []
    drained: list[float] = []
    for run in range(args.runs):
        with scratch_database() as url:
            settings = bench_settings(url)
            migrate(settings)
            with bootstrap(settings) as service, quiet_logging():
                seconds, last = accept(service, args.count, run)
                accepted.append(args.count / seconds)
                drained.append(args.count / drain(service, last))
    print(Summary.of(accepted).line("send_batch accepted", "msgs/s", args.count), flush=True)
    print(Summary.of(drained).line("drain sent", "msgs/s", args.count), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
