"""A throwaway PostgreSQL cluster, in a temporary directory, for tests that must stop and
start a server (an outage) or need one with password authentication."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

BIN_DIR = Path(os.environ.get("CONVERSA_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
#: initdb and postgres refuse to run as root; as root, they run as this user.
SERVER_USER = "postgres"


def _as_server_user(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", SERVER_USER, "--", *command]


def free_port() -> int:
    with contextlib.closing(socket.socket()) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class Cluster:
    """``initdb`` once, then ``start``/``stop`` as often as a test needs."""

    def __init__(self, root: Path, *, password: str | None = None) -> None:
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.password = password
        self._run(
            [
                str(BIN_DIR / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--no-sync",
                *(
                    ["-A", "scram-sha-256", f"--pwfile={self._password_file(password)}"]
                    if password is not None
                    else ["-A", "trust"]
                ),
            ]
        )

    def _password_file(self, password: str) -> Path:
        path = self.root / "pwfile"
        path.write_text(password + "\n")
        if os.geteuid() == 0:
            shutil.chown(path, SERVER_USER)
        return path

    def _run(self, command: list[str]) -> None:
        subprocess.run(
            _as_server_user(command), check=True, capture_output=True, text=True, timeout=120
        )

    def start(self) -> None:
        options = (
            f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
            "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        self._run(
            [
                str(BIN_DIR / "pg_ctl"),
                "-D",
                str(self.data),
                "-o",
                options,
                "-l",
                str(self.root / "server.log"),
                "-w",
                "-t",
                "60",
                "start",
            ]
        )

    def stop(self) -> None:
        """A fast shutdown: sessions are ended, as when a server is restarted."""
        self._run([str(BIN_DIR / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop"])

    def url(self, dbname: str = "postgres", *, query: str = "") -> str:
        credentials = "postgres"
        if self.password is not None:
            credentials += ":" + quote(self.password, safe="")
        suffix = f"?{query}" if query else ""
        return f"postgresql://{credentials}@127.0.0.1:{self.port}/{dbname}{suffix}"


def cluster_or_skip() -> None:
    if not (BIN_DIR / "initdb").exists():
        pytest.skip(f"needs PostgreSQL's initdb and pg_ctl (looked in {BIN_DIR})")


@contextlib.contextmanager
def throwaway_cluster(*, password: str | None = None) -> Iterator[Cluster]:
    """A running cluster, removed afterwards. Skips the test when initdb is not installed."""
    cluster_or_skip()
    # Not under pytest's tmp_path: the server user must be able to reach the directory.
    root = Path(tempfile.mkdtemp(prefix="conversa-pg-"))
    if os.geteuid() == 0:
        shutil.chown(root, SERVER_USER)
    try:
        cluster = Cluster(root, password=password)
        cluster.start()
        try:
            yield cluster
        finally:
            with contextlib.suppress(subprocess.CalledProcessError):
                cluster.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
