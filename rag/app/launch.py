"""Where a server of ours may listen, checked before it starts: ``rag serve`` and ``rag mcp --http``.

Loopback, or any address with a login (``RAG_AUTH``): the notes are private. A port another
process holds is the most common mistake when starting a server; it is one line naming the port
and the setting that moves it, not the web framework's traceback or exit code.
"""

from __future__ import annotations

import errno
import socket

from rag.errors import RagError

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class LaunchError(RagError):
    """A server that cannot start where it was asked to; the message is one line for the user."""


def check_bind(host: str, port: int, has_login: bool, what: str, port_flag: str) -> None:
    """Raise LaunchError unless ``what`` may listen on ``host``:``port`` and the port is free."""
    if host not in LOOPBACK and not has_login:
        raise LaunchError(f"refusing to serve {what} on {host} without a login: set RAG_AUTH=user:password "
                          "(or listen on 127.0.0.1)")
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
    except (socket.gaierror, UnicodeError):
        raise LaunchError(f"cannot serve {what} on {host}: not an address of this machine") from None
    with socket.socket(family, kind, proto) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers do: TIME_WAIT is no conflict
        try:
            probe.bind(address)
        except OSError as exc:
            busy = "another program is using it" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
            raise LaunchError(f"cannot serve {what} on {host}:{port}: {busy}; choose another port with "
                              f"{port_flag}") from None
