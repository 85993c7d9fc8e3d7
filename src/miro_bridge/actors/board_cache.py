"""The BoardCache actor: board snapshots, read through to Miro, kept fresh by syncs.

A snapshot holds Miro's board, items and tags, with a version that rises on every change the
cache sees, and for each item the version it last changed in (`shapes?since=`). Snapshots live
in SQLite and in memory. A read of a board that is missing, or older than
`MIRO_CACHE_TTL_SECONDS`, fetches it from Miro with the reader's token: the board, then its
items (cursor pages) and tags (offset pages). Concurrent reads of one board share one fetch.
Writes made through the service update the snapshot as soon as Miro confirms them; syncs
(`SyncBoard`, and every `MIRO_SYNC_INTERVAL_SECONDS` for boards used in the last hour) re-list
the board and bump the version only when something changed (by `modifiedAt`). At the same
interval, boards unused for an hour leave memory (SQLite keeps them; the next read loads them
again) and expired access confirmations are dropped, so memory follows the boards in use, not
every board ever read.

Object-level authorization: a snapshot is served to a user only once Miro has confirmed, with
that user's token, that they can read the board; the confirmation is remembered for
`ACCESS_TTL` seconds. Nobody reads another user's cached board by guessing its id.

The latest snapshot of each board, serialised as `GET /api/cache/{id}`, `.../tags` and
`.../shapes` answer it, and the access confirmations are published in `BoardViews`, which the
edge reads without a message (like an ETS table with read concurrency); only this actor
replaces what is published there.
"""

from __future__ import annotations

import datetime
import functools
import json
import math
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any, ClassVar, assert_never, cast

import attrs
import msgspec
import structlog
import trio

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Inbox, Message
from miro_bridge.actors.miro_client import Call, MiroClient
from miro_bridge.actors.store import Store
from miro_bridge.config import Settings
from miro_bridge.errors import (
    ActorError,
    BridgeError,
    MiroBadRequest,
    MiroError,
    MiroForbidden,
    MiroNotFound,
    NotFound,
    StoreUnavailable,
)
from miro_bridge.metrics import Metrics
from miro_bridge.miro import endpoints
from miro_bridge.miro.endpoints import Endpoint
from miro_bridge.records.boards import CachedItem, Snapshot, Tombstone
from miro_bridge.store import boards
from miro_bridge.timestamps import iso8601

log = structlog.get_logger(__name__)

#: How long Miro's word that a user can read a board is trusted.
ACCESS_TTL = 300.0
#: Boards not read for this long are left out of periodic syncs.
SYNC_IDLE_AFTER = 3600.0
#: How long a deleted item is remembered for `/changes` (the contract's 7 days).
TOMBSTONE_SECONDS = 7 * 86400.0
PAGE_LIMIT = "50"
BULK_LIMIT = 20


# Messages -------------------------------------------------------------------------------


@attrs.frozen
class ReadBoard(Message[Snapshot, "BoardCache"]):
    """The board's snapshot, as `user_id` may see it."""

    user_id: str
    board_id: str


@attrs.frozen
class ReadItem(Message[Mapping[str, Any], "BoardCache"]):
    """One item's Miro JSON: from the snapshot when cached, else from Miro."""

    user_id: str
    board_id: str
    item_id: str


@attrs.frozen
class ItemOutcome:
    """One element of a bulk create: 201 and the item, or Miro's status and error body."""

    status: int
    body: Mapping[str, Any]


@attrs.frozen
class CreateItems(Message[list[ItemOutcome], "BoardCache"]):
    """Create items (Miro bulk bodies, each with `type`) in order, 20 per bulk call."""

    user_id: str
    board_id: str
    items: tuple[Mapping[str, Any], ...]


@attrs.frozen
class UpdateItem(Message[Mapping[str, Any], "BoardCache"]):
    """PATCH an item through `endpoint` (e.g. `UPDATE_SHAPE`); reply with Miro's item."""

    user_id: str
    board_id: str
    item_id: str
    endpoint: Endpoint
    body: Mapping[str, Any]


@attrs.frozen
class DeleteItem(Message[None, "BoardCache"]):
    """Delete an item; one already absent at Miro counts as deleted."""

    user_id: str
    board_id: str
    item_id: str


