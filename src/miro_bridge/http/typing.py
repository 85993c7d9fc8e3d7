"""ASGI's structural types, loosely typed on purpose: the edge passes messages through untouched."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

#: Where a route handler records its template for the edge's metrics (set per request).
ROUTE_KEY = "miro_bridge.route"
#: The address of the connection's peer, kept by the edge when it takes the client's address
#: from a trusted proxy's `X-Forwarded-For` (`scope["client"]` then names the client).
PEER_KEY = "miro_bridge.peer"
