"""`Idempotency-Key` for the routes that create: one execution, byte-identical replays."""

from __future__ import annotations

import contextlib
import hashlib
import json
from collections.abc import Awaitable, Callable

import attrs
import trio
from quart import Response, request

from miro_bridge.actors.idempotency import Claim, Complete, Release
from miro_bridge.actors.system import ActorSystem
from miro_bridge.errors import BadRequest, BridgeError
from miro_bridge.http.bodies import parse_json
from miro_bridge.records.idempotency import Completion, KeyClaim, StoredResponse

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


@attrs.define
class Keyed:
    """A request whose `Idempotency-Key` it has claimed: its work may store the response."""

    claim: KeyClaim
    stored: StoredResponse | None = None

    def completion(self, status: int, body: bytes) -> Completion:
        """The JSON response `status`/`body`, to store in the same transaction as the work."""
        self.stored = StoredResponse(self.claim.fingerprint, status, "application/json", body)
        return Completion(self.claim, self.stored)


async def idempotent(
    actors: ActorSystem, user_id: str, run: Callable[[Keyed | None], Awaitable[Response]]
) -> Response:
    """Answer with `run(keyed)`, or with the response stored under the request's key.

    Scoped to the user and the route (method and path). Responses with a status below 500
    are stored for 48 hours (by `run` itself, with its work, through `Keyed.completion`; else
    here, after it); a failure releases the key so that a retry runs again.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return await run(None)
    if not 1 <= len(key) <= MAX_KEY_LENGTH:
        raise BadRequest(f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} characters")
    route = f"{request.method} {request.path.rstrip('/')}"
    digest = fingerprint(await request.get_data(cache=True, as_text=False, parse_form_data=False))
    claimed = await actors.idempotency.call(
        Claim(user_id, route, key, digest), timeout=WAIT_FOR_FIRST_SECONDS
    )
    if isinstance(claimed, StoredResponse):
        return Response(claimed.body, status=claimed.status, content_type=claimed.content_type)
    keyed = Keyed(claimed)
    ended = False
    try:
        response = await run(keyed)
        if keyed.stored is not None:
            await actors.idempotency.call(Complete(Completion(claimed, keyed.stored), stored=True))
            ended = True
        elif response.status_code < 500:
            body = await response.get_data(as_text=False)
            record = StoredResponse(digest, response.status_code, response.content_type or "", body)
            await actors.idempotency.call(Complete(Completion(claimed, record)))
            ended = True
        return response
    finally:
        if not ended:
            with trio.CancelScope(shield=True), contextlib.suppress(BridgeError):
                await actors.idempotency.call(Release(claimed), timeout=5)
