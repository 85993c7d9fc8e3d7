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

A request that passes every check is answered by the edge (`client_logs_fast_post`), which
runs the same checks on the body it has already read and skips Quart; one that fails any
goes to the route, which refuses it with the contract's error.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any

import attrs
import msgspec
from quart import Quart, Response, request
from quart_schema import document_request

from miro_bridge.actors.client_logs import LEVELS, Ingest
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.errors import BridgeError, PayloadTooLarge, ValidationFailed
from miro_bridge.http._edge import FastPost
from miro_bridge.http.auth import claimed_user, user_claimed_in
from miro_bridge.http.bodies import parse_json
from miro_bridge.http.openapi import document_status
from miro_bridge.http.typing import Scope
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


#: What the route answers: an empty 202, with Quart's default content type.
_ACCEPTED = (202, b"", b"text/html; charset=utf-8")


def clean(text: str) -> str:
    """`text` with every run of control characters and line breaks made one space."""
    if text.isprintable():  # no control character, no line break: the usual case
        return text
    return _CONTROL.sub(" ", text)


#: JSON's text of the scalars a context holds, as `json.dumps` writes them (numbers are
#: finite: `parse_json` refuses the others), without its per-call set-up.
_SCALAR_TEXT: dict[type, Callable[[Any], str]] = {
    type(None): lambda _: "null",
    bool: lambda value: "true" if value else "false",
    int: int.__repr__,
    float: float.__repr__,
}


def _text(value: object) -> str:
    """A context value as stored: a string as it is, anything else as its JSON."""
    if type(value) is str:
        return value
    scalar = _SCALAR_TEXT.get(type(value))
    return scalar(value) if scalar is not None else json.dumps(value)


def parse_entry(raw: object, index: int) -> ClientLogEntry:
    """One entry, checked and cleaned; 422 for a malformed entry, 413 for one over a limit."""
    loc: tuple[str | int, ...] = ("body", index)
    if not isinstance(raw, dict):
        raise ValidationFailed.at(loc, "a log entry is an object")
    timestamp, level, message = raw.get("timestamp"), raw.get("level"), raw.get("message")
    if not isinstance(timestamp, (str, int, float)) or isinstance(timestamp, bool):
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
        text = _text(value)
        if len(text) > MAX_CONTEXT_VALUE:
            raise PayloadTooLarge(
                f"entry {index}: context value over {MAX_CONTEXT_VALUE} characters"
            )
        cleaned[clean(str(key))] = clean(text)
    return ClientLogEntry(clean(str(timestamp)), level.lower(), clean(message), cleaned)


def parse_entries(raw: bytes, settings: Settings) -> tuple[ClientLogEntry, ...]:
    """The entries of a request body, checked and cleaned; the contract's error otherwise."""
    entries: Any = parse_json(raw)
    if not isinstance(entries, list):
        raise ValidationFailed.at(("body",), "an array of log entries")
    if len(entries) > settings.log_max_entries:
        raise PayloadTooLarge(f"over {settings.log_max_entries} entries in one request")
    return tuple(parse_entry(entry, index) for index, entry in enumerate(entries))


class _PlainEntry(msgspec.Struct, forbid_unknown_fields=True):
    """An entry as the edge takes it, checked by msgspec as it decodes: the four fields
    only, a timestamp that is a string or a number (not a boolean), a message within
    `MAX_MESSAGE` characters, a context of at most `MAX_CONTEXT_KEYS` scalar values.
    Anything else is left to the route, which says what is wrong with it."""

    timestamp: str | int | float
    level: str
    message: Annotated[str, msgspec.Meta(max_length=MAX_MESSAGE)]
    context: (
        Annotated[
            dict[str, str | int | float | bool | None], msgspec.Meta(max_length=MAX_CONTEXT_KEYS)
        ]
        | None
    ) = None


_PLAIN = msgspec.json.Decoder(list[_PlainEntry])


def _plain_entries(raw: bytes, settings: Settings) -> tuple[ClientLogEntry, ...] | None:
    """The entries of a body the route would accept as they are, cleaned as it cleans them;
    None for any other body (the route then reads it and says what is wrong).

    Plain: a JSON array of `_PlainEntry` (msgspec refuses what `parse_json` refuses, and a
    few things it takes, such as `1e400`), each with a known level and context values of
    at most `MAX_CONTEXT_VALUE` characters as stored. So nothing in it is nested deeper
    than three levels, and no string holds a lone surrogate (msgspec refuses them): what
    `parse_json` checks is known already.
    """
    try:
        entries = _PLAIN.decode(raw)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, not plain entries
        return None
    if len(entries) > settings.log_max_entries:
        return None
    parsed = []
    for entry in entries:
        level = entry.level.lower()
        if level not in LEVELS:
            return None
        cleaned: dict[str, str] = {}
        if entry.context:
            for key, value in entry.context.items():
                text = value if type(value) is str else _text(value)
                if len(text) > MAX_CONTEXT_VALUE:
                    return None
                cleaned[clean(key)] = clean(text)
        timestamp = entry.timestamp
        parsed.append(
            ClientLogEntry(
                clean(timestamp if type(timestamp) is str else str(timestamp)),
                level,
                clean(entry.message),
                cleaned,
            )
        )
    return tuple(parsed)


def _caller(user_id: str | None, address: str | None) -> str:
    return f"user:{user_id}" if user_id is not None else f"addr:{address}"


def client_logs_fast_post(settings: Settings, actors: ActorSystem) -> FastPost:
    """`POST /api/logs` at the edge, for a request the route would accept as it is.

    The same checks as the route, on the body the edge has read: anything they refuse (or
    a body over `MIRO_LOG_MAX_PAYLOAD_BYTES`) goes to the route, which answers the error.
    """

    async def answer(
        scope: Scope, headers: Mapping[bytes, bytes], body: bytes
    ) -> tuple[int, bytes, bytes] | None:
        if len(body) > settings.log_max_payload_bytes:
            return None
        try:
            user_id = user_claimed_in(headers, settings)
        except BridgeError:
            return None
        entries = _plain_entries(body, settings)
        if entries is None:
            return None
        caller = _caller(user_id, (scope.get("client") or ["<local>"])[0])  # as Quart has it
        await actors.client_logs.call(Ingest(entries, user_id, caller))
        return _ACCEPTED

    return FastPost("/api/logs", "/api/logs", answer)


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
        entries = parse_entries(raw, settings)
        user_id = claimed_user(settings)
        caller = _caller(user_id, request.remote_addr)
        await actors.client_logs.call(Ingest(entries, user_id, caller))
        status, body, content_type = _ACCEPTED
        return Response(body, status=status, content_type=content_type.decode())