@attrs.frozen
class SyncBoard(Message[Snapshot, "BoardCache"]):
    """Re-list the board from Miro; reply with its snapshot afterwards."""

    user_id: str
    board_id: str


BoardCacheMessage = ReadBoard | ReadItem | CreateItems | UpdateItem | DeleteItem | SyncBoard


# The published read view ----------------------------------------------------------------


class _Published:
    """One board's published answers: the cache body, made when published, and the tags
    and shapes bodies, made on their first read.

    Each body is a pure function of the snapshot, which never changes: whichever task makes
    one first stores the same bytes any other would, so memoising here is not a write of
    state. A new snapshot is a new `_Published`; nothing of the old one is served after it.
    """

    __slots__ = ("_shapes", "_tags", "body", "fresh_until", "snapshot")

    def __init__(self, snapshot: Snapshot, body: bytes, fresh_until: float) -> None:
        self.snapshot = snapshot
        self.body = body
        self.fresh_until = fresh_until
        self._tags: bytes | None = None
        self._shapes: bytes | None = None

    def tags(self) -> bytes:
        """`GET .../tags`'s body."""
        if self._tags is None:
            self._tags = tags_body(self.snapshot)
        return self._tags

    def shapes(self) -> bytes:
        """`GET .../shapes`'s body."""
        if self._shapes is None:
            self._shapes = shapes_body(self.snapshot)
        return self._shapes


class BoardViews:
    """What `GET /api/cache/{id}`, `.../tags` and `.../shapes` may answer without a message;
    written by BoardCache only."""

    def __init__(self) -> None:
        self._boards: dict[str, _Published] = {}
        self._access: dict[tuple[str, str], float] = {}

    def _readable(self, user_id: str, board_id: str, now: float) -> _Published | None:
        published = self._boards.get(board_id)
        if published is None or published.fresh_until <= now:
            return None
        if self._access.get((user_id, board_id), 0.0) <= now:
            return None
        return published

    def cached_answer(self, user_id: str, board_id: str, now: float) -> bytes | None:
        """The serialised snapshot, if fresh and the user's access is confirmed."""
        published = self._readable(user_id, board_id, now)
        return published.body if published is not None else None

    def cached_tags(self, user_id: str, board_id: str, now: float) -> bytes | None:
        """`GET .../tags`'s body (`tags_body`), if fresh and the user's access is confirmed."""
        published = self._readable(user_id, board_id, now)
        return published.tags() if published is not None else None

    def cached_shapes(self, user_id: str, board_id: str, now: float) -> bytes | None:
        """`GET .../shapes`'s body (`shapes_body`), if fresh and the user's access is
        confirmed."""
        published = self._readable(user_id, board_id, now)
        return published.shapes() if published is not None else None

    def publish(self, snapshot: Snapshot, fresh_until: float) -> None:
        """Replace a board's published answers with those of `snapshot`."""
        self._boards[snapshot.board_id] = _Published(snapshot, cache_body(snapshot), fresh_until)

    def grant(self, user_id: str, board_id: str, until: float) -> None:
        """Record Miro's word that the user can read the board, until `until`."""
        self._access[(user_id, board_id)] = until

    def allowed(self, user_id: str, board_id: str, now: float) -> bool:
        """Whether the user's access to the board is confirmed now."""
        return self._access.get((user_id, board_id), 0.0) > now

    def revoke(self, user_id: str, board_id: str) -> None:
        """Forget a confirmation (Miro said no)."""
        self._access.pop((user_id, board_id), None)

    def forget(self, board_ids: Iterable[str], now: float) -> None:
        """Drop the boards' published answers, and every confirmation expired by `now`."""
        for board_id in board_ids:
            self._boards.pop(board_id, None)
        for key in [key for key, until in self._access.items() if until <= now]:
            del self._access[key]

    def __len__(self) -> int:
        """How many boards are published."""
        return len(self._boards)


def cache_body(snapshot: Snapshot) -> bytes:
    """The JSON of `GET /api/cache/{id}` for a snapshot."""
    return msgspec.json.encode(
        {
            "id": snapshot.board_id,
            "name": snapshot.board.get("name", ""),
            "version": snapshot.version,
            "fetchedAt": iso8601(snapshot.fetched_at),
            "items": [item.body for item in snapshot.items.values()],
            "tags": [tag_json(tag) for tag in snapshot.tags],
        }
    )


