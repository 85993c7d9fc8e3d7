"""Every exception miro-bridge raises on purpose.

The hierarchy::

    BridgeError                 status 500, code "internal"; an error with a contract status
    ├── BadRequest              400 bad_request
    ├── Unauthorized            401 unauthorized
    │   └── Disconnected        the user's Miro authorization is gone: connect again
    ├── Forbidden               403 forbidden
    ├── NotFound                404 not_found
    ├── MethodNotAllowed        405 method_not_allowed (the contract names no code for 405)
    ├── Conflict                409 conflict
    ├── PayloadTooLarge         413 payload_too_large
    ├── UnsupportedMediaType    415 bad_request: the body is not of the type the route reads
    ├── ValidationFailed        422 validation_error, with per-field `detail`
    ├── UpstreamError           502 upstream_error: Miro (or the legacy service) failed us
    │   ├── RateLimited         429 rate_limited, with `retry_after` seconds
    │   └── UpstreamTimeout     504 upstream_timeout: the legacy service did not answer in time
    ├── MiroError               Miro refused a request; carries Miro's status and body
    │   ├── MiroBadRequest      also a BadRequest (400)
    │   ├── MiroForbidden       also a Forbidden (403)
    │   ├── MiroNotFound        also a NotFound (404)
    │   ├── MiroConflict        also a Conflict (409)
    │   └── MiroFailed          also an UpstreamError (502): 5xx, or a status we do not map
    └── Unavailable             503 unavailable: try again later
        ├── StoreUnavailable    the database cannot do this now (disk full, I/O error, busy)
        └── ActorError          an actor could not answer
            ├── ActorTimeout    the mailbox stayed full or the reply did not come in time
            ├── ActorCrashed    the actor died while it held the message
            └── ActorStopped    the actor is not running (shut down or given up on)

    ConfigError                 settings missing or invalid; lists every problem at once
    StartupError                the service cannot start as configured (one line, exit status 2)
    ├── DatabaseUnreachable     the database (PostgreSQL) does not answer at start-up
    └── SchemaTooNew            the database was migrated by a newer miro-bridge
    Escalation                  an actor restarted too often: the whole service must stop
    StreamAborted               a streamed response broke after its head was sent

The HTTP layer turns a `BridgeError` into the contract's error body in one place
(`miro_bridge.http.errors`); anything else that escapes a route is a 500 without internals.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar

import attrs


class BridgeError(Exception):
    """An error with a status and code from the HTTP contract."""

    status: ClassVar[int] = 500
    code: ClassVar[str] = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class BadRequest(BridgeError):
    """The request cannot be understood (400)."""

    status = 400
    code = "bad_request"


class Unauthorized(BridgeError):
    """The caller's identity is missing or does not verify (401)."""

    status = 401
    code = "unauthorized"


class Disconnected(Unauthorized):
    """Miro rejected the user's refresh token (or they never connected): log in again."""

    def __init__(self, user_id: str) -> None:
        super().__init__(
            f"Miro authorization for user {user_id} is missing or was revoked; "
            "connect again through /oauth/login"
        )
        self.user_id = user_id


class Forbidden(BridgeError):
    """The caller may not do this (403)."""

    status = 403
    code = "forbidden"


class NotFound(BridgeError):
    """No such thing, or not one the caller may see (404)."""

    status = 404
    code = "not_found"


class MethodNotAllowed(BridgeError):
    """The route exists but not with this method (405)."""

    status = 405
    code = "method_not_allowed"


class Conflict(BridgeError):
    """The request contradicts what is stored (409)."""

    status = 409
    code = "conflict"


class PayloadTooLarge(BridgeError):
    """The body, or a part of it, is over its limit (413)."""

    status = 413
    code = "payload_too_large"


class UnsupportedMediaType(BridgeError):
    """The body's declared type is not one the route reads (415)."""

    status = 415
    code = "bad_request"


@attrs.frozen
class FieldProblem:
    """One field that failed validation: where, what, and the kind of failure."""

    loc: tuple[str | int, ...]
    msg: str
    type: str

    def as_json(self) -> dict[str, Any]:
        """The contract's `detail` item."""
        return {"loc": list(self.loc), "msg": self.msg, "type": self.type}


