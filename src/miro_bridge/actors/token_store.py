"""The TokenStore actor: users, their Miro tokens, and the OAuth login flow.

It is the only code that sees a token in clear: tokens are encrypted before they reach the
Store and decrypted only to be handed to the caller that will use them. Logs name a token by
its fingerprint (`store.crypto.fingerprint`), never by its value.

`GetAccessToken` returns a token valid for at least `REFRESH_MARGIN` more seconds. When the
stored one is not, the first caller starts one refresh and every caller that asks for the same
user meanwhile waits for that same refresh (single flight). The rotated pair is committed
(durably) before anyone is answered: Miro invalidates the old pair as it issues the new one, so
the new refresh token is the only valid one there is.

Network calls (Miro's token endpoints) run in tasks of the actor's nursery, so one slow call
never holds up the mailbox. A refreshed pair that the database cannot store (a full disk) is
kept in memory and stored at the next use: Miro has retired the old pair by then.
"""

from __future__ import annotations

import contextlib
import functools
import secrets
import time
from collections.abc import Callable
from typing import ClassVar, assert_never, cast

import attrs
import httpx
import structlog
import trio

from miro_bridge.actors._runtime import Actor, ActorRef, Envelope, Message
from miro_bridge.actors.store import Store
from miro_bridge.config import Settings
from miro_bridge.errors import BadRequest, Disconnected, NotFound, StoreUnavailable, Unauthorized
from miro_bridge.metrics import Metrics
from miro_bridge.miro import oauth
from miro_bridge.records.console import UserSummary
from miro_bridge.records.users import NewTokens, OAuthState, StoredTokens
from miro_bridge.store import console, users
from miro_bridge.store.crypto import TokenCipher, UndecryptableToken, fingerprint
from miro_bridge.tracing import Tracing

log = structlog.get_logger(__name__)

#: A token handed out is valid for at least this many more seconds.
REFRESH_MARGIN = 120.0
#: How long a login's `state` may wait for its callback.
STATE_TTL = 600.0
#: How long a refresh waits for another instance's refresh of the same user to end.
REFRESH_LOCK_WAIT = 30.0


# Messages -------------------------------------------------------------------------------


@attrs.frozen
class BeginLogin(Message[str, "TokenStore"]):
    """Store a fresh `state` for a login; reply with Miro's authorize URL."""

    user_id: str | None
    return_url: str


@attrs.frozen
class LoginResult:
    """Who logged in, and where to send their browser."""

    user_id: str
    return_url: str


@attrs.frozen
class CompleteLogin(Message[LoginResult, "TokenStore"]):
    """Check `state`, exchange `code` at Miro, store the tokens."""

    code: str
    state: str


@attrs.frozen
class GetAccessToken(Message[str, "TokenStore"]):
    """A usable access token for the user; refreshes first if needed."""

    user_id: str


@attrs.frozen
class ForceRefresh(Message[str, "TokenStore"]):
    """Miro rejected `rejected` (401): reply with a newer token, refreshing if needed."""

    user_id: str
    rejected: str = attrs.field(repr=False)


@attrs.frozen
class TokenStatus:
    """What `/api/auth/status` shows of a user's tokens."""

    user_id: str
    expires_at: float | None
    scopes: tuple[str, ...]


@attrs.frozen
class GetStatus(Message[TokenStatus, "TokenStore"]):
    """The user's token status; `NotFound` when no usable token is stored."""

    user_id: str


@attrs.frozen
class Registration:
    """A user as `/api/users` answers it."""

    user_id: str
    name: str
    expires_at: float | None
    created: bool


@attrs.frozen
class RegisterUser(Message[Registration, "TokenStore"]):
    """Create or rename a user without touching their tokens."""

    user_id: str
    name: str


@attrs.frozen
class ConnectWithToken(Message[Registration, "TokenStore"]):
    """Store a token the client obtained itself, once Miro confirms it is the user's."""

    user_id: str
    name: str
    access_token: str = attrs.field(repr=False)
    refresh_token: str | None = attrs.field(repr=False)
    expires_at: float | None


@attrs.frozen
class Logout(Message[None, "TokenStore"]):
    """Revoke the user's tokens at Miro and forget them here."""

    user_id: str


