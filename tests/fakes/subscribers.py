"""Subscribers configured by dotted path (``CONVERSA_SUBSCRIBERS``) in test processes.

``record`` appends each event as a JSON line to ``$CONVERSA_TEST_EVENTS_FILE``; with
``$CONVERSA_TEST_FAIL`` set it raises instead, and ``$CONVERSA_TEST_SLOW`` seconds of sleep
per event make a run long enough to be interrupted.
"""

from __future__ import annotations

import json
import os
import time

from conversa.events import LifecycleEvent


class Refused(Exception):
    pass


def record(event: LifecycleEvent) -> None:
    if os.environ.get("CONVERSA_TEST_FAIL"):
        raise Refused("this subscriber is told to fail")
    time.sleep(float(os.environ.get("CONVERSA_TEST_SLOW", "0")))
    with open(os.environ["CONVERSA_TEST_EVENTS_FILE"], "a") as events:
        events.write(json.dumps(event.as_dict()) + "\n")
        events.flush()
        os.fsync(events.fileno())
