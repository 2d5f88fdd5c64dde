"""Two ``conversa worker`` processes on one PostgreSQL, a few hundred due retries, and a
fake Twilio counting its calls: every attempt reaches the provider exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from conversa.app.bootstrap import bootstrap, migrate
from conversa.app.projection import MessageQuery
from tests.fakes.providers import (
    SERVICE_UNAVAILABLE,
    TWILIO_SID,
    TWILIO_TOKEN,
    Answer,
    FakeTwilio,
    Received,
)
from tests.support import make_settings

MESSAGES = 300


def message_id_of(received: Received) -> str:
    callback = received.form["StatusCallback"]
    return parse_qs(urlsplit(callback).query)["message_id"][0]


def test_two_workers_make_each_attempt_once(postgres_url: str, tmp_path: Path) -> None:
    settings = {
        "sms_driver": "twilio",
        "twilio_sid": TWILIO_SID,
        "twilio_token": TWILIO_TOKEN,
        "twilio_sms_from": "+15550006666",
        "webhook_base_url": "https://hooks.example.com",
        "retry_base_seconds": "0.2",
        "log_level": "INFO",
    }
    with FakeTwilio() as twilio:
        settings["twilio_api_base"] = twilio.url
        seen: set[str] = set()
        lock = threading.Lock()

        def first_attempt_fails(received: Received) -> Answer:
            with lock:
                first = message_id_of(received) not in seen
                seen.add(message_id_of(received))
            return SERVICE_UNAVAILABLE if first else twilio.handle(received)

        twilio.always(first_attempt_fails)
        migrate(make_settings(postgres_url, **settings))
        with bootstrap(make_settings(postgres_url, **settings)) as service:
            sent = [service.send("sms", "+15551234567", {"body": f"n{n}"}) for n in range(MESSAGES)]
            assert {r.status for r in sent} == {"queued"}  # every one waits for a retry

            env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
            env.update({f"CONVERSA_{k.upper()}": v for k, v in settings.items()})
            env["CONVERSA_DATABASE_URL"] = postgres_url
            logs = [tmp_path / f"worker-{n}.log" for n in range(2)]
            workers = []
            for log_path in logs:
                with log_path.open("wb") as log:
                    workers.append(
                        subprocess.Popen(
                            [sys.executable, "-m", "conversa", "worker"],
                            env=env,
                            cwd=tmp_path,
                            stdout=log,
                            stderr=subprocess.STDOUT,
                        )
                    )
            try:
                deadline = time.monotonic() + 90
                while service.view.query(MessageQuery(status="sent", per_page=1)).total < MESSAGES:
                    assert time.monotonic() < deadline, "the workers did not send everything"
                    assert all(w.poll() is None for w in workers)
                    time.sleep(0.2)
            finally:
                for worker in workers:
                    worker.send_signal(signal.SIGTERM)
                for worker in workers:
                    worker.wait(timeout=30)

    outputs = [path.read_text() for path in logs]
    for worker, output in zip(workers, outputs, strict=True):
        assert worker.returncode == 0, output
        assert "Traceback" not in output, output
    calls = Counter(message_id_of(r) for r in twilio.requests)
    assert len(calls) == MESSAGES
    assert set(calls.values()) == {2}  # the first attempt, and exactly one retry
    claims = [output.count("claimed attempt 2 of message_id=") for output in outputs]
    assert sum(claims) == MESSAGES
    print(f"claims per worker: {claims}")


def start_worker(url: str, workdir: Path, name: str) -> tuple[subprocess.Popen[bytes], Path]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CONVERSA_")}
    env.update({"CONVERSA_DATABASE_URL": url, "CONVERSA_LOG_LEVEL": "INFO"})
    log_path = workdir / f"{name}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "conversa", "worker"],
            env=env,
            cwd=workdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return process, log_path


def wait_for_line(process: subprocess.Popen[bytes], log_path: Path, line: str) -> None:
    deadline = time.monotonic() + 30
    while line not in log_path.read_text():
        assert process.poll() is None and time.monotonic() < deadline, log_path.read_text()
        time.sleep(0.05)


@pytest.mark.slow
@pytest.mark.postgres
def test_another_worker_takes_the_projection_over_when_its_holder_is_killed(
    postgres_url: str, tmp_path: Path
) -> None:
    migrate(make_settings(postgres_url))
    holder, holder_log = start_worker(postgres_url, tmp_path, "holder")
    standby: subprocess.Popen[bytes] | None = None
    standby_log = tmp_path / "standby.log"
    try:
        wait_for_line(holder, holder_log, "running projection")
        standby, standby_log = start_worker(postgres_url, tmp_path, "standby")
        wait_for_line(standby, standby_log, "another process runs projection; standing by")
        with bootstrap(make_settings(postgres_url)) as service:

            def projected_within(seconds: float) -> float:
                started = time.monotonic()
                sent = service.send("sms", "+15551234567", {"body": "hello"})
                while service.view.get(sent.message_id) is None:
                    assert time.monotonic() - started < seconds, "not in the read model in time"
                    time.sleep(0.02)
                return time.monotonic() - started

            projected_within(10)
            holder.send_signal(signal.SIGKILL)
            holder.wait(10)
            took = projected_within(10)  # counted from the kill: the send follows at once
        assert "running projection" in standby_log.read_text()
        print(f"the standby took over; a send was in the read model {took:.2f} s after the kill")
    finally:
        if holder.poll() is None:
            holder.kill()
            holder.wait()
        if standby is not None:
            standby.send_signal(signal.SIGTERM)
            standby.wait(30)
    assert standby is not None and standby.returncode == 0, standby_log.read_text()
    assert "Traceback" not in standby_log.read_text()
