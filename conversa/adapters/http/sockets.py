"""The listening socket of ``conversa serve``, as uvicorn binds it, with one fix.

With ``--workers`` above 1, uvicorn (up to at least 0.54, uvicorn#3149) creates the
listening socket with protocol number 0. The sockets it accepts inherit that number, and
asyncio turns Nagle's algorithm off (TCP_NODELAY) only for sockets whose protocol says
TCP. A keep-alive response written in two pieces (head, then body) then waits for the
client's delayed ACK, about 40 ms on Linux, whatever the server does. Re-creating the
socket object around the same descriptor with ``IPPROTO_TCP`` restores TCP_NODELAY.
"""

from __future__ import annotations

import socket
from typing import Any

_installed = False


def keep_tcp_nodelay() -> None:
    """Make uvicorn's ``Config.bind_socket`` return a socket that says it is TCP (once per
    process; the worker processes inherit the descriptor, not the patch)."""
    global _installed
    if _installed:
        return
    from uvicorn.config import Config

    original = Config.bind_socket

    def bind_socket(config: Any) -> socket.socket:
        sock = original(config)
        if sock.family not in (socket.AF_INET, socket.AF_INET6) or sock.proto != 0:
            return sock
        family, kind = sock.family, sock.type
        tcp = socket.socket(family, kind, socket.IPPROTO_TCP, fileno=sock.detach())
        tcp.set_inheritable(True)
        return tcp

    Config.bind_socket = bind_socket  # type: ignore[method-assign,assignment]
    _installed = True
