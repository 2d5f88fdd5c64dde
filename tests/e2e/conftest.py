"""``conversa serve`` as a real process on a free port, with a token to call it."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conversa.app.bootstrap import bootstrap, migrate
from tests.support import make_settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Server:
    base_url: str
    token: str
    database_url: str
    log_path: Path
    process: subprocess.Popen[bytes]

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
            **kwargs,  # type: ignore[arg-type]
        )

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def running_server(
    database_url: str, workdir: Path, *args: str, **settings: str
) -> Iterator[Server]:
    """Migrate, make a token, start ``conversa serve ARGS`` and wait until it answers.
    On exit: SIGTERM, and the server must shut down cleanly."""
    migrate(make_settings(database_url))
    with bootstrap(make_settings(database_url)) as service:
        _info, secret = service.tokens.create(f"e2e-{free_port()}")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env["CONVERSA_DATABASE_URL"] = database_url
    env.update({f"CONVERSA_{k.upper()}": v for k, v in settings.items()})
    log_path = workdir / f"server-{port}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "conversa", "serve", "--port", str(port), *args],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    server = Server(f"http://127.0.0.1:{port}", secret, database_url, log_path, process)
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(f"{server.base_url}/conversa/health", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                process.wait()
                raise AssertionError(server.output()) from None
            time.sleep(0.1)
    try:
        yield server
    finally:
        killed = process.poll() == -signal.SIGKILL  # the test killed it on purpose
        if not killed:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise AssertionError(
                    "the server did not stop within 30 s: " + server.output()
                ) from None
    if killed:
        return
    output = server.output()
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output


ServerFactory = Callable[..., Server]


@pytest.fixture
def server(postgres_url: str, tmp_path: Path) -> Iterator[Server]:
    """The API on PostgreSQL, with the log driver and the in-process worker."""
    with running_server(postgres_url, tmp_path) as running:
        yield running
