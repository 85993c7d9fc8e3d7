"""The users repository: users, their encrypted Miro tokens, and pending OAuth logins.

Tokens go in and come out encrypted (`store.crypto`): no operation ever sees one in clear.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

import attrs

from miro_bridge.records.users import NewTokens, OAuthState, StoredTokens, User
from miro_bridge.store._operation import Operation


@attrs.frozen
class UpsertUser(Operation[bool]):
    """Create or rename a user (an empty `name` keeps the old one); whether it was created."""

    writes: ClassVar[bool] = True
    user_id: str
    name: str
    now: float


@attrs.frozen
class GetUser(Operation[User | None]):
    """The user, if known."""

    user_id: str


@attrs.frozen
class SaveTokens(Operation[bool]):
    """Create or rename the user and store (replace) their tokens; whether it was created."""

    writes: ClassVar[bool] = True
    user_id: str
    name: str
    tokens: NewTokens
    now: float


@attrs.frozen
class GetTokens(Operation[StoredTokens | None]):
    """The user's token row, if any."""

    user_id: str


@attrs.frozen
class MarkDisconnected(Operation[None]):
    """Forget a user's dead tokens, remembering that the user must connect again."""

    writes: ClassVar[bool] = True
    user_id: str
    now: float


@attrs.frozen
class DeleteTokens(Operation[None]):
    """Forget a user's tokens (logout)."""

    writes: ClassVar[bool] = True
    user_id: str


@attrs.frozen
class TokenLock:
    """A user's tokens, held against every other instance's refresh until `UnlockTokens`.

    `tokens` is what was stored when the lock was taken: re-read under the lock, so that a
    refresh another instance made meanwhile is seen and not made again.
    """

    id: str
    user_id: str
    tokens: StoredTokens | None


@attrs.frozen
class LockTokens(Operation[TokenLock]):
    """Take the user's token lock (waiting up to `wait` seconds for another holder).

    One process (SQLite) needs no lock beyond the TokenStore's own single flight: there it
    is only a read. On PostgreSQL it is an advisory lock held until `UnlockTokens`.
    """

    user_id: str
    wait: float


@attrs.frozen
class UnlockTokens(Operation[None]):
    """Release a token lock, storing `save` first (the refreshed pair) or marking the user
    disconnected (`disconnect`: Miro refused the refresh token)."""

    writes: ClassVar[bool] = True
    lock: TokenLock
    save: NewTokens | None
    disconnect: bool
    now: float


@attrs.frozen
class SaveState(Operation[None]):
    """Remember a login's state (and drop expired ones)."""

    writes: ClassVar[bool] = True
    state: str = attrs.field(repr=False)
    stored: OAuthState
    now: float


@attrs.frozen
class TakeState(Operation[OAuthState | None]):
    """Remove and return a login's state (single use), expired or not."""

    writes: ClassVar[bool] = True
    state: str = attrs.field(repr=False)


@attrs.frozen
class Reencrypt(Operation[int]):
    """Pass every stored token through `rotate` (ciphertext in, ciphertext out), all in one
    transaction (all or nothing); the number of users touched."""

    writes: ClassVar[bool] = True
    rotate: Callable[[bytes], bytes]
