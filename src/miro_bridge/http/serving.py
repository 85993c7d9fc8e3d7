"""Binding and Hypercorn settings shared by the service and the standalone sandbox.

Hypercorn answers some requests itself, before any app sees them: a head it cannot parse
(400) or one with more header bytes than it buffers (431). It sends those with an empty body
and no request id; `_answer_with_the_error_body` replaces that one method of its HTTP/1.1
protocol (Hypercorn 0.18) so that they carry the contract's error body and an `X-Request-ID`,
as every other answer does, and are logged like them.
"""

from __future__ import annotations

import logging
import secrets
import socket
from itertools import chain

import h11
import hypercorn.config
import structlog
from hypercorn.protocol.h11 import H11Protocol

from miro_bridge.http.errors import error_body

log = structlog.get_logger("miro_bridge.http")

#: What Hypercorn's own answers mean, for their error body.
_REFUSED = {
    431: "the request's header fields are too large",
    400: "the request could not be parsed as HTTP/1.1",
}


async def _answer_with_the_error_body(self: H11Protocol, status_code: int) -> None:
    """Hypercorn's answer to a request it could not take, with the contract's error body."""
    request_id = secrets.token_hex(16)
    message = _REFUSED.get(status_code, "the request could not be taken")
    body = error_body("bad_request", message, request_id)
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
        (b"x-request-id", request_id.encode()),
    ]
    response = h11.Response(
        status_code=status_code, headers=list(chain(headers, self.config.response_headers("h11")))
    )
    await self._send_h11_event(response)
    await self._send_h11_event(h11.Data(data=body))
    await self._send_h11_event(h11.EndOfMessage())
    client = self.client[0] if self.client else None
    log.info("http.refused", request_id=request_id, client=client, status=status_code)


H11Protocol._send_error_response = _answer_with_the_error_body  # type: ignore[method-assign]

GRACE_SECONDS = 5.0


def listen(host: str, port: int, *, reuse_port: bool = False) -> socket.socket:
    """A TCP socket bound to `host:port` (port 0: chosen by the OS), not yet listening.

    Binding before Hypercorn starts tells the service its real address first, so that
    everything that needs its own URL (the sandbox mount, the OAuth redirect) can have it.
    `reuse_port`: other processes bind the same port (`serve --workers`).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
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
