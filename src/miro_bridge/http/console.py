"""The operator's console: server-rendered pages under `/_console` (no JavaScript at all).

Off (404, as any unknown path) unless `MIRO_CONSOLE_TOKEN` is set. Then:

- `GET /_console/login` shows a form taking the operator's name (for the audit log) and the
  token. A right token sets the session cookie; a wrong one is a 401 and a log line
  (`console.login_refused`, with the address), and an address with `MAX_FAILURES` wrong
  tokens in `FAILURE_WINDOW_SECONDS` gets 429 until the oldest of them is that old.
- The session cookie is an itsdangerous timed signature (HMAC-SHA1 over a key derived from the
  console token: changing the token ends every session) of the operator's name and the
  session's CSRF token; `HttpOnly`, `SameSite=Strict`, `Secure` when the request came over
  HTTPS, and refused after `SESSION_SECONDS` (by the service's clock). Nothing else gets in:
  not `X-User-Id`, not a Miro ID token.
- Every form carries the CSRF token; a POST without it (or with another) is 403.
- Every answer is `Cache-Control: no-store`, may not be framed, and runs no script (CSP).

What the pages show comes from the actors that own it (the supervisor's statistics, the
Store's backend, the JobQueue's jobs and dead letters, the TokenStore's users, the
MiroClient's budgets) and the service's own metrics. No page ever shows a token: users are
listed with whether they are connected and until when, never with what.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any, ParamSpec, TypeVar

import attrs
import structlog
from itsdangerous import BadSignature, SignatureExpired, TimestampSigner, URLSafeTimedSerializer
from quart import Blueprint, Quart, Response, render_template, request
from quart_schema import hide

from miro_bridge.actors.job_queue import (
    CountQueue,
    DiscardDeadLetter,
    GetJobDetail,
    ListAudit,
    ListDeadLetters,
    ListJobs,
    RetryDeadLetter,
)
from miro_bridge.actors.miro_client import GetBudgets
from miro_bridge.actors.store import GetStatistics
from miro_bridge.actors.system import ActorSystem
from miro_bridge.actors.token_store import ListUsers
from miro_bridge.config import Settings
from miro_bridge.errors import NotFound
from miro_bridge.records.console import STATUSES, JobFilter
from miro_bridge.records.credits import BudgetView

log = structlog.get_logger(__name__)

PREFIX = "/_console"
COOKIE = "miro_console"
#: How long a session lasts after login.
SESSION_SECONDS = 8 * 3600
#: Wrong tokens an address may send in `FAILURE_WINDOW_SECONDS` before it gets 429s.
MAX_FAILURES = 5
FAILURE_WINDOW_SECONDS = 900.0
#: Addresses whose failures are remembered (the oldest are forgotten first).
MAX_ADDRESSES = 10_000
_SALT = "miro-bridge.console.session"
_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; img-src 'self' data:; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
}

P = ParamSpec("P")
R = TypeVar("R")


@attrs.frozen
class Session:
    """What the signed cookie holds: the operator once logged in, and the CSRF token."""

    csrf: str
    operator: str | None = None


class Sessions:
    """Signs and reads session cookies, by the service's clock (a test's own)."""

    def __init__(self, token: str, clock: Callable[[], float]) -> None:
        class _ClockSigner(TimestampSigner):
            def get_timestamp(self) -> int:
                return int(clock())

        # A key of its own for the cookies, derived from the token: never the token itself.
        key = hmac.new(token.encode(), b"miro-bridge console session key", hashlib.sha256)
        self._serializer = URLSafeTimedSerializer(key.hexdigest(), salt=_SALT, signer=_ClockSigner)

    def dump(self, session: Session) -> str:
        """The cookie's value for `session`, signed now."""
        return str(self._serializer.dumps({"csrf": session.csrf, "operator": session.operator}))

    def load(self, value: str | None) -> Session | None:
        """The session a cookie holds, if its signature holds and it has not expired."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=SESSION_SECONDS)
        except SignatureExpired:
            log.info("console.session_expired")
            return None
        except BadSignature:
            log.warning("console.session_forged", client=_address())
            return None
        if not isinstance(data, dict) or not isinstance(data.get("csrf"), str):
            return None
        operator = data.get("operator")
        return Session(data["csrf"], operator if isinstance(operator, str) else None)


class LoginFailures:
    """Wrong tokens per address in the last `FAILURE_WINDOW_SECONDS` (kept per process)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._failures: dict[str, deque[float]] = {}

    def _recent(self, address: str) -> deque[float]:
        times = self._failures.get(address, deque())
        while times and times[0] <= self._clock() - FAILURE_WINDOW_SECONDS:
            times.popleft()
        return times

    def retry_after(self, address: str) -> int | None:
        """Seconds until `address` may try again, or None if it may now."""
        times = self._recent(address)
        if len(times) < MAX_FAILURES:
            return None
        return max(1, math.ceil(times[0] + FAILURE_WINDOW_SECONDS - self._clock()))

    def record(self, address: str) -> None:
        """One more wrong token from `address`."""
        times = self._recent(address)
        times.append(self._clock())
        self._failures.pop(address, None)
        self._failures[address] = times  # the most recently failing address last
        while len(self._failures) > MAX_ADDRESSES:
            del self._failures[next(iter(self._failures))]


