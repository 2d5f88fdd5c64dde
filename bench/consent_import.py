"""``conversa consent import`` speed on PostgreSQL: a CSV of ``--rows`` rows (default
100,000, one number each, mixed channels, scopes and states) imported into a scratch
database by the real command (a subprocess), then imported again (which must change
nothing). Prints both times; the target is under 60 s for 100,000 rows.

    python -m bench.consent_import [--rows 100000]
"""

from __future__ import annotations

import argparse
import csv
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a file: make `bench` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._db import scratch_database

TARGET_SECONDS = 60.0
CHANNELS = ("sms", "whatsapp", "all")
SCOPES = ("all", "all", "marketing")
STATUSES = ("opted_out", "opted_out", "opted_out", "opted_in")


def write_csv(path: Path, rows: int) -> None:
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["number", "channel", "scope", "status"])
        for i in range(rows):
            writer.writerow([f"+1555{i:07d}", CHANNELS[i % 3], SCOPES[i % 3], STATUSES[i % 4]])


def conversa(*args: str, url: str, cwd: Path) -> tuple[float, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env["CONVERSA_DATABASE_URL"] = url
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "conversa", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise SystemExit(f"conversa {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return seconds, done.stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch, scratch_database() as url:
        cwd = Path(scratch)
        path = cwd / "consent.csv"
        write_csv(path, args.rows)
        conversa("migrate", url=url, cwd=cwd)
        first, said = conversa("consent", "import", str(path), url=url, cwd=cwd)
        print(f"first run:  {first:6.1f} s  ({said})")
        second, said_again = conversa("consent", "import", str(path), url=url, cwd=cwd)
        print(f"second run: {second:6.1f} s  ({said_again})")
        changed = re.search(r"(\d+) changed", said_again)
        if changed is None or changed.group(1) != "0":
            print("the second run changed something: not idempotent")
            return 1
        verdict = "within" if first < TARGET_SECONDS else "OVER"
        print(
            f"{args.rows:,} rows: {args.rows / first:,.0f} rows/s, {verdict} {TARGET_SECONDS:.0f} s"
        )
        return 0 if first < TARGET_SECONDS else 1


if __name__ == "__main__":
    sys.exit(main())
