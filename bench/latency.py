"""How long after ``send()`` returns a message shows in ``conversa_messages`` as sent.

A worker thread follows the event store (LISTEN/NOTIFY on PostgreSQL, 50 ms polling on
SQLite); each send is followed by a tight poll of the read model. Prints the median and
the 90th percentile in milliseconds.

    python -m bench.latency [--count 200]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench._db import bench_settings, scratch_database
from bench._stats import quiet_logging
from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.worker import Worker


def measure(url: str, count: int) -> list[float]:
    settings = bench_settings(url)
    migrate(settings)
    latencies = []
    with bootstrap(settings) as service:
        stop = threading.Event()
        worker = Worker(service).start(stop)
        try:
            time.sleep(0.5)  # let the worker take the projection lock
            for n in range(count):
                sent = service.send("sms", "+15551234567", {"body": f"n{n}"})
                done = time.perf_counter()
                while (row := service.view.get(sent.message_id)) is None or row.status != "sent":
                    time.sleep(0.0005)
                latencies.append((time.perf_counter() - done) * 1000)
        finally:
            stop.set()
            worker.join(30)
    return latencies


def report(label: str, latencies: list[float]) -> None:
    ordered = sorted(latencies)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    print(
        f"{label} read-model latency: median {statistics.median(ordered):.1f} ms, "
        f"p90 {p90:.1f} ms over {len(ordered)} sends"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--count", type=int, default=200)
    args = parser.parse_args()
    with quiet_logging(), scratch_database() as url:
        report("postgresql", measure(url, args.count))
    with quiet_logging(), tempfile.TemporaryDirectory() as directory:
        report("sqlite", measure(f"sqlite:///{Path(directory) / 'bench.sqlite3'}", args.count))


if __name__ == "__main__":
    main()
