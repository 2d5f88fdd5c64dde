"""Logging set-up shared by the command line and the server processes it starts.

- Every line goes to standard error, so that a command's standard output holds only its
  result (``conversa send`` prints JSON a script can parse, at any log level).
- JSON lines (one object per line: ``time``, ``level``, ``logger``, ``process`` (its id),
  ``message``, and ``request_id`` on lines logged while a request is served) when standard
  error is not a terminal, text on a terminal; ``CONVERSA_LOG_FORMAT=json|text`` decides
  otherwise.
- uvicorn's own lines go through the same handler and format, in every process that
  ``serve --workers N`` starts (see :func:`logging_config`).
- httpx and httpcore log at WARNING at least: at INFO httpx logs every request's URL, and
  URLs can carry secrets (a token in ``CONVERSA_EVENTS_URL``'s query, say).
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
from contextvars import ContextVar
from datetime import UTC, date, datetime, time
from typing import Any, Literal

import orjson

Format = Literal["json", "text"]

#: The id of the request being served, set by the HTTP middleware. Worker threads that
#: run a request's use case see it too: anyio copies the context into them.
REQUEST_ID: ContextVar[str | None] = ContextVar("conversa_request_id", default=None)

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
#: Libraries whose INFO lines could carry a secret or a phone number.
QUIET_LOGGERS = ("httpx", "httpcore")
UVICORN_LOGGERS = ("uvicorn", "uvicorn.error", "uvicorn.access", "uvicorn.asgi")


class RequestIdFilter(logging.Filter):
    """Adds ``request_id`` to every record: the current request's, or none."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        if getattr(record, "request_id", None) is None:
            record.request_id = "-"
        return super().format(record)


#: LogRecord attributes that are not extra fields of a JSON line.
RECORD_ATTRIBUTES = frozenset(
    (*logging.makeLogRecord({}).__dict__, "asctime", "message", "request_id", "color_message")
)


class JsonLineFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``process``, ``message``,
    ``exc_info`` and ``stack_info`` when there are, any ``extra`` fields, and
    ``request_id`` only on lines logged during a request.

    Serialised by orjson: a line is written for every request (the access line), so its
    cost is on the hot path. Values orjson does not know are written as their ``str``.
    """

    def __init__(self) -> None:
        super().__init__()
        self._second: tuple[int, str] = (-1, "")  # the last second formatted, and its text

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        line: dict[str, Any] = {
            "time": self._time(record.created),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "message": record.message,
        }
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exc_info"] = record.exc_text
        if record.stack_info:
            line["stack_info"] = self.formatStack(record.stack_info)
        for key, value in record.__dict__.items():
            if key not in RECORD_ATTRIBUTES and not key.startswith("_"):
                line[key] = value
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            line["request_id"] = request_id
        try:
            return orjson.dumps(line, default=_as_text).decode()
        except (TypeError, orjson.JSONEncodeError):  # an integer past 64 bits, an int key
            return json.dumps(line, default=_as_text, ensure_ascii=False)

    def _time(self, created: float) -> str:
        """``created`` in ISO 8601, UTC, to the microsecond; the date and time of day are
        formatted once a second (lines come by the thousand per second)."""
        whole = int(created)
        second, text = self._second
        if second != whole:
            text = datetime.fromtimestamp(whole, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S")
            self._second = (whole, text)
        micros = min(int((created - whole) * 1_000_000), 999_999)
        return f"{text}.{micros:06d}+00:00"


def _as_text(value: object) -> str:
    """A value JSON has no type for: dates and times in ISO 8601, anything else as text."""
    if isinstance(value, date | time):
        return value.isoformat()
    return str(value)


def resolve_format(chosen: str | None) -> Format:
    """``chosen`` (CONVERSA_LOG_FORMAT) or, unset: text on a terminal, else JSON."""
    if chosen == "json":
        return "json"
    if chosen == "text":
        return "text"
    stream = sys.stderr
    return "text" if stream is not None and stream.isatty() else "json"


def logging_config(level: str, log_format: Format) -> dict[str, Any]:
    """A :func:`logging.config.dictConfig` document: the root logger on standard error
    in ``log_format``, uvicorn's loggers through it, httpx and httpcore quiet.

    Given to uvicorn as its ``log_config``, which applies it in each process it starts.
    """
    formatter = JsonLineFormatter if log_format == "json" else TextFormatter
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": f"{__name__}.{RequestIdFilter.__qualname__}"}},
        "formatters": {"conversa": {"()": f"{__name__}.{formatter.__qualname__}"}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "conversa",
                "filters": ["request_id"],
            }
        },
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            **{
                name: {"level": level, "handlers": [], "propagate": True}
                for name in UVICORN_LOGGERS
            },
            **{name: {"level": quiet_level(level)} for name in QUIET_LOGGERS},
        },
    }


def quiet_level(level: str) -> str:
    """The level of httpx and httpcore: WARNING, or higher when the root's is."""
    return level if logging.getLevelName(level) > logging.WARNING else "WARNING"


def configure(level: str, log_format: str | None = None) -> None:
    """Log to standard error at ``level`` in ``log_format`` (see :func:`resolve_format`),
    unless the process already set logging up, in which case only the levels are set.

    Called by the CLI, and again in each server process (uvicorn's workers set logging up
    from :func:`logging_config` before they start the application).
    """
    root = logging.getLogger()
    if not root.handlers:
        logging.config.dictConfig(logging_config(level, resolve_format(log_format)))
    root.setLevel(level)
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(quiet_level(level))