def tags_body(snapshot: Snapshot) -> bytes:
    """The JSON of `GET /api/boards/{id}/tags` for a snapshot."""
    return json.dumps([tag_json(tag) for tag in snapshot.tags]).encode()


def shapes_body(snapshot: Snapshot) -> bytes:
    """The JSON of `GET /api/boards/{id}/shapes` for a snapshot (every item, any `since`)."""
    shapes = [item.body for item in snapshot.items.values()]
    return json.dumps({"shapes": shapes, "version": snapshot.version}).encode()


def tag_json(tag: Mapping[str, Any]) -> dict[str, Any]:
    """A Miro tag as the client expects it: `{id, title, color}`."""
    return {"id": str(tag["id"]), "title": tag.get("title", ""), "color": tag.get("fillColor")}


def miro_time(timestamp: str) -> datetime.datetime | None:
    """A time as Miro writes it (`modifiedAt`, `createdAt`), comparable; None when it is
    missing or not a timestamp."""
    try:
        return datetime.datetime.fromisoformat(timestamp)
    except ValueError:
        return None


def _newer(listed: str, cached: str) -> bool:
    """Whether the listing's `modifiedAt` is strictly later than the cached item's."""
    a, b = miro_time(listed), miro_time(cached)
    return a is not None and b is not None and a > b


def merge(
    old: Snapshot | None,
    board: Mapping[str, Any],
    items: Sequence[Mapping[str, Any]],
    tags: Sequence[Mapping[str, Any]],
    *,
    fetched_at: float,
    user_id: str,
    listed_after: int | None = None,
) -> Snapshot:
    """A snapshot of what Miro listed, versioned against `old`, never undoing a newer write.

    The listing began when `old` was at version `listed_after` (default: `old`'s version).
    Per item, whichever of the cache's copy and the listing is newer wins:

    - the listing's, when its `modifiedAt` is later (Miro changed it since we saw it);
    - the cache's, when it is the same or later: then it keeps its body (a body written
      through us carries fields the listing leaves out) and its version;
    - the cache's, too, when the cache wrote it after the listing began (version above
      `listed_after`): created, changed or deleted through us during the listing, which the
      listing may predate. A deletion made then stays deleted; an item created then stays.

    The version rises by one if anything was added, changed or removed, or the board's name
    or tags changed; an item the listing no longer has gets a tombstone at that version. A
    board listed from scratch (no `old`) starts at version 1, with history from there.
    """
    version = old.version + 1 if old is not None else 1
    since = listed_after if listed_after is not None else (old.version if old else 0)
    previous: Mapping[str, CachedItem] = old.items if old is not None else {}
    written = {k for k, item in previous.items() if item.version > since}
    deleted = {k for k, t in (old.tombstones if old else {}).items() if t.version > since}
    merged: dict[str, CachedItem] = {}
    changed = old is None
    for item in items:
        item_id = str(item["id"])
        modified = str(item.get("modifiedAt", ""))
        kept = previous.get(item_id)
        if item_id in deleted:
            continue  # deleted through us after the listing began
        if kept is not None and (item_id in written or not _newer(modified, kept.modified_at)):
            merged[item_id] = kept
        else:
            merged[item_id] = CachedItem(item, modified, version)
            changed = True
    for item_id in written - merged.keys():
        merged[item_id] = previous[item_id]  # created through us after the listing began
    if old is not None:
        changed = (
            changed
            or merged.keys() != previous.keys()
            or tuple(tags) != old.tags
            or board.get("name") != old.board.get("name")
        )
    if old is not None and not changed:
        return attrs.evolve(old, fetched_at=fetched_at, sync_user=user_id)
    tombstones = {k: t for k, t in (old.tombstones if old else {}).items() if k not in merged}
    tombstones.update(
        (item_id, Tombstone(version, fetched_at)) for item_id in previous if item_id not in merged
    )
    return Snapshot(
        board_id=str(board["id"]),
        board=board,
        items=merged,
        tags=tuple(tags),
        version=version,
        fetched_at=fetched_at,
        sync_user=user_id,
        tombstones=tombstones,
        history_from=old.history_from if old is not None else 1,
    )


