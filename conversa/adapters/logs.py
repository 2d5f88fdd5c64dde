"""Logging set-up shared by the command line and the server processes it starts."""

from __future__ import annotations

import logging
import sys

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def configure(level: str) -> None:
    """Log to standard error at ``level``, unless the process already set logging up.

    Called by the CLI, and again in each server process that uvicorn spawns for
    ``--workers N``, which inherit none of the parent's logging configuration.
    """
    if not logging.getLogger().handlers:
        logging.basicConfig(format=FORMAT, stream=sys.stderr)
    logging.getLogger().setLevel(level)
