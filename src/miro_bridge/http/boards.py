"""Board routes: the cache, tags, changes, and shapes (read, create in bulk, update, delete).

ShapeData, as the Node client sends it, is translated to Miro's item body by
`miro_bridge.miro.shapes`. In a synchronous create, a shape Miro would refuse for its style
(an unknown font) gets its own 400 result and is not sent; the others are created. With an
`Idempotency-Key`, the create runs as a durable job bound to the key, and the route waits for
it: a retry never creates the shapes twice, even after a timeout or a crash.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping
from typing import Any

import attrs
import trio
from quart import Quart, Response, request
from quart_schema import document_request, document_response

from miro_bridge.actors.board_cache import (
    CreateItems,
    DeleteItem,
    ItemOutcome,
    ReadBoard,
    ReadItem,
    UpdateItem,
    cache_body,
    changes_since,
    shapes_body,
    tags_body,
)
from miro_bridge.actors.job_queue import Enqueue, WaitJob
from miro_bridge.actors.system import ActorSystem
from miro_bridge.config import AuthMode, Settings
from miro_bridge.errors import PayloadTooLarge, Unavailable, ValidationFailed
from miro_bridge.http._edge import FastRoute
from miro_bridge.http.auth import USER_ID, acting_user
from miro_bridge.http.bodies import convert_body, json_response
from miro_bridge.http.idempotent import Keyed, idempotent
from miro_bridge.http.openapi import document_status
from miro_bridge.miro import endpoints
from miro_bridge.miro.shapes import ShapeData, refusal, shape_body
from miro_bridge.records.jobs import JobView, NewOperation, OperationView, new_job_id

#: A read of a cold board may page through many Miro calls, each paced by the user's budget.
READ_TIMEOUT = 60.0
WRITE_TIMEOUT = 120.0


@attrs.frozen
class Tag:
    """A board tag as the client reads it."""

    id: str
    title: str
    color: str | None


@attrs.frozen
class BoardShapes:
    """Every item of the board, and its version now."""

    shapes: list[dict[str, Any]]
    version: int


@attrs.frozen
class Changes:
    """Items changed and ids deleted after a version; `reset`: every item, rebuild."""

    version: int
    changed: list[dict[str, Any]]
    deleted: list[str]
    reset: bool


@attrs.frozen
class CreatedShape:
    """One element of a bulk create: its status and Miro's JSON (item or error) as a string."""

    status: int
    body: str


@attrs.frozen
class CachedBoard:
    """A board snapshot as `GET /api/cache/{id}` answers it."""

    id: str
    name: str
    version: int
    fetchedAt: str
    items: list[dict[str, Any]]
    tags: list[Tag]


async def _shapes_body() -> list[ShapeData]:
    """The request body: an array of ShapeData, or one ShapeData."""
    data = await request.get_json()
    shapes: list[ShapeData] | ShapeData = convert_body(data, list[ShapeData] | ShapeData)
    return shapes if isinstance(shapes, list) else [shapes]


def _item_outcome(operation: OperationView) -> ItemOutcome:
    """What Miro answered for one shape of a keyed create, as the route answers it."""
    if operation.response is None:  # failed before any answer (a damaged stored operation)
        message = operation.message or "the shape was not created"
        return ItemOutcome(500, {"type": "error", "status": 500, "message": message})
    return ItemOutcome(operation.response.status, operation.response.body)


def _since(*, required: bool = False) -> int:
    raw = request.args.get("since")
    if raw is None:
        if required:
            raise ValidationFailed.at(("query", "since"), "required: a board version")
        return 0
    try:
        since = int(raw)
    except ValueError:
        since = -1
    if since < 0:
        message = f"since must be a board version (an integer >= 0), got {raw!r}"
        raise ValidationFailed.at(("query", "since"), message)
    return since


#: The query strings `GET .../shapes` answers exactly as it answers none: no `since`, or a
#: plain version (anything else, even valid, goes to the route: it checks it).
_PLAIN_SINCE = re.compile(rb"(?:since=[0-9]{1,18})?")