def prune(snapshot: Snapshot, now: float) -> Snapshot:
    """`snapshot` without tombstones older than `TOMBSTONE_SECONDS`; history starts after them."""
    expired = [t.version for t in snapshot.tombstones.values() if _expired(t, now)]
    if not expired:
        return snapshot
    kept = {k: t for k, t in snapshot.tombstones.items() if not _expired(t, now)}
    history_from = max(snapshot.history_from, max(expired) + 1)
    return attrs.evolve(snapshot, tombstones=kept, history_from=history_from)


def _expired(tombstone: Tombstone, now: float) -> bool:
    return tombstone.deleted_at <= now - TOMBSTONE_SECONDS


@attrs.frozen
class BoardChanges:
    """What changed on a board after a version, as `GET .../changes` answers it."""

    version: int
    changed: list[Mapping[str, Any]]
    deleted: list[str]
    reset: bool


def changes_since(snapshot: Snapshot, since: int, now: float) -> BoardChanges:
    """Items changed and ids deleted after board version `since`.

    When the tombstones that would say what was deleted after `since` are gone (older than a
    week, or the board was listed from scratch after `since`), or `since` is a version this
    board never had, the answer is a `reset`: every item, and the caller rebuilds.
    """
    snapshot = prune(snapshot, now)
    if since < snapshot.history_from - 1 or since > snapshot.version:
        items = [item.body for item in snapshot.items.values()]
        return BoardChanges(snapshot.version, items, [], reset=True)
    changed = [item.body for item in snapshot.items.values() if item.version > since]
    deleted = [k for k, t in snapshot.tombstones.items() if t.version > since]
    return BoardChanges(snapshot.version, changed, deleted, reset=False)


def _chunks(items: Sequence[Mapping[str, Any]], size: int) -> Iterator[list[int]]:
    for start in range(0, len(items), size):
        yield list(range(start, min(start + size, len(items))))


def _bad_indexes(error: MiroBadRequest, size: int) -> dict[int, list[Any]]:
    """The elements a bulk error names (`context.fields[].field` = "<index>.<param>")."""
    body = error.miro_body if isinstance(error.miro_body, dict) else {}
    fields = (body.get("context") or {}).get("fields") or []
    named: dict[int, list[Any]] = {}
    for field in fields:
        head = str(field.get("field", "")).split(".", 1)[0]
        if head.isdigit() and int(head) < size:
            named.setdefault(int(head), []).append(field)
    return named


def error_body(error: BridgeError) -> tuple[int, dict[str, Any]]:
    """The status and Miro-style JSON error body of an item that failed with `error`."""
    if isinstance(error, MiroError) and isinstance(error.miro_body, dict):
        return error.miro_status, error.miro_body
    status = error.miro_status if isinstance(error, MiroError) else error.status
    return status, {"type": "error", "status": status, "code": error.code, "message": error.message}


# The actor --------------------------------------------------------------------------------


