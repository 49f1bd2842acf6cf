"""Network guard for test processes: log every socket connect/bind/lookup, refuse any beyond loopback.

Put this folder first on PYTHONPATH and set HIERAFASH_NET_LOG to a file: Python imports
``sitecustomize`` at start-up, and the audit hook below sees each ``socket.connect``, ``socket.bind``,
``socket.sendto`` and ``socket.getaddrinfo`` of the process (and its libraries). Each is written to
the log as ``pid event host port`` (port None for lookups); an address other than 127.0.0.1, ::1
or localhost is written with ``BLOCKED`` and the call fails with PermissionError, so a stray
download fails fast instead of hanging on a machine without network. In the test process itself
:func:`install` is used directly.
"""

from __future__ import annotations

import os
import sys

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
EVENTS = {"socket.connect", "socket.bind", "socket.sendto", "socket.getaddrinfo", "socket.gethostbyname"}


def _host(event: str, args: tuple):
    """(host, port) an event is about (port None for lookups), or None for an address without a host."""
    if event in ("socket.getaddrinfo", "socket.gethostbyname"):
        host = args[0] if args else None
        return (host.decode() if isinstance(host, bytes) else ("" if host is None else str(host))), None
    address = args[1] if len(args) > 1 else None
    if isinstance(address, tuple) and address:
        return str(address[0]), (address[1] if len(address) > 1 else None)
    return None


def install(log_path: str | None, block: bool = True, sink: list | None = None):
    """Add the audit hook (it stays for the life of the process); return a switch ``{"on": bool}``."""
    switch = {"on": True}

    def hook(event: str, args: tuple) -> None:
        if event not in EVENTS or not switch["on"]:
            return
        where = _host(event, args)
        if where is None:
            return
        host, port = where
        bad = host not in LOOPBACK
        line = f"{os.getpid()} {event} {host} {port}{' BLOCKED' if bad else ''}"
        if sink is not None:
            sink.append(line)
        if log_path:
            with open(log_path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
        if bad and block:
            raise PermissionError(f"network guard: {event} to {host!r} refused (only loopback is allowed)")

    sys.addaudithook(hook)
    return switch


if os.environ.get("HIERAFASH_NET_LOG"):
    install(os.environ["HIERAFASH_NET_LOG"])