def board_fast_routes(settings: Settings, actors: ActorSystem) -> list[FastRoute]:
    """`GET /api/cache/{id}`, `GET /api/boards/{id}/tags` and `GET /api/boards/{id}/shapes`
    from the published views, when the cache can answer them alone.

    The bytes are those the routes below answer (`cache_body`, `tags_body`, `shapes_body`
    of the same snapshot). Header mode only (an ID token costs a signature check: that
    stays on the full route). Anything the view cannot answer (cold, stale, access not yet
    confirmed, a `since` that is not a plain version) returns None and goes through the
    route and the BoardCache actor, which also count those reads.
    """
    if settings.auth_mode is not AuthMode.HEADER:
        return []
    views, clock = actors.board_views, actors.clock
    hits = actors.metrics.board_cache_requests.labels("hit")

    def reader(
        prefix: str, suffix: str, read: Callable[[str, str, float], bytes | None]
    ) -> Callable[[str, Mapping[bytes, bytes]], bytes | None]:
        def answer(path: str, headers: Mapping[bytes, bytes]) -> bytes | None:
            rest = path[len(prefix) :].removesuffix("/")
            if not rest.endswith(suffix):
                return None
            board_id = rest[: len(rest) - len(suffix)]
            user = headers.get(b"x-user-id")
            if not board_id or "/" in board_id or board_id in (".", "..") or user is None:
                return None
            user_id = user.decode("latin-1")
            if not USER_ID.fullmatch(user_id):
                return None
            body = read(user_id, board_id, clock())
            if body is not None:
                hits.inc()
            return body

        return answer

    return [
        FastRoute(
            "/api/cache/", "/api/cache/<board_id>", reader("/api/cache/", "", views.cached_answer)
        ),
        FastRoute(
            "/api/boards/",
            "/api/boards/<board_id>/tags",
            reader("/api/boards/", "/tags", views.cached_tags),
            suffix="/tags",
        ),
        FastRoute(
            "/api/boards/",
            "/api/boards/<board_id>/shapes",
            reader("/api/boards/", "/shapes", views.cached_shapes),
            suffix="/shapes",
            query=lambda query: _PLAIN_SINCE.fullmatch(query) is not None,
        ),
    ]


