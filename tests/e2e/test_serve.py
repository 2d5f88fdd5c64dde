"""``conversa serve`` as a real process: health, the in-process worker, clean shutdown."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.settings import Settings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture
def server(backend_url: str, settings: Settings, tmp_path: Path) -> Iterator[str]:
    migrate(settings)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env["CONVERSA_DATABASE_URL"] = backend_url
    process = subprocess.Popen(
        [sys.executable, "-m", "conversa", "serve", "--port", str(port)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            httpx.get(f"{base}/conversa/health", timeout=1)
            break
        except httpx.TransportError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise AssertionError(process.communicate()[0]) from None
            time.sleep(0.1)
    yield base
    process.send_signal(signal.SIGTERM)
    output, _ = process.communicate(timeout=30)
    # uvicorn shuts down gracefully, then re-raises the signal it caught.
    assert process.returncode in (0, -signal.SIGTERM), output
    assert "Application shutdown complete" in output, output
    assert "Traceback" not in output, output


def test_the_server_answers_health_and_projects_what_is_sent(
    server: str, settings: Settings
) -> None:
    assert httpx.get(f"{server}/conversa/health").json() == {"status": "ok"}

    with bootstrap(settings) as service:
        sent = service.send("sms", "+15551234567", {"body": "from outside the server"})
        deadline = time.monotonic() + 5
        # The projection may show the message queued for a moment: Queued and Sent are
        # two transactions, and the worker can catch the first alone.
        while (row := service.view.get(sent.message_id)) is None or row.status != "sent":
            assert time.monotonic() < deadline, "the server's worker did not project the message"
            time.sleep(0.02)
        assert row.version == 2


def test_several_server_processes_share_the_work(postgres_url: str, tmp_path: Path) -> None:
    """``--workers 2``: both processes serve and log; one runs the projection, the other
    stands by to take it over."""
    from tests.e2e.conftest import running_server

    with running_server(postgres_url, tmp_path, "--workers", "2") as running:
        for _ in range(6):
            assert httpx.get(f"{running.base_url}/conversa/health").status_code == 200
        deadline = time.monotonic() + 10
        while "standing by" not in running.output():
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.1)
        output = running.output()
    assert output.count("Started server process") == 2
    assert "running projection" in output


def test_a_request_in_flight_finishes_when_the_server_is_told_to_stop(
    postgres_url: str, tmp_path: Path
) -> None:
    from concurrent.futures import ThreadPoolExecutor

    from tests.e2e.conftest import running_server
    from tests.fakes.providers import TWILIO_SID, TWILIO_TOKEN, FakeTwilio, slow

    with FakeTwilio() as twilio:
        twilio.answer(slow(1.5))  # the provider takes its time with the first send
        with (
            running_server(
                postgres_url,
                tmp_path,
                sms_driver="twilio",
                twilio_sid=TWILIO_SID,
                twilio_token=TWILIO_TOKEN,
                twilio_sms_from="+15550006666",
                twilio_api_base=twilio.url,
            ) as running,
            running.client() as client,
            ThreadPoolExecutor(1) as pool,
        ):
            pending = pool.submit(
                client.post,
                "/conversa/messages",
                json={"channel": "sms", "to": "+15551234567", "body": "in flight"},
            )
            while twilio.calls == 0:
                time.sleep(0.01)
            running.process.send_signal(signal.SIGTERM)  # mid-request
            response = pending.result(timeout=30)
            assert response.status_code == 201, response.text
            assert response.json()["status"] == "sent"
            running.process.wait(30)
