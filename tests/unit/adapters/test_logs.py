"""The log formats, and the request id on the lines of a request, also from the worker
thread that runs its use case."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import anyio
import anyio.to_thread
import pytest

from conversa.adapters.logs import (
    REQUEST_ID,
    JsonLineFormatter,
    RequestIdFilter,
    TextFormatter,
    logging_config,
    quiet_level,
    resolve_format,
)


@pytest.fixture
def captured() -> Iterator[tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]]]:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    logger = logging.getLogger("conversa.test-logs")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    yield logger, stream, handler
    logger.removeHandler(handler)
    logger.propagate = True


def test_json_lines_carry_the_request_id_only_during_a_request(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(JsonLineFormatter())

    logger.info("outside %s", "any request")

    async def request() -> None:
        token = REQUEST_ID.set("abc123")
        try:
            logger.info("in the handler")
            await anyio.to_thread.run_sync(logger.warning, "in a worker thread")
        finally:
            REQUEST_ID.reset(token)

    anyio.run(request)
    outside, handler_line, thread_line = (
        json.loads(line) for line in stream.getvalue().splitlines()
    )

    assert list(outside) == ["time", "level", "logger", "process", "message"]
    assert outside["message"] == "outside any request"
    assert (outside["level"], outside["logger"]) == ("INFO", "conversa.test-logs")
    assert handler_line["request_id"] == "abc123"
    assert (thread_line["request_id"], thread_line["level"]) == ("abc123", "WARNING")


def test_text_lines_show_the_request_id_or_a_dash(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(TextFormatter())
    logger.info("outside")
    token = REQUEST_ID.set("abc123")
    logger.info("inside")
    REQUEST_ID.reset(token)
    outside, inside = stream.getvalue().splitlines()
    assert outside.endswith(" INFO conversa.test-logs [-] outside")
    assert inside.endswith(" INFO conversa.test-logs [abc123] inside")


def test_an_exception_is_one_json_line_with_its_traceback(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(JsonLineFormatter())
    try:
        raise ValueError("boom")
    except ValueError:
        logger.exception("it failed")
    (line,) = stream.getvalue().splitlines()
    record = json.loads(line)
    assert record["message"] == "it failed"
    assert "Traceback" in record["exc_info"] and "ValueError: boom" in record["exc_info"]


def test_the_format_follows_the_setting_or_the_terminal() -> None:
    assert resolve_format("json") == "json"
    assert resolve_format("text") == "text"
    assert resolve_format(None) == "json"  # pytest captures standard error: not a terminal


def test_httpx_and_uvicorn_go_through_the_one_handler_and_httpx_is_quiet() -> None:
    config = logging_config("INFO", "json")
    assert config["root"] == {"level": "INFO", "handlers": ["stderr"]}
    assert config["handlers"]["stderr"]["stream"] == "ext://sys.stderr"
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        assert config["loggers"][name]["handlers"] == []
        assert config["loggers"][name]["propagate"] is True
    assert config["loggers"]["httpx"]["level"] == "WARNING"
    assert config["loggers"]["httpcore"]["level"] == "WARNING"
    assert quiet_level("DEBUG") == "WARNING"
    assert quiet_level("ERROR") == "ERROR"


def test_json_lines_carry_extra_fields_in_order_and_any_value_as_text(
    captured: tuple[logging.Logger, io.StringIO, logging.StreamHandler[io.StringIO]],
) -> None:
    logger, stream, handler = captured
    handler.setFormatter(JsonLineFormatter())
    when = datetime(2026, 1, 2, 3, 4, 5, 678, tzinfo=UTC)
    logger.info(
        "%s %s %d %.1fms",
        "POST",
        "/conversa/messages",
        201,
        1.25,
        extra={"method": "POST", "status": 201, "at": when, "odd": {1, 2} - {1}, "big": 2**70},
    )
    (line,) = (json.loads(text) for text in stream.getvalue().splitlines())
    assert list(line) == [
        *("time", "level", "logger", "process", "message"),
        *("method", "status", "at", "odd", "big"),
    ]
    assert line["message"] == "POST /conversa/messages 201 1.2ms"
    assert (line["at"], line["odd"], line["big"]) == (when.isoformat(), "{2}", 2**70)


def test_json_times_are_utc_to_the_microsecond() -> None:
    formatter = JsonLineFormatter()
    record = logging.makeLogRecord({"msg": "x"})
    for created in (1_780_000_000.0, 1_780_000_000.5, 1_780_000_001.000123, 1_780_003_601.25):
        record.created = created
        stamp = datetime.fromisoformat(json.loads(formatter.format(record))["time"])
        assert stamp.utcoffset() == timedelta(0)
        assert abs(stamp.timestamp() - created) < 2e-6