def register_board_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add the cache, tags and shapes routes to `app`."""

    async def snapshot(board_id: str) -> Any:
        return await actors.boards.call(
            ReadBoard(acting_user(settings), board_id), timeout=READ_TIMEOUT
        )

    @app.get("/api/cache/<board_id>")
    @document_response(CachedBoard)
    async def cached_board(board_id: str) -> Response:
        """The board with its items and tags, from the cache (read-through)."""
        return Response(cache_body(await snapshot(board_id)), content_type="application/json")

    @app.get("/api/boards/<board_id>/tags")
    @document_response(list[Tag])
    async def board_tags(board_id: str) -> Response:
        """The board's tags as `{id, title, color}`."""
        return Response(tags_body(await snapshot(board_id)), content_type="application/json")

    @app.get("/api/boards/<board_id>/shapes")
    @document_response(BoardShapes)
    async def board_shapes(board_id: str) -> Response:
        """Every item of the board, whatever `since` is (the client replaces its list)."""
        _since()
        return Response(shapes_body(await snapshot(board_id)), content_type="application/json")

    @app.get("/api/boards/<board_id>/changes")
    @document_response(Changes)
    async def board_changes(board_id: str) -> Response:
        """Items changed and ids deleted after board version `since`, or a reset."""
        since = _since(required=True)
        changes = changes_since(await snapshot(board_id), since, actors.clock())
        return json_response(attrs.asdict(changes))

    async def _create_once(
        keyed: Keyed, user_id: str, board_id: str, items: list[dict[str, Any]]
    ) -> list[ItemOutcome]:
        """Create `items` as a job bound to the request's key, and wait for its outcome.

        The key stays held while the job runs, so a retry (after a 503, or after this
        process died) waits for the same job, which reconciles what an attempt left in
        doubt, instead of creating everything again.
        """
        job_id = keyed.claim.job_id
        if job_id is None:
            if not items:
                return []
            job_id = new_job_id()
            operations = tuple(
                NewOperation("create_shape", board_id, {"item": item, "respond": True})
                for item in items
            )
            await actors.jobs.call(
                Enqueue(job_id, user_id, "shapes", operations, binds=keyed.claim)
            )
        view: JobView | None = None
        async with trio.open_nursery() as nursery:

            async def wait() -> None:
                nonlocal view
                view = await actors.jobs.call(WaitJob(user_id, job_id), timeout=math.inf)
                nursery.cancel_scope.cancel()

            nursery.start_soon(wait)
            await actors.wait(WRITE_TIMEOUT)
            nursery.cancel_scope.cancel()
        if view is None:
            raise Unavailable(
                "the shapes are still being created; send the request again with the same "
                "Idempotency-Key for their results"
            )
        return [_item_outcome(op) for op in view.operations]

    @app.post("/api/boards/<board_id>/shapes")
    @document_request(list[ShapeData] | ShapeData)
    @document_response(list[CreatedShape], 201)
    async def create_shapes(board_id: str) -> Response:
        """Create shapes on Miro now (bulk, 20 per call, in order); one result per shape."""
        user_id = acting_user(settings)

        async def run(keyed: Keyed | None) -> Response:
            shapes = await _shapes_body()
            if len(shapes) > settings.shapes_max:
                raise PayloadTooLarge(
                    f"at most {settings.shapes_max} shapes are created in one request; "
                    "send more through POST /api/boards/{boardId}/ops (a durable job)"
                )
            outcomes: list[ItemOutcome | None] = []
            items = []
            for shape in shapes:
                try:  # a shape Miro would refuse gets its own 400, and is not sent
                    items.append({"type": "shape", **shape_body(shape)})
                    outcomes.append(None)
                except ValidationFailed as error:
                    outcomes.append(ItemOutcome(400, refusal(error)))
            created: list[ItemOutcome] = []
            if keyed is not None:
                created = await _create_once(keyed, user_id, board_id, items)
            elif items:
                created = await actors.boards.call(
                    CreateItems(user_id, board_id, tuple(items)), timeout=WRITE_TIMEOUT
                )
            answers = iter(created)
            results = [outcome or next(answers) for outcome in outcomes]
            return json_response(
                [{"status": o.status, "body": json.dumps(o.body)} for o in results], 201
            )

        return await idempotent(actors, user_id, run)

    @app.get("/api/boards/<board_id>/shapes/<item_id>")
    @document_status(200, "the Miro item JSON", "application/json")
    async def get_shape(board_id: str, item_id: str) -> Response:
        """One item's Miro JSON (cache, read-through)."""
        item = await actors.boards.call(
            ReadItem(acting_user(settings), board_id, item_id), timeout=READ_TIMEOUT
        )
        return json_response(item)

    @app.put("/api/boards/<board_id>/shapes/<item_id>")
    @document_status(200, "the updated Miro item JSON", "application/json")
    @document_request(ShapeData)
    async def update_shape(board_id: str, item_id: str) -> Response:
        """Update a shape on Miro (PATCH) and in the cache."""
        user_id = acting_user(settings)
        shape = convert_body(await request.get_json(), ShapeData)
        try:
            body = shape_body(shape)
        except ValidationFailed as error:
            raise error.within(["body"]) from None
        item = await actors.boards.call(
            UpdateItem(user_id, board_id, item_id, endpoints.UPDATE_SHAPE, body),
            timeout=WRITE_TIMEOUT,
        )
        return json_response(item)

    @app.delete("/api/boards/<board_id>/shapes/<item_id>")
    @document_status(204, "deleted (or already absent)")
    async def delete_shape(board_id: str, item_id: str) -> Response:
        """Delete an item on Miro and from the cache; an absent item is a success."""
        await actors.boards.call(
            DeleteItem(acting_user(settings), board_id, item_id), timeout=WRITE_TIMEOUT
        )
        return Response(b"", status=204)
