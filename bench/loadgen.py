"""The load generator: wrk, driven by the Lua scripts in ``bench/lua``.

wrk is a C program with an event loop per thread: it keeps 64 connections busy with a
fraction of a core, where a Python generator would need about as much CPU as the server it
measures. Each script makes every request distinct (its own Idempotency-Key and body, or
its own pre-signed webhook) and counts the answers by status; ``done()`` prints one JSON
line that :func:`run` parses. Latency percentiles are wrk's, over completed requests.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

LUA = Path(__file__).resolve().parent / "lua"
RESULT_PREFIX = "BENCH_RESULT "
#: A request slower than this is counted as a timeout by wrk and has no latency.
REQUEST_TIMEOUT_SECONDS = 60

INSTALL_HINT = """\
the benchmark drives its load with wrk, which is not installed.
Install it, then run the benchmark again:
    Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y wrk
    Fedora:         sudo dnf install wrk
    macOS:          brew install wrk
    from source:    git clone https://github.com/wg/wrk && make -C wrk && cp wrk/wrk /usr/local/bin/
(`make bench ARGS="--only projection"` measures the projection without HTTP and needs no wrk.)"""


class WrkMissing(RuntimeError):
    def __init__(self) -> None:
        super().__init__(INSTALL_HINT)


class WrkFailed(RuntimeError):
    pass


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise WrkMissing
    return found


@dataclass(frozen=True, slots=True)
class LoadResult:
    """One wrk run."""

    seconds: float
    requests: int
    #: Messages (or reports, or pages) answered as accepted; a batch counts its items.
    items: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    statuses: dict[int, int] = field(default_factory=dict)
    errors: dict[str, int] = field(default_factory=dict)
    #: The most requests one wrk thread made (the replay script: lines it consumed).
    used: int = 0

    @property
    def rate(self) -> float:
        """Accepted items per second."""
        return self.items / self.seconds if self.seconds > 0 else 0.0

    @property
    def failures(self) -> int:
        """Requests not answered as expected, and socket errors and timeouts."""
        socket_errors = sum(n for kind, n in self.errors.items() if kind != "status")
        unexpected = self.requests - sum(self.statuses.get(s, 0) for s in (200, 201, 202))
        return socket_errors + unexpected

    def describe_failures(self) -> str:
        parts = [f"{n}x {status}" for status, n in sorted(self.statuses.items()) if status >= 300]
        parts += [f"{n} {kind} errors" for kind, n in self.errors.items() if kind != "status" and n]
        return ", ".join(parts)


def run(
    script: str,
    url: str,
    *,
    connections: int,
    seconds: float,
    args: list[str],
    threads: int = 2,
) -> LoadResult:
    """Run ``bench/lua/<script>.lua`` against ``url`` with ``connections`` connections for
    ``seconds``; ``args`` go to the script's ``init``. Never more threads than connections
    (wrk gives each thread ``connections // threads`` connections)."""
    threads = max(1, min(threads, connections))
    with tempfile.NamedTemporaryFile("w", suffix=".lua", prefix="bench-") as source:
        source.write((LUA / "common.lua").read_text() + "\n" + (LUA / f"{script}.lua").read_text())
        source.flush()
        command = [
            wrk_binary(),
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            f"--timeout={REQUEST_TIMEOUT_SECONDS}s",
            "-s",
            source.name,
            url,
            "--",
            *args,
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=seconds + REQUEST_TIMEOUT_SECONDS + 120,
            check=False,
        )
    for line in done.stdout.splitlines():
        if line.startswith(RESULT_PREFIX):
            return _parse(json.loads(line.removeprefix(RESULT_PREFIX)))
    raise WrkFailed(
        f"wrk exited {done.returncode} without a result:\n{done.stdout[-2000:]}\n"
        f"{done.stderr[-2000:]}"
    )


def _parse(raw: dict[str, object]) -> LoadResult:
    latency = raw["latency_us"]
    errors = raw["errors"]
    statuses = raw["statuses"]
    assert isinstance(latency, dict) and isinstance(errors, dict) and isinstance(statuses, dict)
    duration = raw["duration_us"]
    requests = raw["requests"]
    items = raw["items"]
    used = raw["used"]
    assert isinstance(duration, int) and isinstance(requests, int)
    assert isinstance(items, int) and isinstance(used, int)
    return LoadResult(
        seconds=duration / 1e6,
        requests=requests,
        items=items,
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        max_ms=latency["max"] / 1000,
        statuses={int(status): int(n) for status, n in statuses.items()},
        errors={str(kind): int(n) for kind, n in errors.items()},
        used=used,
    )


class ReplayFile:
    """Requests prepared beforehand (``path<TAB>signature<TAB>body`` lines) for
    ``replay.lua``, each used once across runs: a run starts where the last one stopped.
    ``reused`` says whether a run ran past the last line and started again."""

    def __init__(self, path: Path, lines: Iterable[str]) -> None:
        self.path = path
        self.offsets: list[int] = []
        position = 0
        with path.open("wb") as out:
            for line in lines:
                data = line.encode()
                self.offsets.append(position)
                out.write(data)
                position += len(data)
        self.next_line = 0
        self.reused = False

    def run(self, url: str, *, connections: int, seconds: float) -> LoadResult:
        threads = max(1, min(2, connections))
        if self.next_line + threads > len(self.offsets):
            self.next_line, self.reused = 0, True
        offset = self.offsets[self.next_line]
        result = run(
            "replay",
            url,
            connections=connections,
            seconds=seconds,
            args=[str(self.path), str(offset), str(threads)],
            threads=threads,
        )
        # Thread t took lines next+t, next+t+threads, ...: `used` of them at most.
        self.next_line += threads * result.used
        if self.next_line > len(self.offsets):
            self.next_line, self.reused = len(self.offsets), True
        return result
