"""What the Store actor needs of a database backend (SQLite, PostgreSQL)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Protocol, TypeVar

import outcome

from miro_bridge.store._operation import Operation

R = TypeVar("R")


class Backend(Protocol):
    """A database the Store actor owns: opened once per run of the actor, closed at its end.

    Failures that may pass (a full disk, a lost connection) are raised as `StoreUnavailable`;
    any other exception is the operation's own (a bug, a `Conflict` it decided on).
    """

    name: ClassVar[str]
    """`sqlite` or `postgresql`, as `/health/ready` says."""
    shared: ClassVar[bool]
    """Whether several instances may use the database at once (PostgreSQL)."""
    groups_writes: ClassVar[bool]
    """Whether writes should be committed in groups: the Store actor then hands every write
    to `run_group` from one committer task (never two groups at once: the writes that queue
    while one commits form the next), and runs reads (`run`) and `ping`/`probe_write` in
    tasks of their own, while a group may be committing. Otherwise each operation goes to
    `run` in a task of its own."""

    async def open(self) -> None:
        """Connect, and apply the migrations the database has not seen."""

    async def close(self) -> None:
        """Disconnect; runs however the actor ended."""

    def observe_commits(self, observer: Callable[[int], None]) -> None:
        """Call `observer` with the number of writes of each transaction that `run` commits
        (PostgreSQL groups enqueues there); a backend that `groups_writes` commits none in
        `run`, and the Store counts its groups itself."""

    async def run(self, operation: Operation[R]) -> R:
        """Carry out one operation, a write in a transaction of its own; may be called while
        other operations and a group run."""

    async def run_group(self, writes: Sequence[Operation[Any]]) -> list[outcome.Outcome[Any]]:
        """Commit `writes` together, each failing alone; their outcomes, in order."""

    async def ping(self) -> None:
        """Return once the database has answered a trivial query."""

    async def probe_write(self) -> None:
        """Return once a small write that needs room (new pages) has committed."""
