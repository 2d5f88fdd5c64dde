"""SIGTERM in the middle of a backlog of due retries, dispatched by a real process (a
``conversa worker``, or a server's own worker) against a slow fake Twilio: every provider
call made before the stop has its outcome recorded, and after a restart no attempt that
finished is made again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.service import ConversaService
from tests.e2e.conftest import running_server
from tests.fakes.providers import (
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    FakeTwilio,
    Received,
    slow,
)
from tests.support import make_settings

pytestmark = [pytest.mark.slow, pytest.mark.postgres]

MESSAGES = 20
PROVIDER_SECONDS = 1.0  # each retry waits this long for the fake Twilio


def message_id_of(received: Received) -> str:
    return parse_qs(urlsplit(received.form["StatusCallback"]).query)["message_id"][0]


@contextmanager
def conversa_worker(url: str, workdir: Path, settings: dict[str, str]) -> Iterator[Path]:
    """``conversa worker`` as a process; SIGTERM on exit, and it must stop cleanly."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({f"CONVERSA_{k.upper()}": v for k, v in settings.items()})
    env["CONVERSA_DATABASE_URL"] = url
    log_path = workdir / f"worker-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "conversa", "worker"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        yield log_path
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    output = log_path.read_text()
    assert process.returncode == 0, output
    assert "Traceback" not in output, output


@contextmanager
def worker_process(kind: str, url: str, workdir: Path, settings: dict[str, str]) -> Iterator[None]:
    if kind == "worker":
        with conversa_worker(url, workdir, settings):
            yield
    else:
        with running_server(url, workdir, **settings):  # its own worker dispatches
            yield


def wait_until(predicate: object, timeout: float, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def statuses(service: ConversaService, ids: list[str]) -> dict[str, str]:
    return {i: service.get_message(i).status for i in ids}


@pytest.mark.parametrize("kind", ["worker", "serve"])
def test_sigterm_during_a_retry_backlog_loses_no_outcome_and_repeats_no_attempt(
    kind: str, postgres_url: str, tmp_path: Path
) -> None:
    settings = {
        "sms_driver": "twilio",
        "twilio_sid": TWILIO_SID,
        "twilio_token": TWILIO_TOKEN,
        "twilio_sms_from": "+15550006666",
        "webhook_base_url": "https://hooks.example.com",
        "retry_base_seconds": "0.1",
        "log_level": "INFO",
    }
    with FakeTwilio() as twilio:
        settings["twilio_api_base"] = twilio.url
        migrate(make_settings(postgres_url, **settings))
        with bootstrap(make_settings(postgres_url, **settings)) as service:
            twilio.always(SERVICE_UNAVAILABLE)
            ids = [
                str(service.send("sms", "+15551234567", {"body": f"n{n}"}).message_id)
                for n in range(MESSAGES)
            ]
            assert set(statuses(service, ids).values()) == {"queued"}  # a backlog of retries
            twilio.always(slow(PROVIDER_SECONDS))

            with worker_process(kind, postgres_url, tmp_path, settings):
                wait_until(lambda: twilio.calls >= MESSAGES + 3, 30, "the retries did not start")
                stopped_at = time.monotonic()
            # The process is gone (SIGTERM, then a clean exit).
            assert time.monotonic() - stopped_at < 15, "the stop took too long"

            called = {message_id_of(r) for r in twilio.requests[MESSAGES:]}
            assert len(called) < MESSAGES, "the stop did not end the backlog"
            after_stop = statuses(service, ids)
            lost = {i for i in called if after_stop[i] != "sent"}
            assert not lost, f"provider calls whose outcome was not recorded: {lost}"
            assert {after_stop[i] for i in set(ids) - called} == {"queued"}

            twilio.always(None)
            with worker_process(kind, postgres_url, tmp_path, settings):
                wait_until(
                    lambda: set(statuses(service, ids).values()) == {"sent"},
                    60,
                    "the restarted process did not finish the backlog",
                )

    calls = Counter(message_id_of(r) for r in twilio.requests)
    assert set(calls) == set(ids)
    assert set(calls.values()) == {2}  # the first attempt, and exactly one retry
    print(f"{kind}: {len(called)} retries made before the stop, the rest after the restart")
