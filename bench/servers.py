"""The servers under test, as separate processes: started, watched and stopped.

Each server runs in its own session (process group), so stopping it stops its uvicorn
workers too, and nothing else. Logs go to files in the benchmark's temporary directory;
the working directory is that directory too, so no ``.env`` file is read.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
STOP_GRACE_SECONDS = 25
START_TIMEOUT_SECONDS = 90


class ServerFailed(RuntimeError):
    pass


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def clean_environment(extra: Mapping[str, str]) -> dict[str, str]:
    """This process's environment without any ``CONVERSA_*`` setting, plus ``extra``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    environ["PYTHONPATH"] = str(ROOT)
    environ.update(extra)
    return environ


@dataclass
class Server:
    """One service: its HTTP server process (uvicorn's supervisor) and any helpers."""

    name: str
    port: int
    http: subprocess.Popen[bytes]
    helpers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def serve_pids(self) -> list[int]:
        """The uvicorn worker processes (the supervisor's spawned children)."""
        return [
            pid
            for pid in _children(self.http.pid)
            if b"spawn_main" in _cmdline(pid) and b"resource_tracker" not in _cmdline(pid)
        ] or [self.http.pid]

    def check_alive(self) -> None:
        for process in (self.http, *self.helpers):
            if process.poll() is not None:
                raise ServerFailed(
                    f"{self.name}: {process.args!r} exited with {process.returncode}:\n"
                    f"{self.tail()}"
                )

    def tail(self, lines: int = 30) -> str:
        out = []
        for path in self.logs:
            with contextlib.suppress(OSError):
                text = path.read_text(errors="replace").splitlines()[-lines:]
                out.append(f"--- {path.name}\n" + "\n".join(text))
        return "\n".join(out)

    def stop(self) -> None:
        for process in (self.http, *self.helpers):
            _signal_group(process, signal.SIGTERM)
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        for process in (self.http, *self.helpers):
            try:
                process.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(process, signal.SIGKILL)
                process.wait(10)


def _signal_group(process: subprocess.Popen[bytes], signum: int) -> None:
    # The group is the one start_new_session made for this process: ours alone.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signum)


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        with contextlib.suppress(OSError):
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return b""


def rss_mib(pid: int) -> float | None:
    """Resident memory of ``pid`` in MiB (VmRSS), or None when it is gone."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def _spawn(command: list[str], environ: Mapping[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            env=dict(environ),
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def start_conversa(
    environ: Mapping[str, str],
    *,
    port: int,
    workers: int,
    log_dir: Path,
    name: str = "conversa",
    worker: bool = True,
) -> Server:
    """``conversa serve --workers N --no-worker`` and (unless not ``worker``) one
    ``conversa worker``."""
    env = clean_environment(environ)
    http_log, worker_log = log_dir / f"{name}-serve.log", log_dir / f"{name}-worker.log"
    serve = [sys.executable, "-m", "conversa", "serve", "--host", "127.0.0.1"]
    serve += ["--port", str(port), "--workers", str(workers), "--no-worker"]
    server = Server(name, port, _spawn(serve, env, http_log), logs=[http_log, worker_log])
    if worker:
        command = [sys.executable, "-m", "conversa", "worker"]
        server.helpers.append(_spawn(command, env, worker_log))
    wait_healthy(server, "/conversa/health", workers)
    return server


def start_crud(
    environ: Mapping[str, str], *, port: int, workers: int, log_dir: Path, name: str = "crud"
) -> Server:
    """``python -m bench.crud_baseline serve`` with the same uvicorn workers."""
    log = log_dir / f"{name}.log"
    command = [sys.executable, "-m", "bench.crud_baseline", "serve"]
    command += ["--port", str(port), "--workers", str(workers)]
    server = Server(name, port, _spawn(command, clean_environment(environ), log), logs=[log])
    wait_healthy(server, "/health", workers)
    return server


def wait_healthy(server: Server, path: str, workers: int) -> None:
    """Until ``path`` answers 200 and all ``workers`` processes are there, plus a moment
    for the last of them to finish starting."""
    deadline = time.monotonic() + START_TIMEOUT_SECONDS
    while time.monotonic() < deadline:
        server.check_alive()
        with contextlib.suppress(httpx.HTTPError):
            answered = httpx.get(server.url + path, timeout=2).status_code == 200
            if answered and (workers == 1 or len(server.serve_pids()) >= workers):
                time.sleep(2)
                return
        time.sleep(0.3)
    server.stop()
    raise ServerFailed(f"{server.name} did not answer {path} in time:\n{server.tail()}")


@contextlib.contextmanager
def running(*servers: Server) -> Iterator[None]:
    try:
        yield
    finally:
        for server in servers:
            server.stop()


class RssSampler:
    """Samples the resident memory of each server's serve processes while ``active``."""

    def __init__(self, servers: list[Server], interval: float = 0.5) -> None:
        self.servers = servers
        self.interval = interval
        self.peak: dict[str, float] = {}
        self.active = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    @contextlib.contextmanager
    def sampling(self) -> Iterator[None]:
        self.active.set()
        try:
            yield
        finally:
            self.active.clear()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            if not self.active.is_set():
                continue
            for server in self.servers:
                sizes = [rss_mib(pid) for pid in server.serve_pids()]
                known = [size for size in sizes if size is not None]
                if known:
                    self.peak[server.name] = max(self.peak.get(server.name, 0.0), *known)