def _address() -> str:
    client = request.scope.get("client")
    return str(client[0]) if client else "unknown"


def _when(moment: float | None) -> str:
    if moment is None:
        return "-"
    return datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _budget_fill(budget: BudgetView, now: float) -> int:
    """The percentage of the budget left now (a window that has ended counts as full)."""
    if budget.limit is None or budget.limit <= 0 or now >= budget.reset_at:
        return 100
    return max(0, min(100, math.floor(100 * budget.remaining / budget.limit)))


def _time_filter(value: str) -> float | None:
    """A `datetime-local` value (taken as UTC) as epoch seconds; None if blank or unreadable."""
    value = value.strip()
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


def _chart(per_minute: tuple[int, ...]) -> dict[str, Any]:
    """Bars of an inline SVG chart (600 x 120) of jobs per minute, oldest minute first."""
    width, height = 600, 120
    top = max(per_minute, default=0)
    step = width / max(len(per_minute), 1)
    bars = []
    for index, count in enumerate(per_minute):
        bar = 0.0 if top == 0 else (height - 4) * count / top
        bars.append(
            {
                "x": round(index * step + 1, 1),
                "y": round(height - bar, 1),
                "width": round(step - 2, 1),
                "height": round(bar, 1),
                "count": count,
                "minutes_ago": len(per_minute) - index,
            }
        )
    return {"width": width, "height": height, "bars": bars, "top": top, "total": sum(per_minute)}


def _miro_latency(actors: ActorSystem) -> list[dict[str, Any]]:
    """Miro's mean answer time and call count, by endpoint template, from the metrics."""
    sums: dict[str, float] = {}
    counts: dict[str, float] = {}
    for metric in actors.metrics.registry.collect():
        if metric.name != "miro_api_request_duration_seconds":
            continue
        for sample in metric.samples:
            endpoint = sample.labels.get("endpoint", "")
            if sample.name.endswith("_sum"):
                sums[endpoint] = sample.value
            elif sample.name.endswith("_count"):
                counts[endpoint] = sample.value
    return [
        {"endpoint": endpoint, "calls": int(count), "mean_ms": 1000 * sums[endpoint] / count}
        for endpoint, count in sorted(counts.items())
        if count > 0
    ]


