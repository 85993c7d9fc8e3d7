"""`Idempotency-Key` for the routes that create: one execution, byte-identical replays."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable

import trio
from quart import Response, request

from miro_bridge.actors.idempotency import Claim, Complete, Release
from miro_bridge.actors.system import ActorSystem
from miro_bridge.errors import BadRequest, BridgeError
from miro_bridge.http.bodies import parse_json
from miro_bridge.store.idempotency import StoredResponse

MAX_KEY_LENGTH = 255
#: How long a request waits for a concurrent first request with the same key to finish.
WAIT_FOR_FIRST_SECONDS = 120.0


def fingerprint(body: bytes) -> str:
    """SHA-256 of the body; of its canonical form when it is JSON (spacing does not count)."""
    try:
        canonical = json.dumps(parse_json(body), sort_keys=True, separators=(",", ":")).encode()
    except BridgeError:  # not JSON: the route refuses it; the raw bytes name it meanwhile
        canonical = body
    return hashlib.sha256(canonical).hexdigest()


async def idempotent(
    actors: ActorSystem, user_id: str, run: Callable[[], Awaitable[Response]]
) -> Response:
    """Answer with `run()`, or with the response stored under the request's key.

    Scoped to the user and the route (method and path). Responses with a status below 500
    are stored for 48 hours; a failure releases the key so that a retry runs again.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return await run()
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    route = f"{request.method} {request.path.rstrip('/')}"
    digest = fingerprint(await request.get_data(cache=True, as_text=False, parse_form_data=False))
    claim = await actors.idempotency.call(
        Claim(user_id, route, key, digest), timeout=WAIT_FOR_FIRST_SECONDS
    )
    if isinstance(claim, StoredResponse):
        return Response(claim.body, status=claim.status, content_type=claim.content_type)
    stored = False
    try:
        response = await run()
        if response.status_code < 500:
            body = await response.get_data(as_text=False)
            record = StoredResponse(digest, response.status_code, response.content_type or "", body)
            await actors.idempotency.call(Complete(user_id, route, key, record))
            stored = True
        return response
    finally:
        if not stored:
            with trio.CancelScope(shield=True), contextlib.suppress(BridgeError):
                await actors.idempotency.call(Release(user_id, route, key), timeout=5)
