"""Context that follows a request across tasks and actors: its id.

Set by the HTTP edge for each request, carried by actor envelopes into the actor that handles
the message, and added to every log line by a structlog processor (`miro_bridge.logs`).
"""

from __future__ import annotations

import contextvars

#: The id of the HTTP request being served, if any.
request_id_var: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "miro_bridge_request_id", default=None
)
