"""``conversa serve --workers 2``: /metrics sums both processes whichever answers, and
every line either process logs (uvicorn's too) is one JSON object, with the request id
on the lines of a request."""

from __future__ import annotations

import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.conftest import running_server

SENDS = 30


def sent_total(metrics: str) -> float:
    for family in text_string_to_metric_families(metrics):
        for sample in family.samples:
            if sample.name == "conversa_api_messages_total" and sample.labels == {
                "channel": "sms",
                "status": "sent",
            }:
                return sample.value
    return 0.0


def metrics_directories(tmp: Path) -> list[Path]:
    return list(tmp.glob("conversa-metrics-*"))


@pytest.mark.slow
@pytest.mark.postgres
def test_two_processes_count_together_and_log_json_lines(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp))  # where serve makes its metrics directory
    with running_server(
        postgres_url, tmp_path, "--workers", "2", rate_limit="100000/minute"
    ) as server:
        made = metrics_directories(tmp)
        request_ids = []
        for n in range(SENDS):
            # A new connection each time: the processes take turns accepting them.
            response = httpx.post(
                f"{server.base_url}/conversa/messages",
                json={"channel": "sms", "to": "+15551234567", "body": f"n{n}"},
                headers={"Authorization": f"Bearer {server.token}"},
            )
            assert response.status_code == 201, response.text
            request_ids.append(response.headers["x-request-id"])

        scrapes: dict[str, float] = {}  # the total each scrape showed, by its request id
        for _ in range(60):
            response = httpx.get(f"{server.base_url}/metrics")
            scrapes[response.headers["x-request-id"]] = sent_total(response.text)
            if len(processes_of(server.output(), scrapes)) == 2:
                break
            time.sleep(0.05)

    output = server.output()
    lines: list[dict[str, Any]] = [json.loads(line) for line in output.splitlines()]
    started = [line for line in lines if line["message"].startswith("Started server process")]
    assert all(line["logger"] == "uvicorn.error" for line in started)
    servers = {line["process"] for line in started}
    assert len(servers) == 2
    # Both processes took sends and answered scrapes; every scrape counted every send.
    assert processes_of(output, request_ids) == servers, "one process took every send"
    assert processes_of(output, scrapes) == servers, "one process answered every scrape"
    assert set(scrapes.values()) == {SENDS}
    # The processes' metrics files were in a directory of their own, removed at exit.
    assert len(made) == 1
    assert metrics_directories(tmp) == []
    # Each send's lines carry its request id, those of the thread that ran it included.
    for request_id in request_ids:
        loggers = [line["logger"] for line in lines if line.get("request_id") == request_id]
        assert "conversa.app.service" in loggers, loggers
        assert "conversa.driver.log" in loggers, loggers
        assert loggers[-1] == "conversa.access", loggers


def processes_of(output: str, request_ids: Iterable[str]) -> set[int]:
    """The processes that served these requests, from their access lines."""
    wanted = set(request_ids)
    return {
        line["process"]
        for line in map(json.loads, output.splitlines())
        if line["logger"] == "conversa.access" and line.get("request_id") in wanted
    }
