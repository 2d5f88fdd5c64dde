"""The key that signs the console's session cookies."""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

from conversa.app.settings import Settings

#: Random bytes of a generated key (written as hex).
KEY_BYTES = 32


def console_key(settings: Settings) -> bytes:
    """``CONVERSA_CONSOLE_SECRET`` when set; otherwise the key kept in
    ``CONVERSA_CONSOLE_SECRET_FILE``, generated the first time (mode 0600).

    Every server process of a machine reads the same file, so a session signed by one is
    valid in the others. Two processes starting at once cannot each keep their own key:
    the key is written to a private temporary file and linked into place, which fails for
    all but the first; the others read the winner's.
    """
    if settings.console_secret is not None:
        return settings.console_secret.get_secret_value().encode()
    return _kept_key(settings.console_secret_file)


def _kept_key(path: Path) -> bytes:
    key = _read(path)
    if key:
        return key
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(8)}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(descriptor, "w") as file:
            file.write(secrets.token_hex(KEY_BYTES) + "\n")
        with contextlib.suppress(FileExistsError):
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    key = _read(path)
    if not key:
        msg = f"the console key file {path} is empty; delete it to generate a new key"
        raise RuntimeError(msg)
    return key


def _read(path: Path) -> bytes:
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        return b""
