"""What every repository operation is: a message to the Store actor, data only.

A repository (`store.users`, `store.jobs`, ...) is a set of named operations, each a frozen
attrs class whose fields are its arguments and whose `Operation[R]` type is its result:
`await store.call(jobs.Claim(...))` is the repository's method `Claim`, typed, and addressed
to the Store actor only. Each backend implements every operation in its own module
(`store.sqlite`, `store.postgres`), registered by the operation's type; no SQL and no
connection object ever leaves `store/`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from miro_bridge.actors._runtime import Message

if TYPE_CHECKING:
    from miro_bridge.actors.store import Store  # noqa: F401 -- Operation's base names it

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])


class Operation(Message[R, "Store"]):
    """A repository operation whose result is an `R`.

    `writes`: it changes the database (the SQLite backend commits writes in groups);
    `durable`: its commit must survive power loss (cache writes need not);
    `waits`: a long poll, which may wait for as long as nothing happens: the Store runs it
    beside its mailbox and cancels it when it stops.
    """

    writes: ClassVar[bool] = False
    durable: ClassVar[bool] = True
    waits: ClassVar[bool] = False


class Registry:
    """A backend's implementations, by operation type: `registry[type(op)](connection, op)`."""

    def __init__(self) -> None:
        self._implementations: dict[type[Operation[Any]], Callable[..., Any]] = {}

    def implements(self, kind: type[Operation[Any]]) -> Callable[[F], F]:
        """Register the decorated function as this backend's implementation of `kind`."""

        def register(function: F) -> F:
            if kind in self._implementations:
                raise ValueError(f"{kind.__name__} is implemented twice")
            self._implementations[kind] = function
            return function

        return register

    def __getitem__(self, kind: type[Operation[Any]]) -> Callable[..., Any]:
        try:
            return self._implementations[kind]
        except KeyError:
            raise TypeError(f"no implementation of {kind.__name__} in this backend") from None

    def kinds(self) -> frozenset[type[Operation[Any]]]:
        """Every operation this backend implements."""
        return frozenset(self._implementations)
