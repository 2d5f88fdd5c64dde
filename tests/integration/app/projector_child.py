"""Runs the projection to the end in a child process, or dies in the middle of a batch.

Usage: projector_child.py DATABASE_URL BATCH_SIZE DIE_IN_BATCH
With DIE_IN_BATCH > 0 the process kills itself with SIGKILL inside the transaction of
that batch, after its rows and position were written and before the commit.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, cast

from conversa.app.bootstrap import bootstrap
from conversa.app.settings import Settings


def main() -> None:
    url, batch_size, die_in_batch = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    service = bootstrap(Settings.from_environ({"CONVERSA_DATABASE_URL": url}))
    datastore: Any = cast(Any, service.view).datastore
    begin = datastore.transaction
    commits = 0

    @contextmanager
    def transaction(*, commit: bool = False) -> Iterator[Any]:
        nonlocal commits
        with begin(commit=commit) as cursor:
            yield cursor
            if commit:
                commits += 1
                if commits == die_in_batch:
                    os.kill(os.getpid(), signal.SIGKILL)

    datastore.transaction = transaction
    applied = service.projector(batch_size=batch_size).catch_up()
    print(applied)
    service.close()


if __name__ == "__main__":
    main()
