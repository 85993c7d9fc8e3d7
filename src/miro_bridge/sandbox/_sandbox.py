"""The sandbox: Miro's state, credit budgets, faults and request log, and the app serving them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from miro_bridge.sandbox import _render
from miro_bridge.sandbox._app import SandboxApp
from miro_bridge.sandbox._boards import BoardStore
from miro_bridge.sandbox._config import Faults, SandboxConfig
from miro_bridge.sandbox._credits import CreditLedger
from miro_bridge.sandbox._faults import FaultInjector
from miro_bridge.sandbox._log import RequestLog
from miro_bridge.sandbox._oauth import OAuthStore


class Sandbox:
    """An in-memory Miro: OAuth, REST API v2, credits and faults, served by `app`.

    `app` is an ASGI application serving Miro's routes at its root (or under the ASGI
    `root_path` it is mounted at) and the admin routes under `/_admin`. The methods below do
    what the admin routes do, for in-process tests. Its parts (`oauth`, `boards`, `ledger`,
    `log`, `injector`) are attributes for the app and for white-box tests. Everything runs in
    one Trio thread, so no locking is needed.
    """

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.oauth = OAuthStore(self.config)
        self.boards = BoardStore(self.config.clock)
        self.ledger = CreditLedger(
            self.config.credits_per_minute, self.config.clock, self.config.credit_window_seconds
        )
        self.log = RequestLog()
        self.injector = FaultInjector(Faults())
        self.app = SandboxApp(self)

    def create_board(
        self, owner: str, name: str = "Untitled", members: Iterable[str] = ()
    ) -> dict[str, Any]:
        """Create a board of `owner` shared with `members`; answer it as its owner sees it.

        Links in the answer are relative (`/v2/boards/...`): no request tells the base URL.
        """
        board = self.boards.create_board(owner, name, members=members)
        return _render.board("", board, owner)

    def issue_tokens(self, user_id: str) -> dict[str, Any]:
        """Mint a token pair for a user; answer what `POST /v1/oauth/token` answers."""
        return self.oauth.issue(user_id)

    def expire_tokens(self) -> None:
        """Make every access token expired now (refresh tokens keep working)."""
        self.oauth.expire_all()

    def requests(self) -> list[dict[str, Any]]:
        """Every request received on Miro's routes, oldest first.

        Each is `{"method", "path", "user", "status", "credits"}`; `path` is the path below
        the mount point, `user` None where no token named one, `status` None when no answer
        was sent (hung or dropped). Admin routes are not logged.
        """
        return self.log.as_json()

    def set_faults(self, faults: Faults) -> None:
        """Inject these faults from now on; `Faults()` stops injecting any."""
        self.injector = FaultInjector(faults)

    @property
    def faults(self) -> Faults:
        """The faults being injected."""
        return self.injector.faults

    def reset(self) -> None:
        """Forget every board, token, credit window, fault and logged request."""
        self.oauth = OAuthStore(self.config)
        self.boards = BoardStore(self.config.clock)
        self.ledger = CreditLedger(
            self.config.credits_per_minute, self.config.clock, self.config.credit_window_seconds
        )
        self.log = RequestLog()
        self.injector = FaultInjector(Faults())