def register_console_routes(app: Quart, settings: Settings, actors: ActorSystem) -> None:
    """Add `/_console` to `app` when `MIRO_CONSOLE_TOKEN` is set; nothing otherwise."""
    token = settings.console_token
    if token is None:
        return
    sessions = Sessions(token, actors.clock)
    failures = LoginFailures(actors.clock)
    console = Blueprint("console", __name__, url_prefix=PREFIX, template_folder="templates")

    def respond(
        html: str, status: int = 200, *, cookie: Session | None = None, clear: bool = False
    ) -> Response:
        """An HTML answer, setting the session cookie to `cookie` or clearing it."""
        response = Response(html, status=status, content_type="text/html; charset=utf-8")
        if cookie is not None:
            response.set_cookie(
                COOKIE,
                sessions.dump(cookie),
                max_age=SESSION_SECONDS,
                path=PREFIX,
                secure=request.scheme == "https",
                httponly=True,
                samesite="Strict",
            )
        if clear:
            response.delete_cookie(COOKIE, path=PREFIX)
        return response

    def same(given: object, expected: str) -> bool:
        """Whether a form's value is `expected`, in constant time (any text, not only ASCII)."""
        return hmac.compare_digest(str(given).encode(), expected.encode())

    def see_other(target: str, *, cookie: Session | None = None, clear: bool = False) -> Response:
        response = respond("", 303, cookie=cookie, clear=clear)
        response.headers["Location"] = target
        return response

    async def login_page(status: int, message: str | None = None) -> Response:
        """The login form, with a fresh pre-login session carrying its CSRF token."""
        fresh = Session(secrets.token_urlsafe(32))
        html = await render_template(
            "console/login.html", csrf=fresh.csrf, message=message, operator=None
        )
        return respond(html, status, cookie=fresh)

    def current() -> Session | None:
        return sessions.load(request.cookies.get(COOKIE))

    def logged_in(
        view: Callable[P, Awaitable[Response]],
    ) -> Callable[P, Awaitable[Response]]:
        """Only for a session an operator logged in to; the login form (401) otherwise."""

        @wraps(view)
        async def guarded(*args: P.args, **kwargs: P.kwargs) -> Response:
            session = current()
            if session is None or session.operator is None:
                return await login_page(401, "Log in to see the console.")
            if request.method == "POST":
                form = await request.form
                if not same(form.get("csrf", ""), session.csrf):
                    log.warning("console.csrf_refused", client=_address(), path=request.path)
                    return respond(await _error_page("403", "Missing or wrong CSRF token."), 403)
            return await view(*args, **kwargs)

        return guarded

    async def render(name: str, **context: Any) -> Response:
        session = current()
        assert session is not None  # only after `logged_in`
        html = await render_template(
            name, csrf=session.csrf, operator=session.operator, when=_when, **context
        )
        return respond(html)

    async def _error_page(title: str, message: str) -> str:
        return await render_template(
            "console/error.html", title=title, message=message, operator=None, csrf=None
        )

    @console.after_request
    async def protect(response: Response) -> Response:
        for name, value in _HEADERS.items():
            response.headers[name] = value
        return response

    @console.get("/login")
    @hide  # operators' HTML pages: not part of the HTTP contract
    async def login_form() -> Response:
        return await login_page(200)

    @console.post("/login")
    @hide  # operators' HTML pages: not part of the HTTP contract
    async def login() -> Response:
        address = _address()
        form = await request.form
        pre = current()
        if pre is None or not same(form.get("csrf", ""), pre.csrf):
            log.warning("console.csrf_refused", client=address, path=request.path)
            return respond(await _error_page("403", "Missing or wrong CSRF token."), 403)
        wait = failures.retry_after(address)
        if wait is not None:
            log.warning("console.login_limited", client=address)
            response = respond(await _error_page("429", "Too many wrong tokens; wait."), 429)
            response.headers["Retry-After"] = str(wait)
            return response
        given = str(form.get("token", ""))
        operator = str(form.get("operator", "")).strip()[:64]
        if not same(given, token):
            failures.record(address)
            log.warning("console.login_refused", client=address)
            return await login_page(401, "Wrong token.")
        if not operator:
            return await login_page(400, "Say who you are: your name goes in the audit log.")
        log.info("console.login", client=address, operator=operator)
        # A new CSRF token with the new session: nothing from before login carries over.
        return see_other(PREFIX, cookie=Session(secrets.token_urlsafe(32), operator))

    @console.post("/logout")
    @hide  # operators' HTML pages: not part of the HTTP contract
    @logged_in
    async def logout() -> Response:
        return see_other(f"{PREFIX}/login", clear=True)

    @console.get("/")
    @hide  # operators' HTML pages: not part of the HTTP contract
    @logged_in
    async def overview() -> Response:
        now = actors.clock()
        queue = await actors.jobs.call(CountQueue())
        store = await actors.store.call(GetStatistics())
        budgets = await actors.miro.call(GetBudgets())
        rate_limited = actors.metrics.registry.get_sample_value("miro_api_rate_limited_total")
        return await render(
            "console/overview.html",
            actors=actors.supervisor.statistics(),
            backend=store.backend,
            queue=queue,
            chart=_chart(queue.per_minute),
            rate_limited=int(rate_limited or 0),
            budgets=[
                {"user": user, "fill": _budget_fill(budget, now), "budget": budget}
                for user, budget in sorted(budgets.items())
            ],
            latency=_miro_latency(actors),
        )

    @console.get("/jobs")
    @hide  # operators' HTML pages: not part of the HTTP contract
    @logged_in
    async def jobs() -> Response:
        args = request.args
        status = args.get("status", "").strip()
        wanted = JobFilter(
            user_id=args.get("user", "").strip() or None,
            board_id=args.get("board", "").strip() or None,
            status=status if status in STATUSES else None,
            since=_time_filter(args.get("since", "")),
            until=_time_filter(args.get("until", "")),
        )
        found = await actors.jobs.call(ListJobs(wanted))
        return await render(
            "console/jobs.html",
            jobs=found,
            statuses=STATUSES,
            args={k: args.get(k, "") for k in ("user", "board", "status", "since", "until")},
        )

    @console.get("/jobs/<job_id>")
    @hide  # operators' HTML pages: not part of the HTTP contract
    @logged_in
    async def job(job_id: str) -> Response:
        try:
            detail = await actors.jobs.call(GetJobDetail(job_id))
        except NotFound:
            return respond(await _error_page("404", "No such job."), 404)
        return await render("console/job.html", job=detail)

    @console.get("/dead-letters")
    @hide  # operators' HTML pages: not part of the HTTP contract
    @logged_in
    async def dead_letters() -> Response:
        letters = await actors.jobs.call(ListDeadLetters())
        audit = await actors.jobs.call(ListAudit())
        return await render("console/dead_letters.html", letters=letters, audit=audit)

    @console.post("/dead-letters/<job_id>/<int:seq>/<action>")
    @hide  # operators' HTML pages: not part of the HTTP contract
    @logged_in
    async def act(job_id: str, seq: int, action: str) -> Response:
        session = current()
        assert session is not None  # only after `logged_in`
        assert session.operator is not None
        kind = {"retry": RetryDeadLetter, "discard": DiscardDeadLetter}.get(action)
        if kind is None:
            return respond(await _error_page("404", "No such action."), 404)
        try:
            await actors.jobs.call(kind(job_id, seq, session.operator, _address()))
        except NotFound:
            gone = "That operation is not a dead letter (any more)."
            return respond(await _error_page("409", gone), 409)
        form = await request.form
        back = str(form.get("next", ""))
        target = back if back.startswith(f"{PREFIX}/") and "//" not in back else PREFIX
        return see_other(target)

    @console.get("/users")
    @hide  # operators' HTML pages: not part of the HTTP contract
    @logged_in
    async def users() -> Response:
        now = actors.clock()
        found = await actors.tokens.call(ListUsers())
        budgets = await actors.miro.call(GetBudgets())
        return await render(
            "console/users.html",
            users=found,
            now=now,
            fills={user: _budget_fill(budget, now) for user, budget in budgets.items()},
        )

    app.register_blueprint(console)