@attrs.frozen
class ListUsers(Message[list[UserSummary], "TokenStore"]):
    """Every user: connected or not, until when their token works, when it last changed
    (for the operator's console; never a token)."""


TokenStoreMessage = (
    BeginLogin
    | CompleteLogin
    | GetAccessToken
    | ForceRefresh
    | GetStatus
    | RegisterUser
    | ConnectWithToken
    | Logout
    | ListUsers
)


# The actor --------------------------------------------------------------------------------


@attrs.define
class _Tokens:
    """A user's tokens in clear; lives only inside the actor."""

    access: str = attrs.field(repr=False)
    refresh: str | None = attrs.field(repr=False)
    expires_at: float | None
    scopes: tuple[str, ...]


class TokenStore(Actor):
    """Owns users and tokens; see the module docstring."""

    name: ClassVar[str] = "token_store"

    def __init__(
        self,
        settings: Settings,
        store: ActorRef[Store],
        *,
        clock: Callable[[], float] = time.time,
        tracing: Tracing,
        metrics: Metrics | None = None,
    ) -> None:
        self._settings = settings
        self._metrics = metrics
        self._store = store
        self._clock = clock
        self._tracing = tracing
        self._cipher = TokenCipher(settings.encryption_keys)
        self._refreshing: dict[str, list[Envelope]] = {}
        self._unsaved: dict[str, _Tokens] = {}  # refreshed while the database could not write

    async def setup(self) -> None:
        """Open the HTTP client for Miro's OAuth endpoints."""
        self._http = httpx.AsyncClient(
            timeout=self._settings.http_timeout_seconds,
            transport=self._tracing.transport(httpx.AsyncHTTPTransport()),
        )

    async def teardown(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def handle(self, envelope: Envelope) -> None:
        """Dispatch on the message type; failures go back to the caller."""
        message = cast(TokenStoreMessage, envelope.message)
        try:
            match message:
                case GetAccessToken(user_id=user_id):
                    await self._get_access_token(envelope, user_id)
                case ForceRefresh(user_id=user_id, rejected=rejected):
                    await self._get_access_token(envelope, user_id, rejected=rejected)
                case GetStatus(user_id=user_id):
                    envelope.reply(await self._status(user_id))
                case BeginLogin():
                    envelope.reply(await self._begin_login(message))
                case RegisterUser():
                    envelope.reply(await self._register(message))
                case CompleteLogin():
                    self.reply_later(envelope, functools.partial(self._complete_login, message))
                case ConnectWithToken():
                    self.reply_later(envelope, functools.partial(self._connect, message))
                case Logout(user_id=user_id):
                    self.reply_later(envelope, functools.partial(self._logout, user_id))
                case ListUsers():
                    self.reply_later(
                        envelope, functools.partial(self._store.call, console.ListUsers())
                    )
                case _:
                    assert_never(message)
        except Exception as error:
            envelope.fail(error)

    # Reading and writing tokens -------------------------------------------------------

    async def _load(self, user_id: str) -> tuple[_Tokens | None, bool]:
        """The user's tokens in clear (None if none), and whether the user is connected."""
        unsaved = self._unsaved.get(user_id)
        if unsaved is not None:
            with contextlib.suppress(StoreUnavailable):
                await self._save(user_id, "", unsaved)
                del self._unsaved[user_id]
            return unsaved, True
        return self._clear(await self._store.call(users.GetTokens(user_id)))

    def _clear(self, stored: StoredTokens | None) -> tuple[_Tokens | None, bool]:
        """Stored tokens in clear (None if none or dead), and whether the user is connected."""
        if stored is None:
            return None, False
        if not stored.connected or stored.access_token is None:
            return None, stored.connected
        try:
            access = self._cipher.decrypt(stored.access_token)
            refresh = self._cipher.decrypt(stored.refresh_token) if stored.refresh_token else None
        except UndecryptableToken as error:
            log.error("tokens.undecryptable", user_id=stored.user_id, error=str(error))
            return None, False
        return _Tokens(access, refresh, stored.expires_at, stored.scopes), True

    def _encrypted(self, tokens: _Tokens) -> NewTokens:
        access = self._cipher.encrypt(tokens.access)
        refresh = self._cipher.encrypt(tokens.refresh) if tokens.refresh else None
        return NewTokens(access, refresh, tokens.expires_at, tokens.scopes)

    async def _save(self, user_id: str, name: str, tokens: _Tokens) -> bool:
        """Store the user and their tokens in one durable write; True if the user is new."""
        created: bool = await self._store.call(
            users.SaveTokens(user_id, name, self._encrypted(tokens), self._clock())
        )
        log.info(
            "tokens.stored",
            user_id=user_id,
            access=fingerprint(tokens.access),
            expires_at=tokens.expires_at,
        )
        return created

    def _tokens_from(self, grant: oauth.TokenGrant) -> _Tokens:
        expires_at = self._clock() + grant.expires_in if grant.expires_in is not None else None
        return _Tokens(grant.access_token, grant.refresh_token, expires_at, grant.scopes)

    def _usable(self, tokens: _Tokens) -> bool:
        return tokens.expires_at is None or tokens.expires_at - self._clock() >= REFRESH_MARGIN

    # Access tokens and refresh ----------------------------------------------------------

    async def _get_access_token(
        self, envelope: Envelope, user_id: str, *, rejected: str | None = None
    ) -> None:
        """Reply with a usable token; refresh (once for all askers) if there is none.

        `rejected` is a token Miro refused: it is refreshed even if it has not expired, unless
        a newer one is stored already.
        """
        waiting = self._refreshing.get(user_id)
        if waiting is not None:
            waiting.append(envelope)
            return
        tokens, _ = await self._load(user_id)
        if tokens is None:
            raise Disconnected(user_id)
        if tokens.access != rejected and self._usable(tokens):
            envelope.reply(tokens.access)
            return
        if tokens.refresh is None:
            raise Disconnected(user_id)
        self._refreshing[user_id] = [envelope]
        self.nursery.start_soon(self._refresh, user_id, rejected)

    async def _refresh(self, user_id: str, rejected: str | None) -> None:
        """Refresh once for every caller waiting on this user, then answer them all.

        Under the user's token lock (other instances' refreshes wait for it), the tokens are
        read again: if another instance refreshed them meanwhile, they are used as they are,
        so that a rotating refresh token is sent to Miro once.
        """
        outcome: str | BaseException
        try:
            outcome = await self._refresh_locked(user_id, rejected)
        except Exception as error:
            outcome = error
        finally:
            waiting = self._refreshing.pop(user_id, [])
        self._count_refresh(outcome)
        for envelope in waiting:
            if isinstance(outcome, BaseException):
                envelope.fail(outcome)
            else:
                envelope.reply(outcome)

    def _count_refresh(self, outcome: str | BaseException) -> None:
        """`token_refreshes_total`: refreshed (or found refreshed), rejected, or failed."""
        if self._metrics is None:
            return
        if not isinstance(outcome, BaseException):
            label = "refreshed"
        elif isinstance(outcome, Disconnected):
            label = "rejected"
        else:
            label = "failed"
        self._metrics.token_refreshes.labels(label).inc()

    async def _refresh_locked(self, user_id: str, rejected: str | None) -> str:
        # The Store answers within the lock's wait (else StoreUnavailable): the call waits as
        # long and a little more, so that a lock taken is never handed to a caller gone.
        lock = await self._store.call(
            users.LockTokens(user_id, REFRESH_LOCK_WAIT), timeout=REFRESH_LOCK_WAIT + 5.0
        )
        save: NewTokens | None = None
        disconnect = False
        try:
            current = self._unsaved.get(user_id) or self._clear(lock.tokens)[0]
            if current is None or current.refresh is None:
                raise Disconnected(user_id)
            if current.access != rejected and self._usable(current):
                return current.access  # another instance refreshed it meanwhile
            try:
                grant = await oauth.refresh(self._http, self._settings, current.refresh)
            except oauth.TokenRejected:
                disconnect = True
                log.warning("tokens.refresh_rejected", user_id=user_id)
                raise Disconnected(user_id) from None
            if grant.user_id != user_id:
                raise Unauthorized("Miro's refresh answer names another user")
            tokens = self._tokens_from(grant)
            save = self._encrypted(tokens)
            log.info("tokens.refreshed", user_id=user_id, old=fingerprint(current.refresh))
            return tokens.access
        finally:
            with trio.CancelScope(shield=True):
                await self._unlock(lock, save, disconnect)

    async def _unlock(
        self, lock: users.TokenLock, save: NewTokens | None, disconnect: bool
    ) -> None:
        """Store what the refresh decided and release the lock.

        A refreshed pair the database cannot take now (a full disk) is kept in memory and
        stored at the next use: Miro has already retired the old pair.
        """
        try:
            await self._store.call(users.UnlockTokens(lock, save, disconnect, self._clock()))
        except StoreUnavailable as error:
            if save is not None:
                self._unsaved[lock.user_id] = self._decrypted(save)
                log.warning("tokens.not_saved_yet", user_id=lock.user_id, error=error.message)

    def _decrypted(self, tokens: NewTokens) -> _Tokens:
        refresh = self._cipher.decrypt(tokens.refresh_token) if tokens.refresh_token else None
        return _Tokens(
            self._cipher.decrypt(tokens.access_token), refresh, tokens.expires_at, tokens.scopes
        )

    async def _status(self, user_id: str) -> TokenStatus:
        tokens, _ = await self._load(user_id)
        if tokens is None or (not self._usable(tokens) and tokens.refresh is None):
            raise NotFound(f"no usable Miro token is stored for user {user_id}")
        return TokenStatus(user_id, tokens.expires_at, tokens.scopes)

    # Login ------------------------------------------------------------------------------

    async def _begin_login(self, message: BeginLogin) -> str:
        state = secrets.token_urlsafe(32)
        now = self._clock()
        stored = OAuthState(message.user_id, message.return_url, now + STATE_TTL)
        await self._store.call(users.SaveState(state, stored, now))
        return oauth.authorize_url(self._settings, state)

    async def _complete_login(self, message: CompleteLogin) -> LoginResult:
        stored = await self._store.call(users.TakeState(message.state))
        if stored is None:
            raise BadRequest("unknown or already used OAuth state")
        if stored.expires_at <= self._clock():
            raise BadRequest("the login took too long (OAuth state expired); start again")
        grant = await oauth.exchange_code(self._http, self._settings, message.code)
        if stored.user_id is not None and grant.user_id != stored.user_id:
            raise BadRequest(
                f"signed in to Miro as user {grant.user_id}, but the login was for user "
                f"{stored.user_id}"
            )
        await self._save(grant.user_id, "", self._tokens_from(grant))
        return LoginResult(grant.user_id, stored.return_url)

    # Users --------------------------------------------------------------------------------

    async def _register(self, message: RegisterUser) -> Registration:
        now = self._clock()
        created = await self._store.call(users.UpsertUser(message.user_id, message.name, now))
        return await self._registration(message.user_id, created)

    async def _registration(self, user_id: str, created: bool) -> Registration:
        user = await self._store.call(users.GetUser(user_id))
        tokens = await self._store.call(users.GetTokens(user_id))
        return Registration(
            user_id=user_id,
            name=user.name if user else "",
            expires_at=tokens.expires_at if tokens and tokens.connected else None,
            created=created,
        )

    async def _connect(self, message: ConnectWithToken) -> Registration:
        try:
            context = await oauth.token_context(self._http, self._settings, message.access_token)
        except oauth.TokenRejected:
            raise Unauthorized("Miro does not recognise this access token") from None
        if context.user_id != message.user_id:
            raise Unauthorized("the access token belongs to another Miro user")
        tokens = _Tokens(
            message.access_token, message.refresh_token, message.expires_at, context.scopes
        )
        created = await self._save(message.user_id, message.name or context.user_name, tokens)
        return await self._registration(message.user_id, created)

    async def _logout(self, user_id: str) -> None:
        tokens, _ = await self._load(user_id)
        if tokens is not None:
            await oauth.revoke(self._http, self._settings, tokens.access)
            log.info("tokens.revoked", user_id=user_id, access=fingerprint(tokens.access))
        await self._store.call(users.DeleteTokens(user_id))
