"""`POST /api/webhook`: Miro's handshake, and board events that refresh the cache.

With `MIRO_WEBHOOK_SECRET` set (a comma-separated list, for rotation), `X-Miro-Signature` must
be the lowercase hex HMAC-SHA256 of the raw body under one of the secrets, compared in
constant time, before the body is even parsed; else 401. The handshake `{"challenge"}` is
echoed as JSON (200). Events (`{"events": [{"event", "data"}]}` or `{"event": {...}}`) are
recorded and turned into board syncs in one durable write before the 202; an event seen in
the last 24 hours (same id, or the same body when it has none) is not processed again.

Bounded, because anyone can post here when no secret is set: the body must be declared JSON
(415 otherwise: a web page cannot send it without a CORS preflight), at most
`MIRO_WEBHOOK_MAX_EVENTS` events per request (413), at most `MIRO_WEBHOOK_EVENTS_PER_MINUTE`
taken per board per minute, and events for a board whose sync has not started yet ride on it:
a board is never listed more than once for a burst of events.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

import attrs
from quart import Quart, Response, request
from quart_schema import document_request

from miro_bridge.actors.job_queue import AcceptWebhookEvents
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import Settings
from miro_bridge.errors import BadRequest, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from miro_bridge.http.bodies import json_response, parse_json
from miro_bridge.http.openapi import document_status
from miro_bridge.records.jobs import WebhookEvent


def signed_by_one_of(secrets: tuple[str, ...], body: bytes, signature: str | None) -> bool:
    """Whether `signature` is the hex HMAC-SHA256 of `body` under one of `secrets`."""
    if signature is None:
        return False
    given = signature.strip().encode()
    return any(
        hmac.compare_digest(hmac.new(s.encode(), body, hashlib.sha256).hexdigest().encode(), given)
        for s in secrets
    )


def _events(payload: dict[str, Any], body: bytes) -> list[WebhookEvent]:
    """The events of a payload, each with its dedup key and board; `BadRequest` if malformed."""
    if isinstance(payload.get("events"), list):
        raw = payload["events"]
    elif isinstance(payload.get("event"), dict):
        raw = [payload["event"]]
    else:
        raise BadRequest("expected {'challenge'}, {'events': [...]} or {'event': {...}}")
    events = []
    for index, event in enumerate(raw):
        if not isinstance(event, dict):
            raise BadRequest(f"event {index} is not an object")
        data: dict[str, Any] = event["data"] if isinstance(event.get("data"), dict) else {}
        board = data.get("boardId") or event.get("boardId")
        identity = event.get("id") or data.get("id")
        key = (
            f"id:{identity}"
            if identity
            else "body:" + hashlib.sha256(body + str(index).encode()).hexdigest()
        )
        events.append(WebhookEvent(key, str(board) if board else None))
    return events


@attrs.frozen
class WebhookBody:
    """Miro's handshake `{"challenge"}`, or events: `{"events": [...]}` or `{"event": {...}}`.

    Documentation only: the route parses the raw body itself, after checking its signature.
    Each event is `{"event": str, "data": {"boardId", ...}}`.
    """

    challenge: str | None = None
    events: list[dict[str, Any]] | None = None
    event: dict[str, Any] | None = None


def register_webhook_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add `POST /api/webhook` to `app`."""
    counter = actors.metrics.webhook_events

    @app.post("/api/webhook")
    @document_request(WebhookBody)
    @document_status(200, "the handshake: its challenge echoed", "application/json")
    @document_status(202, "the events are stored; the queue processes them")
    async def webhook() -> Response:
        """Miro's handshake, or events to process."""
        if not request.is_json:  # what a web page can send without a preflight is not JSON
            counter.labels("rejected").inc()
            raise UnsupportedMediaType("webhook bodies are JSON (Content-Type: application/json)")
        body = await request.get_data(cache=True, as_text=False, parse_form_data=False)
        if settings.webhook_secrets and not signed_by_one_of(
            settings.webhook_secrets, body, request.headers.get("X-Miro-Signature")
        ):
            counter.labels("rejected").inc()
            raise Unauthorized("X-Miro-Signature is missing or does not match")
        payload = parse_json(body)
        if not isinstance(payload, dict):
            raise BadRequest("the body is not a JSON object")
        if isinstance(payload.get("challenge"), str):
            return json_response({"challenge": payload["challenge"]})
        events = _events(payload, body)
        if len(events) > settings.webhook_max_events:
            counter.labels("rejected").inc(len(events))
            raise PayloadTooLarge(
                f"at most {settings.webhook_max_events} webhook events in one request"
            )
        outcomes = await actors.jobs.call(
            AcceptWebhookEvents(tuple(events), settings.webhook_events_per_minute)
        )
        for outcome in outcomes:
            counter.labels(outcome).inc()
        return json_response({"accepted": outcomes.count("enqueued")}, 202)
