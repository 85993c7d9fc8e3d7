"""`POST /api/logs`: the Node client's log entries, checked, cleaned, stored and re-emitted.

Limits (413 `payload_too_large`): the bytes actually received (`MIRO_LOG_MAX_PAYLOAD_BYTES`,
counted as they arrive, whatever `Content-Length` says), the number of entries
(`MIRO_LOG_MAX_ENTRIES`), a message of 1024 characters, a context of 20 keys with values of
1024 characters. Control characters and line breaks are replaced by spaces, so an entry can
never forge a log line. Entries are stored (kept `MIRO_LOG_RETENTION_DAYS`) and re-emitted
through structlog with `source=client` and the request id.

Each caller (the user when known, else the client's address) may send
`MIRO_LOG_RATE_PER_MINUTE` entries a minute and `MIRO_LOG_QUOTA_BYTES` bytes a day; past
either, 429 with `Retry-After` and nothing stored.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any

import attrs
import msgspec
from quart import Quart, Response, request
from quart_schema import document_request

from miro_bridge.actors.client_logs import LEVELS, Ingest
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.errors import PayloadTooLarge, ValidationFailed
from miro_bridge.http.auth import claimed_user
from miro_bridge.http.bodies import parse_json
from miro_bridge.http.openapi import document_status
from miro_bridge.records.client_logs import ClientLogEntry

MAX_MESSAGE = 1024
MAX_CONTEXT_KEYS = 20
MAX_CONTEXT_VALUE = 1024
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")


@attrs.frozen
class LogEntry:
    """One entry the client posts (documentation only: `parse_entry` checks entries).

    `level` is one of trace, debug, info, warn, warning, error, fatal, in any case.
    """

    timestamp: str | float
    level: str
    message: Annotated[str, msgspec.Meta(max_length=MAX_MESSAGE)]
    context: dict[str, Any] | None = None


def clean(text: str) -> str:
    """`text` with every run of control characters and line breaks made one space."""
    return _CONTROL.sub(" ", text)


def parse_entry(raw: object, index: int) -> ClientLogEntry:
    """One entry, checked and cleaned; 422 for a malformed entry, 413 for one over a limit."""
    loc: tuple[str | int, ...] = ("body", index)
    if not isinstance(raw, dict):
        raise ValidationFailed.at(loc, "a log entry is an object")
    timestamp, level, message = raw.get("timestamp"), raw.get("level"), raw.get("message")
    if not isinstance(timestamp, str | int | float) or isinstance(timestamp, bool):
        raise ValidationFailed.at((*loc, "timestamp"), "required: a string or a number")
    if not isinstance(level, str) or level.lower() not in LEVELS:
        raise ValidationFailed.at((*loc, "level"), f"one of {', '.join(LEVELS)}")
    if not isinstance(message, str):
        raise ValidationFailed.at((*loc, "message"), "required: a string")
    if len(message) > MAX_MESSAGE:
        raise PayloadTooLarge(f"entry {index}: message over {MAX_MESSAGE} characters")
    context = raw.get("context") or {}
    if not isinstance(context, dict):
        raise ValidationFailed.at((*loc, "context"), "an object")
    if len(context) > MAX_CONTEXT_KEYS:
        raise PayloadTooLarge(f"entry {index}: context over {MAX_CONTEXT_KEYS} keys")
    cleaned: dict[str, str] = {}
    for key, value in context.items():
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > MAX_CONTEXT_VALUE:
            raise PayloadTooLarge(
                f"entry {index}: context value over {MAX_CONTEXT_VALUE} characters"
            )
        cleaned[clean(str(key))] = clean(text)
    return ClientLogEntry(clean(str(timestamp)), level.lower(), clean(message), cleaned)


def register_client_log_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add `POST /api/logs` to `app`."""

    @app.post("/api/logs")
    @document_request(list[LogEntry])
    @document_status(202, "stored, and re-emitted as log events with source=client")
    async def client_log_entries() -> Response:
        """Store the client's log entries and re-emit them as structured log events."""
        # Counted on the bytes as they arrive: a lying or missing Content-Length gains nothing.
        request.max_content_length = settings.log_max_payload_bytes
        raw = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        entries: Any = parse_json(raw)
        if not isinstance(entries, list):
            raise ValidationFailed.at(("body",), "an array of log entries")
        if len(entries) > settings.log_max_entries:
            raise PayloadTooLarge(f"over {settings.log_max_entries} entries in one request")
        parsed = [parse_entry(entry, index) for index, entry in enumerate(entries)]
        user_id = claimed_user(settings)
        caller = f"user:{user_id}" if user_id is not None else f"addr:{request.remote_addr}"
        await actors.client_logs.call(Ingest(tuple(parsed), user_id, caller))
        return Response(b"", status=202)
