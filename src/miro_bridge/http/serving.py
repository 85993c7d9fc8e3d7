"""Binding and Hypercorn settings shared by the service and the standalone sandbox."""

from __future__ import annotations

import logging
import socket

import hypercorn.config

GRACE_SECONDS = 5.0


def listen(host: str, port: int) -> socket.socket:
    """A TCP socket bound to `host:port` (port 0: chosen by the OS), not yet listening.

    Binding before Hypercorn starts tells the service its real address first, so that
    everything that needs its own URL (the sandbox mount, the OAuth redirect) can have it.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except BaseException:
        sock.close()
        raise
    return sock


def hypercorn_config(sock: socket.socket) -> hypercorn.config.Config:
    """Hypercorn settings serving on `sock`, which Hypercorn then owns and closes."""
    config = hypercorn.config.Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.graceful_timeout = GRACE_SECONDS
    config.accesslog = None  # the edge logs each request, with its request id
    config.errorlog = logging.getLogger("hypercorn.error")  # through structlog, see logs.py
    return config