class ValidationFailed(BridgeError):
    """The body is well-formed but its fields are wrong (422)."""

    status = 422
    code = "validation_error"

    def __init__(self, message: str, detail: Sequence[FieldProblem] = ()) -> None:
        super().__init__(message)
        self.detail = tuple(detail)

    @classmethod
    def at(cls, loc: Sequence[str | int], message: str) -> ValidationFailed:
        """The failure of the one field at `loc`, e.g. `("body", "operations", 3, "boardId")`."""
        return cls.of([FieldProblem(tuple(loc), message, "value_error")])

    @classmethod
    def of(cls, problems: Sequence[FieldProblem]) -> ValidationFailed:
        """The failure of these fields, with a message naming each."""
        message = "; ".join(f"{'.'.join(map(str, p.loc))}: {p.msg}" for p in problems)
        return cls(message, problems)

    def within(self, prefix: Sequence[str | int]) -> ValidationFailed:
        """The same failure, its fields placed under `prefix` (a part of a larger body)."""
        return ValidationFailed.of(
            [FieldProblem((*prefix, *p.loc), p.msg, p.type) for p in self.detail]
        )


class UpstreamError(BridgeError):
    """Miro (or the legacy upstream) failed or answered something unusable (502)."""

    status = 502
    code = "upstream_error"


class RateLimited(UpstreamError):
    """A rate limit was hit; try again after `retry_after` seconds (429)."""

    status = 429
    code = "rate_limited"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class UpstreamTimeout(UpstreamError):
    """The upstream did not answer within the timeout (504; the contract names no code for it)."""

    status = 504
    code = "upstream_timeout"


class MiroError(BridgeError):
    """Miro answered a request with an error status; `miro_status`, `miro_body` as sent."""

    def __init__(self, message: str, miro_status: int, miro_body: object) -> None:
        super().__init__(message)
        self.miro_status = miro_status
        self.miro_body = miro_body


class MiroBadRequest(MiroError, BadRequest):
    """Miro found the request invalid (400)."""


class MiroForbidden(MiroError, Forbidden):
    """Miro says the user may not do this (403)."""


class MiroNotFound(MiroError, NotFound):
    """Miro has no such board or item, or not one the user may see (404)."""


class MiroConflict(MiroError, Conflict):
    """Miro reports a conflicting change (409)."""


class MiroFailed(MiroError, UpstreamError):
    """Miro failed (5xx) or answered a status the service does not expect (502)."""


def miro_error(miro_status: int, miro_body: object) -> MiroError:
    """The project's error for a Miro error answer."""
    kind: type[MiroError] = {
        400: MiroBadRequest,
        403: MiroForbidden,
        404: MiroNotFound,
        409: MiroConflict,
    }.get(miro_status, MiroFailed)
    message = miro_body.get("message") if isinstance(miro_body, dict) else None
    return kind(f"Miro answered {miro_status}: {message or 'no message'}", miro_status, miro_body)


class Unavailable(BridgeError):
    """The service cannot answer now; the same request may work later (503)."""

    status = 503
    code = "unavailable"


class StoreUnavailable(Unavailable):
    """The database failed for a reason that may pass (disk full, I/O error, locked).

    Nothing of the failed write is stored; the same request may work later.
    """


class ActorError(Unavailable):
    """An actor could not answer a message."""

    def __init__(self, actor: str, message: str) -> None:
        super().__init__(f"{actor}: {message}")
        self.actor = actor


class ActorTimeout(ActorError):
    """The actor's mailbox stayed full, or its reply did not come, within the timeout."""


class ActorCrashed(ActorError):
    """The actor died while it held the message; it is being restarted."""


class ActorStopped(ActorError):
    """The actor is not running: the service is shutting down or gave up on it."""


class ConfigError(Exception):
    """Settings are missing or invalid; `problems` names each one."""

    def __init__(self, problems: Sequence[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("invalid configuration:\n" + "\n".join(f"  - {p}" for p in problems))


class StartupError(Exception):
    """The service cannot start as configured; never retried, said in one line (exit 2)."""


class DatabaseUnreachable(StartupError):
    """The database cannot be reached at start-up (PostgreSQL down, wrong host or port).

    Its message names the server (never a password) and libpq's reason.
    """


class SchemaTooNew(StartupError):
    """The database was migrated by a newer version of miro-bridge than this one."""


class Escalation(Exception):
    """An actor crashed more often than its supervisor allows: the service must stop."""

    def __init__(self, actor: str, restarts: int, period: float) -> None:
        super().__init__(
            f"actor {actor!r} crashed {restarts} times within {period:g}s; stopping the service"
        )
        self.actor = actor


class StreamAborted(Exception):
    """The source of a streamed response failed after its status and headers were sent.

    No error response can follow a sent head: the HTTP edge drops the connection instead, so
    that the client sees a truncated response rather than a complete-looking one.
    """