class BoardCache(Actor):
    """Owns board snapshots; see the module docstring."""

    name: ClassVar[str] = "board_cache"

    def __init__(
        self,
        settings: Settings,
        store: ActorRef[Store],
        miro: ActorRef[MiroClient],
        views: BoardViews,
        metrics: Metrics,
        *,
        clock: Callable[[], float] = time.time,
        wait: Callable[[float], Awaitable[None]] = trio.sleep,
        follow_others: bool = False,
    ) -> None:
        self._settings = settings
        self._wait = wait  # between periodic syncs
        self._store = store
        self._miro = miro
        self._views = views
        self._metrics = metrics
        self._clock = clock
        self._follow_others = follow_others
        self._boards: dict[str, Snapshot] = {}
        self._last_used: dict[str, float] = {}  # by reads and writes, not by syncs
        self._fetching: dict[str, list[tuple[Envelope, str]]] = {}

    async def serve(self, inbox: Inbox) -> None:
        """Run the periodic sync, and follow other instances' changes, beside the mailbox."""
        if self._settings.sync_interval_seconds > 0:
            self.background.start_soon(self._sync_periodically)
        if self._follow_others:
            self.background.start_soon(self._follow_other_instances)
        await super().serve(inbox)

    async def _follow_other_instances(self) -> None:
        """Drop this instance's copy of every board another instance changed.

        The next read loads the board from the database (not from Miro), with the other
        instance's version. The database tells (PostgreSQL's `NOTIFY board_changed`).
        """
        after = 0
        while True:
            try:
                after, changed = await self._store.call(
                    boards.BoardChanges(after), timeout=math.inf
                )
            except ActorError:  # the store restarts: ask again once it runs
                await trio.sleep(0.5)
                continue
            self._forget(changed)

    def _forget(self, board_ids: Iterable[str]) -> None:
        """Drop boards from memory and from the published view (the database keeps them)."""
        dropped = [board_id for board_id in board_ids if board_id in self._boards]
        for board_id in dropped:
            del self._boards[board_id]
        self._views.forget(dropped, self._clock())
        if dropped:
            log.debug("board.changed_elsewhere", boards=dropped)

    async def handle(self, envelope: Envelope) -> None:
        """Reads start here (single-flight bookkeeping); Miro work runs in tasks."""
        message = cast(BoardCacheMessage, envelope.message)
        try:
            match message:
                case ReadBoard(user_id=user_id, board_id=board_id):
                    await self._read(envelope, user_id, board_id)
                case ReadItem():
                    self.reply_later(envelope, functools.partial(self._read_item, message))
                case CreateItems():
                    self.reply_later(envelope, functools.partial(self._create, message))
                case UpdateItem():
                    self.reply_later(envelope, functools.partial(self._update, message))
                case DeleteItem():
                    self.reply_later(envelope, functools.partial(self._delete, message))
                case SyncBoard():
                    sync = functools.partial(self._sync, message.user_id, message.board_id)
                    self.reply_later(envelope, sync)
                case _:
                    assert_never(message)
        except Exception as error:
            envelope.fail(error)

    # Snapshots ----------------------------------------------------------------------------

    async def _snapshot(self, board_id: str) -> Snapshot | None:
        snapshot = self._boards.get(board_id)
        if snapshot is None:
            snapshot = await self._store.call(boards.LoadBoard(board_id))
            if snapshot is not None and board_id not in self._boards:
                self._last_used.setdefault(board_id, self._clock())
                self._install(snapshot)
        return self._boards.get(board_id)

    def _install(self, snapshot: Snapshot) -> None:
        """Make `snapshot` the board's current one, in memory and in the published view."""
        self._boards[snapshot.board_id] = snapshot
        fresh_until = snapshot.fetched_at + self._settings.cache_ttl_seconds
        self._views.publish(snapshot, fresh_until)

    async def _save(self, write: boards.SaveBoard | boards.SaveChanges) -> None:
        """Store a snapshot or its change; a database that cannot write only costs the copy.

        The snapshot in memory is served either way, and the next sync stores it whole.
        """
        try:
            await self._store.call(write)
        except StoreUnavailable as error:
            log.warning("board.not_saved", error=error.message)

    def _grant(self, user_id: str, board_id: str) -> None:
        self._views.grant(user_id, board_id, self._clock() + ACCESS_TTL)

    async def _call(
        self,
        user_id: str,
        endpoint: Endpoint,
        path: Mapping[str, str],
        *,
        params: Mapping[str, str] | None = None,
        body: Any = None,
        items: int = 1,
    ) -> Any:
        call = Call(user_id, endpoint, path, params=params, json=body, items=items)
        reply = await self._miro.call(call, timeout=math.inf)
        return reply.body

    # Reads --------------------------------------------------------------------------------

    async def _read(self, envelope: Envelope, user_id: str, board_id: str) -> None:
        now = self._clock()
        self._last_used[board_id] = now
        snapshot = await self._snapshot(board_id)
        fresh = (
            snapshot is not None and now - snapshot.fetched_at < self._settings.cache_ttl_seconds
        )
        if fresh:
            assert snapshot is not None
            self._metrics.board_cache_requests.labels("hit").inc()
            if self._views.allowed(user_id, board_id, now):
                envelope.reply(snapshot)
            else:
                self.reply_later(envelope, functools.partial(self._confirmed, user_id, board_id))
            return
        self._metrics.board_cache_requests.labels("miss" if snapshot is None else "stale").inc()
        waiting = self._fetching.get(board_id)
        if waiting is not None:
            waiting.append((envelope, user_id))
            return
        self._fetching[board_id] = [(envelope, user_id)]
        self.nursery.start_soon(self._fetch_for_waiters, board_id, user_id)

    async def _confirmed(self, user_id: str, board_id: str) -> Snapshot:
        """The board's snapshot, once Miro confirms the user can read it."""
        await self._confirm_access(user_id, board_id)
        snapshot = await self._snapshot(board_id)
        if snapshot is None:  # removed from the store meanwhile: nothing to serve
            raise NotFound(f"board {board_id} is not cached")
        return snapshot

    async def _confirm_access(self, user_id: str, board_id: str) -> None:
        """Ask Miro whether the user can read the board (a level-1 call); remember a yes."""
        try:
            await self._call(user_id, endpoints.GET_BOARD, {"board_id": board_id})
        except (MiroForbidden, MiroNotFound):
            self._views.revoke(user_id, board_id)
            raise
        self._grant(user_id, board_id)

    async def _fetch_for_waiters(self, board_id: str, user_id: str) -> None:
        """One fetch for every reader waiting on the board; see `_read`."""
        try:
            snapshot = await self._sync(user_id, board_id)
        except Exception as error:
            waiting = self._fetching.pop(board_id, [])
            for envelope, waiter in waiting:
                if waiter == user_id or not isinstance(error, MiroForbidden | MiroNotFound):
                    envelope.fail(error)
                else:  # Miro said no to the fetcher: others may still read it
                    await self._read(envelope, waiter, board_id)
            return
        waiting = self._fetching.pop(board_id, [])
        now = self._clock()
        for envelope, waiter in waiting:
            if self._views.allowed(waiter, board_id, now):
                envelope.reply(snapshot)
            else:
                self.reply_later(envelope, functools.partial(self._confirmed, waiter, board_id))

    async def _sync(self, user_id: str, board_id: str) -> Snapshot:
        """Re-list the board from Miro as the user and install the merged snapshot.

        Writes made through us while the listing is under way are kept (`merge`).
        """
        before = await self._snapshot(board_id)
        board, items, tags = await self._list(user_id, board_id)
        self._grant(user_id, board_id)
        old = await self._snapshot(board_id)
        now = self._clock()
        listed_after = before.version if before is not None else 0
        merged = merge(
            old, board, items, tags, fetched_at=now, user_id=user_id, listed_after=listed_after
        )
        snapshot = prune(merged, now)
        await self._save(boards.SaveBoard(snapshot))
        self._install(snapshot)
        if old is None or snapshot.version != old.version:
            log.info("board.changed", board_id=board_id, version=snapshot.version)
        return snapshot

    async def _list(
        self, user_id: str, board_id: str
    ) -> tuple[Mapping[str, Any], list[Mapping[str, Any]], list[Mapping[str, Any]]]:
        path = {"board_id": board_id}
        board = await self._call(user_id, endpoints.GET_BOARD, path)
        items: list[Mapping[str, Any]] = []
        cursor: str | None = None
        while True:
            params = {"limit": PAGE_LIMIT, **({"cursor": cursor} if cursor else {})}
            page = await self._call(user_id, endpoints.LIST_ITEMS, path, params=params)
            items += page.get("data") or []
            cursor = page.get("cursor")
            if not cursor or not page.get("data"):
                break
        tags: list[Mapping[str, Any]] = []
        while True:
            params = {"limit": PAGE_LIMIT, "offset": str(len(tags))}
            page = await self._call(user_id, endpoints.LIST_TAGS, path, params=params)
            data = page.get("data") or []
            tags += data
            if not data or len(tags) >= int(page.get("total", 0)):
                break
        return board, items, tags

    async def _read_item(self, message: ReadItem) -> Mapping[str, Any]:
        snapshot = await self._snapshot(message.board_id)
        if snapshot is not None and message.item_id in snapshot.items:
            if not self._views.allowed(message.user_id, message.board_id, self._clock()):
                await self._confirm_access(message.user_id, message.board_id)
            return snapshot.items[message.item_id].body
        item: Mapping[str, Any] = await self._call(
            message.user_id,
            endpoints.GET_ITEM,
            {"board_id": message.board_id, "item_id": message.item_id},
        )
        self._grant(message.user_id, message.board_id)
        return item

    def _idle(self, board_id: str, now: float) -> bool:
        return now - self._last_used.get(board_id, 0.0) >= SYNC_IDLE_AFTER

    def _forget_idle(self, now: float) -> None:
        """Drop idle boards from memory (not from SQLite), and expired confirmations."""
        idle = [b for b in self._boards if self._idle(b, now) and b not in self._fetching]
        for board_id in idle:
            del self._boards[board_id]
            self._last_used.pop(board_id, None)
        self._views.forget(idle, now)
        if idle:
            log.info("board.forgotten", boards=len(idle), in_memory=len(self._boards))

    async def _sync_periodically(self) -> None:
        while True:
            await self._wait(self._settings.sync_interval_seconds)
            self._forget_idle(self._clock())
            for snapshot in list(self._boards.values()):
                try:
                    await self._sync(snapshot.sync_user, snapshot.board_id)
                except Exception as error:
                    log.warning("board.sync_failed", board_id=snapshot.board_id, error=str(error))

    # Writes -------------------------------------------------------------------------------

    async def _apply(
        self,
        board_id: str,
        changed: Mapping[str, Mapping[str, Any]],
        removed: Iterable[str] = (),
    ) -> None:
        """Put a write Miro confirmed into the board's snapshot, if the board is cached."""
        self._last_used[board_id] = self._clock()
        snapshot = await self._snapshot(board_id)
        removed = [item_id for item_id in removed if snapshot and item_id in snapshot.items]
        if snapshot is None or (not changed and not removed):
            return
        version = snapshot.version + 1
        updates = {
            item_id: CachedItem(body, str(body.get("modifiedAt", "")), version)
            for item_id, body in changed.items()
        }
        gone = {item_id: Tombstone(version, self._clock()) for item_id in removed}
        items = {k: v for k, v in snapshot.items.items() if k not in updates and k not in gone}
        items.update(updates)
        tombstones = {k: t for k, t in snapshot.tombstones.items() if k not in updates} | gone
        self._install(attrs.evolve(snapshot, items=items, version=version, tombstones=tombstones))
        await self._save(boards.SaveChanges(board_id, version, updates, gone))

    async def _create(self, message: CreateItems) -> list[ItemOutcome]:
        outcomes: list[ItemOutcome | None] = [None] * len(message.items)
        created_any = False
        for chunk in _chunks(message.items, BULK_LIMIT):
            pending = chunk
            while pending:
                bodies = [message.items[i] for i in pending]
                try:
                    answer = await self._call(
                        message.user_id,
                        endpoints.CREATE_ITEMS,
                        {"board_id": message.board_id},
                        body=bodies,
                        items=len(bodies),
                    )
                except MiroBadRequest as error:
                    named = _bad_indexes(error, len(pending))
                    if not named:  # the error names no element: it is about all of them
                        named = {position: [] for position in range(len(pending))}
                    for position, fields in named.items():
                        body = dict(error.miro_body) if isinstance(error.miro_body, dict) else {}
                        if fields:
                            body["context"] = {"fields": fields}
                        outcomes[pending[position]] = ItemOutcome(400, body)
                    pending = [i for p, i in enumerate(pending) if p not in named]
                    continue  # bulk is all-or-nothing: the others were not created, try again
                except BridgeError as error:
                    if not created_any:
                        raise  # nothing was created: the whole request failed
                    status, body = error_body(error)
                    for index in pending:
                        outcomes[index] = ItemOutcome(status, body)
                    break
                created = list(answer.get("data") or [])
                self._grant(message.user_id, message.board_id)
                created_any = True
                for index, item in zip(pending, created, strict=True):
                    outcomes[index] = ItemOutcome(201, item)
                await self._apply(message.board_id, {str(item["id"]): item for item in created})
                pending = []
        assert all(outcome is not None for outcome in outcomes)
        return [outcome for outcome in outcomes if outcome is not None]

    async def _update(self, message: UpdateItem) -> Mapping[str, Any]:
        path = {"board_id": message.board_id, "item_id": message.item_id}
        item: Mapping[str, Any] = await self._call(
            message.user_id, message.endpoint, path, body=message.body
        )
        self._grant(message.user_id, message.board_id)
        await self._apply(message.board_id, {message.item_id: item})
        return item

    async def _delete(self, message: DeleteItem) -> None:
        path = {"board_id": message.board_id, "item_id": message.item_id}
        try:
            await self._call(message.user_id, endpoints.DELETE_ITEM, path)
        except MiroNotFound as error:
            # Gone already, or no such board / no access: only the first is a success.
            await self._confirm_access(message.user_id, message.board_id)
            log.info("board.item_already_absent", item_id=message.item_id, error=error.message)
        await self._apply(message.board_id, {}, removed=[message.item_id])
