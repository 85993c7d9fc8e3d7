"""Debug toggles: request headers with which the client's development builds preview its
error states. Only with `MIRO_DEBUG_TOGGLES=true`; otherwise the headers are ignored.

- `X-Debug-429: N` (1-100): the request that carries it and the sender's following requests,
  N in all, are answered 429 `rate_limited` with `Retry-After: 1`, by the edge, before any
  route. A new `X-Debug-429` starts the count again. The sender is the user the request acts
  for (`X-User-Id`, or the verified ID token's user in id-token mode), else the client's
  address; other senders are unaffected. CORS preflights are answered, not counted.
- `X-Debug-Limits: P` (0-100) on `GET /api/limits`: the caller's `bucket_fill` is P.
- `X-Debug-Auth: expired` on `GET /api/auth/status`: 404, as when the token is dead.

Any other value of these headers is a 400 `bad_request`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from miro_bridge.config import Settings
from miro_bridge.errors import BadRequest, BridgeError
from miro_bridge.http.auth import user_claimed_in
from miro_bridge.http.typing import Scope

#: What a CORS preflight must allow for the toggles to reach us from another origin.
HEADERS = b"X-Debug-429, X-Debug-Limits, X-Debug-Auth"


class ForcedRateLimits:
    """How many more requests of each sender are answered 429 (`X-Debug-429`).

    Development only, and per process: with several workers, each counts on its own.
    """

    def __init__(self) -> None:
        self._left: dict[str, int] = {}

    def __bool__(self) -> bool:
        """Whether any sender has 429s left."""
        return bool(self._left)

    def take(self, sender: str, asked: int | None) -> bool:
        """Whether this request of `sender` is answered 429; `asked`: its `X-Debug-429`."""
        left = asked if asked is not None else self._left.get(sender, 0)
        if left <= 0:
            return False
        if left > 1:
            self._left[sender] = left - 1
        else:
            self._left.pop(sender, None)
        return True


def sender(scope: Scope, headers: Mapping[bytes, bytes], settings: Settings) -> str:
    """Whose requests `X-Debug-429` counts: the user the request acts for, else its address."""
    try:
        user = user_claimed_in(headers, settings)
    except BridgeError:  # no user that verifies: the address stands for the sender
        user = None
    if user is not None:
        return f"user {user}"
    client = scope.get("client")
    return f"address {client[0] if client else '-'}"


def number(value: str | bytes | None, header: str, low: int, high: int) -> int | None:
    """The integer in a toggle header, None when it is absent; `BadRequest` unless it is
    from `low` to `high`."""
    if value is None:
        return None
    text = value.decode("latin-1") if isinstance(value, bytes) else value
    if re.fullmatch(r"[0-9]{1,3}", text.strip()) and low <= int(text) <= high:
        return int(text)
    raise BadRequest(f"{header} must be an integer from {low} to {high}, got {text!r}")


def auth_expired(value: str | None) -> bool:
    """Whether `X-Debug-Auth` asks for a dead token; `BadRequest` for a value it does not know."""
    if value is None:
        return False
    if value.strip().lower() == "expired":
        return True
    raise BadRequest(f"X-Debug-Auth takes only 'expired', got {value!r}")
