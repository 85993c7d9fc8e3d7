"""The edge: what every HTTP request goes through before and after the Quart app.

A plain ASGI middleware, so it sees every response, including the ones Quart builds for
errors, and answers some requests without reaching Quart at all:

- `X-Request-ID`: the caller's when it is 1-128 chars of `[A-Za-z0-9._-]`, else a new one;
  bound to the logs and to actor messages, echoed on every response.
- Tracing (when on): a server span per request, continuing the caller's W3C `traceparent`,
  named `{method} {route template}` once the route is known, with the request id.
- Proxies: `X-Forwarded-Proto`/`-For`/`-Host` are believed only from a peer in
  `MIRO_TRUSTED_PROXIES` (the scheme and client address then come from them), removed from
  the request otherwise (`_proxies.py`). First of all, so that everything after sees the result.
- `MIRO_FORCE_HTTPS`: a request whose scheme is not https gets a 308 to the same path on the
  public origin's host (`MIRO_PUBLIC_URL`, never the `Host` header, which anyone can set);
  HTTPS responses carry HSTS.
- CORS: only for origins in `MIRO_CORS_ORIGINS`; preflights are answered here.
- Debug toggles (`MIRO_DEBUG_TOGGLES=true` only): `X-Debug-429` makes the sender's requests
  429s here (`debug.py`).
- Bodies: see "Connections" below.
- Metrics and the access log (with the client's address): duration by route template,
  requests in flight. Successful
  probes (`/health`, `/health/ready`, `/metrics`) are logged at debug level only: they come
  every few seconds and are counted in the metrics anyway.
- Mounts: a path under a mounted prefix goes to that app (ASGI `root_path` semantics), after
  the request id, metrics and body, before anything else (the sandbox Miro of `serve --sandbox`).
- Fast routes: `GET` of a path in `fast_routes` is answered here with the bytes it returns,
  skipping Quart (about a third of the cost of a request). Only for answers that need no
  request parsing; the same route is declared in Quart too, for the OpenAPI document and the
  other methods. A hot `GET` (no body, and nothing on that the request could need: tracing,
  `MIRO_FORCE_HTTPS`, debug toggles) takes a shorter way still, straight after the request
  id: it gets the same answer, headers, metrics and access log line for less work.
  `fast_posts` do the same for a `POST` whose whole work the edge can do (`POST /api/logs`,
  `POST /api/batch`): a request they do not take goes to the route, which refuses it.
- Aborted streams: a streamed response whose source broke after its head was sent
  (`StreamAborted`, from the legacy proxy) ends here, so that Hypercorn drops the connection
  and the client sees a truncated response, not a complete-looking one. The cause is logged
  where it happened.

Connections: every answer leaves a kept-alive connection usable or closes it, never hanging.

- A request body (`Content-Length` > 0, or any `Transfer-Encoding`) is read whole here before
  anything answers, counted against `MIRO_MAX_BODY_BYTES` as it arrives, and handed to the
  app through a `receive` that replays it (then the real one, so `http.disconnect` still
  arrives). An answer given before the body was read (a 400 for a missing `X-User-Id`, a 405,
  a GET with a body) would leave the rest of it unread, and Hypercorn then closes the
  connection at once (the client, still writing, sees a broken pipe), or, after a Quart
  route, leaves it hanging (next point). Waiting for the body is bounded
  (`BODY_TIMEOUT_SECONDS`, as Quart's `BODY_TIMEOUT`): a 408 with `Connection: close` after it.
- The final `http.response.body` goes to Hypercorn shielded from cancellation. Quart-Trio
  cancels the request's tasks when `http.disconnect` arrives, and Hypercorn sends that
  message from inside the final `send`, before it recycles the connection for the next
  request (or closes it, or restarts its idle timer): a cancellation landing there leaves
  the connection hanging, or makes a SIGTERM wait out Hypercorn's graceful timeout.
- A body over the limit (declared, or counted) is refused with 413 and `Connection: close`,
  closing after a lingering read, as nginx's `lingering_close`: the whole 413 is sent, the
  rest of the body is read and discarded for up to `LINGER_SECONDS` (until it ends or the
  client goes away), and only then does the response end, upon which Hypercorn closes the
  connection. Closing with unread data makes the kernel reset the connection, and a client
  that writes its whole body before reading (urllib, Node's fetch) then sees a broken pipe
  instead of the 413.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import re
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from urllib.parse import urlsplit

import attrs
import structlog
import trio
from opentelemetry import trace
from prometheus_client import Histogram

from miro_bridge.config import Settings
from miro_bridge.context import request_id_var
from miro_bridge.errors import BridgeError, StreamAborted
from miro_bridge.http import debug
from miro_bridge.http._proxies import TrustedProxies
from miro_bridge.http.errors import bridge_error_answer, error_body
from miro_bridge.http.typing import ROUTE_KEY, ASGIApp, Message, Receive, Scope, Send
from miro_bridge.metrics import Metrics
from miro_bridge.tracing import REQUEST_ID, Tracing, extract

log = structlog.get_logger("miro_bridge.http")

_REQUEST_ID = re.compile(rb"[A-Za-z0-9._-]{1,128}")
_HSTS = (b"strict-transport-security", b"max-age=63072000; includeSubDomains")
_ALLOWED_HEADERS = (
    b"Content-Type, X-User-Id, Idempotency-Key, Authorization, X-Request-ID, traceparent, "
    b"tracestate"
)
_ALLOWED_METHODS = b"GET, POST, PUT, PATCH, DELETE, OPTIONS"
_EXPOSED_HEADERS = b"X-Request-ID, Retry-After"
_UNMATCHED = "unmatched"
_PROBES = frozenset({"/health", "/health/ready", "/metrics"})
_JSON_HEADERS = [(b"content-type", b"application/json")]
_CLOSE = (b"connection", b"close")

#: Set in the scope when the request goes on to an app (Quart, a mount), whose final body is
#: then sent shielded; what the edge answers itself runs in no task that Quart cancels.
_APP_KEY = "miro_bridge.app"
#: How many label sets of the duration histogram the edge keeps at hand.
_REMEMBERED_LABELS = 1024
#: Request ids the edge makes: random, not secret (they are echoed and logged), so not
#: from the operating system's CSPRNG, which costs a system call per request.
_ids = random.Random()  # noqa: S311 - see above
os.register_at_fork(after_in_child=_ids.seed)  # a forked process makes ids of its own


def _new_request_id() -> str:
    return f"{_ids.getrandbits(128):032x}"


#: How long the edge waits for a request's body (Quart's `BODY_TIMEOUT`), then 408.
BODY_TIMEOUT_SECONDS = 60.0
#: How long the rest of a refused body is read and discarded before the connection closes.
LINGER_SECONDS = 2.0


def _any_query(query: bytes) -> bool:
    del query
    return True


@attrs.frozen
class FastRoute:
    """A `GET` the edge answers without Quart when it can.

    `path` is exact, or a prefix when it ends with `/`; with a prefix, `suffix` (if any) is
    what the path must end with too (a trailing slash allowed). `template` is its metrics
    label; `query` says which query strings the answer does not depend on (others go to the
    full route); `answer(path, headers)` returns the JSON body of a 200, or None to let the
    full route (and its checks and errors) answer instead.
    """

    path: str
    template: str
    answer: Callable[[str, Mapping[bytes, bytes]], bytes | None]
    suffix: str = ""
    query: Callable[[bytes], bool] = _any_query

    def matches(self, path: str) -> bool:
        """Whether a path under this route's prefix is this route's."""
        return not self.suffix or path.removesuffix("/").endswith(self.suffix)


@attrs.frozen
class FastPost:
    """A `POST` the edge answers without Quart when it can.

    `path` is exact (a trailing slash allowed); `template` is its metrics label.
    `answer(scope, headers, body)` does the work and returns the status, body and content
    type of the answer (those the route gives), or None, before doing anything, to let the
    full route answer instead (it refuses what is wrong with the request, with the
    contract's errors). A `BridgeError` it raises after deciding to answer is answered here
    with the contract's error body, as the route's error handler would.
    """

    path: str
    template: str
    answer: Callable[
        [Scope, Mapping[bytes, bytes], bytes], Awaitable[tuple[int, bytes, bytes] | None]
    ]


class Edge:
    """Wraps the Quart app with the edge behaviour of the contract; see the module docstring.

    `body_timeout` bounds the wait for a request's body (shorter in tests).
    """

    def __init__(
        self,
        app: ASGIApp,
        settings: Settings,
        metrics: Metrics,
        fast_routes: Iterable[FastRoute] = (),
        fast_posts: Iterable[FastPost] = (),
        mounts: Mapping[str, ASGIApp] | None = None,
        tracing: Tracing | None = None,
        body_timeout: float = BODY_TIMEOUT_SECONDS,
    ) -> None:
        self.app = app
        self._body_timeout = body_timeout
        self._tracer = tracing.tracer if tracing is not None and tracing.enabled else None
        routes = list(fast_routes)
        self._fast_exact = {r.path: r for r in routes if not r.path.endswith("/")}
        self._fast_prefixes = [r for r in routes if r.path.endswith("/")]
        self._fast_posts = {r.path: r for r in fast_posts}
        self._durations: dict[tuple[str, str, int], Histogram] = {}
        self._access_log: structlog.typing.FilteringBoundLogger | None = None
        self._mounts = dict(mounts or {})
        self._metrics = metrics
        self._force_https = settings.force_https
        self._public_host = urlsplit(settings.public_origin).netloc  # never the Host header
        self._proxies = TrustedProxies(settings.trusted_proxies)
        self._max_body = settings.max_body_bytes
        self._origins = frozenset(origin.encode() for origin in settings.cors_origins)
        self._settings = settings
        self._forced_429s = debug.ForcedRateLimits() if settings.debug_toggles else None
        self._allowed_headers = (
            _ALLOWED_HEADERS + b", " + debug.HEADERS if settings.debug_toggles else _ALLOWED_HEADERS
        )
        # A hot GET skips everything a fast route's answer cannot need (module docstring).
        self._hot_gets = (
            bool(routes)
            and self._tracer is None
            and not self._force_https
            and self._forced_429s is None
            and not any(r.path.startswith(prefix) for r in routes for prefix in self._mounts)
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The ASGI entry point."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        self._proxies.apply(scope)
        headers: dict[bytes, bytes] = dict(scope["headers"])  # names arrive lower-case
        given = headers.get(b"x-request-id")
        request_id = (
            given.decode()
            if given is not None and _REQUEST_ID.fullmatch(given)
            else _new_request_id()
        )
        extra = [(b"x-request-id", request_id.encode())]
        if (
            self._hot_gets
            and scope["method"] == "GET"
            and await self._hot_get(scope, headers, request_id, extra, send, started)
        ):
            return
        status = 500
        scope[ROUTE_KEY] = _UNMATCHED

        started_response = False

        async def send_with_headers(message: Message) -> None:
            nonlocal status, started_response
            if message["type"] == "http.response.start":
                status = message["status"]
                started_response = True
                message["headers"] = [*message.get("headers", ()), *extra]
            if (
                message["type"] == "http.response.body"
                and not message.get("more_body", False)
                and scope.get(_APP_KEY, False)
            ):
                await _finish(send, message)  # an app's final body: shielded (docstring)
            else:
                await send(message)

        token = request_id_var.set(request_id)
        self._metrics.requests_in_flight += 1
        with self._server_span(scope, headers, request_id) as span:
            try:
                await self._handle(scope, receive, send_with_headers, headers, extra)
            except* StreamAborted:
                pass  # returning without the end of the body makes Hypercorn close the connection
            except* Exception as group:
                # A failure of the edge itself (Quart answers its own): still the error body.
                log.error("http.edge_failed", exc_info=group)
                if started_response:
                    raise
                await _error(send_with_headers, 500, "internal", "internal error", _CLOSE)
            finally:
                self._metrics.requests_in_flight -= 1
                request_id_var.reset(token)
                if span is not None:
                    _finish_server_span(span, scope["method"], scope[ROUTE_KEY], status)
                self._done(scope, request_id, status, started)

    async def _hot_get(
        self,
        scope: Scope,
        headers: dict[bytes, bytes],
        request_id: str,
        extra: list[tuple[bytes, bytes]],
        send: Send,
        started: float,
    ) -> bool:
        """Answer a `GET` from its fast route when nothing else about the request needs the
        edge's attention (no body, no odd path); whether it did. It gets the same answer,
        headers, metrics and access log line as through `_handle`, for less work."""
        path: str = scope["path"]
        fast = self._fast_get(scope)
        if fast is None or "//" in path or _has_body(headers):
            return False
        try:
            answer = fast.answer(path, headers)
        except Exception:  # the full path asks again, logs the failure and answers 500
            return False
        if answer is None:
            return False
        scope[ROUTE_KEY] = fast.template
        self._cors_headers(headers, extra)
        self._metrics.requests_in_flight += 1
        try:
            await _respond(send, 200, answer, *extra)
        finally:
            self._metrics.requests_in_flight -= 1
            self._done(scope, request_id, 200, started)
        return True

    def _fast_get(self, scope: Scope) -> FastRoute | None:
        """The fast route that may answer this `GET` (its path, and its query if any)."""
        path: str = scope["path"]
        fast = self._fast_exact.get(path) or next(
            (r for r in self._fast_prefixes if path.startswith(r.path) and r.matches(path)), None
        )
        query: bytes = scope["query_string"]
        return fast if fast is not None and (not query or fast.query(query)) else None

    def _done(self, scope: Scope, request_id: str, status: int, started: float) -> None:
        """Count a request's duration and write its access log line."""
        elapsed = time.perf_counter() - started
        method, route = scope["method"], scope[ROUTE_KEY]
        self._duration(method, route, status).observe(elapsed)
        access = self._access_log
        if access is None:
            # The logger as configured when this edge's first request ends: one of its own, as
            # the module's `log` keeps the configuration of its first use in the process.
            access = self._access_log = structlog.get_logger("miro_bridge.http").bind()
        if status < 400 and route in _PROBES:
            if not access.is_enabled_for(logging.DEBUG):
                return  # no work for nothing
            write = access.debug
        else:
            write = access.info
        client = scope.get("client")
        write(
            "http.request",
            request_id=request_id,
            client=client[0] if client else None,
            method=method,
            path=scope["path"],
            route=route,
            status=status,
            duration_ms=round(elapsed * 1000, 2),
        )

    def _duration(self, method: str, route: str, status: int) -> Histogram:
        """The request duration histogram of these labels (looked up once, then kept)."""
        key = (method, route, status)
        child = self._durations.get(key)
        if child is None:
            if len(self._durations) >= _REMEMBERED_LABELS:
                self._durations.clear()
            child = self._metrics.http_request_duration.labels(method, route, str(status))
            self._durations[key] = child
        return child

    def _server_span(
        self, scope: Scope, headers: Mapping[bytes, bytes], request_id: str
    ) -> contextlib.AbstractContextManager[trace.Span | None]:
        """The request's server span, current while it is served; none when tracing is off."""
        if self._tracer is None:
            return contextlib.nullcontext()
        carrier = {
            name: headers[name.encode()].decode("latin-1")
            for name in ("traceparent", "tracestate")
            if name.encode() in headers
        }
        return self._tracer.start_as_current_span(
            scope["method"],
            context=extract(carrier),
            kind=trace.SpanKind.SERVER,
            attributes={
                REQUEST_ID: request_id,
                "http.request.method": scope["method"],
                "url.path": scope["path"],
                "url.scheme": scope["scheme"],
            },
        )

    async def _handle(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[bytes, bytes],
        extra: list[tuple[bytes, bytes]],
    ) -> None:
        mounted = self._mounted(scope)
        insecure = allowed = False
        if mounted is None:  # headers first, so that a 413 or 408 carries them too
            insecure = self._https_headers(scope, extra)
            allowed = self._cors_headers(headers, extra)

        body = b""
        if _has_body(headers):
            read = await self._read_body(receive, send, headers)
            if read is None:
                return  # answered (413, 408) or the client went away
            body = read
            receive = _replaying(body, receive)

        if mounted is not None:
            scope[_APP_KEY] = True
            await mounted(scope, receive, send)
            return
        if insecure:
            await _redirect_to_https(scope, self._public_host, send)
            return
        if scope["method"] == "OPTIONS" and b"access-control-request-method" in headers:
            await _preflight(send, allowed, self._allowed_headers)
            return
        if self._forced_429s is not None and await self._debug_429(scope, headers, send):
            return

        path = scope["path"]
        if "//" in path and path.startswith("/api/"):
            await _error(send, 400, "bad_request", "empty path segment (is an id missing?)")
            return

        if scope["method"] == "GET":
            fast = self._fast_get(scope)
            answer = fast.answer(path, headers) if fast is not None else None
            if answer is not None:
                assert fast is not None
                scope[ROUTE_KEY] = fast.template
                await _respond(send, 200, answer)
                return

        elif scope["method"] == "POST" and self._fast_posts:
            post = self._fast_posts.get(path.removesuffix("/") if len(path) > 1 else path)
            if post is not None and await self._fast_post(post, scope, headers, body, send):
                return

        scope[_APP_KEY] = True
        await self.app(scope, receive, send)

    async def _fast_post(
        self,
        post: FastPost,
        scope: Scope,
        headers: Mapping[bytes, bytes],
        body: bytes,
        send: Send,
    ) -> bool:
        """Answer a fast POST if it takes the request; whether it did."""
        if len(headers) != len(scope["headers"]):
            return False  # a repeated header: the route decides which one counts
        try:
            answer = await post.answer(scope, headers, body)
        except BridgeError as error:
            scope[ROUTE_KEY] = post.template
            body, extra = bridge_error_answer(error, request_id_var.get())
            encoded = [(name.lower().encode(), value.encode()) for name, value in extra.items()]
            await _respond(send, error.status, body, *encoded)
            return True
        if answer is None:
            return False
        scope[ROUTE_KEY] = post.template
        status, content, content_type = answer
        length = str(len(content)).encode()
        headers_out = [(b"content-type", content_type), (b"content-length", length)]
        await send({"type": "http.response.start", "status": status, "headers": headers_out})
        await send({"type": "http.response.body", "body": content})
        return True

    async def _debug_429(self, scope: Scope, headers: Mapping[bytes, bytes], send: Send) -> bool:
        """Answer 429 if `X-Debug-429` says so for this sender, 400 for a bad value; whether
        it answered."""
        assert self._forced_429s is not None
        given = headers.get(b"x-debug-429")
        if given is None and not self._forced_429s:
            return False  # nothing asked, nobody counted: no need to know the sender
        try:
            asked = debug.number(given, "X-Debug-429", 1, 100)
        except BridgeError as error:
            await _error(send, error.status, error.code, error.message)
            return True
        if not self._forced_429s.take(debug.sender(scope, headers, self._settings), asked):
            return False
        message = "rate limited (X-Debug-429)"
        await _error(send, 429, "rate_limited", message, (b"retry-after", b"1"))
        return True

    def _mounted(self, scope: Scope) -> ASGIApp | None:
        """The mounted app serving this path (its prefix now the scope's root path), if any."""
        path: str = scope["path"]
        for prefix, mounted in self._mounts.items():
            if path == prefix or path.startswith(f"{prefix}/"):
                scope[ROUTE_KEY] = prefix
                scope["root_path"] = scope.get("root_path", "") + prefix
                return mounted
        return None

    def _https_headers(self, scope: Scope, extra: list[tuple[bytes, bytes]]) -> bool:
        """Add HSTS to an HTTPS answer under `MIRO_FORCE_HTTPS`; whether to redirect instead."""
        if not self._force_https:
            return False
        if scope["scheme"] == "https":
            extra.append(_HSTS)
            return False
        return True

    def _cors_headers(
        self, headers: Mapping[bytes, bytes], extra: list[tuple[bytes, bytes]]
    ) -> bool:
        """Add the CORS headers for an allowed origin; whether the origin is allowed."""
        origin = headers.get(b"origin")
        if origin is None or origin not in self._origins:
            return False
        extra += [
            (b"access-control-allow-origin", origin),
            (b"access-control-allow-credentials", b"true"),
            (b"access-control-expose-headers", _EXPOSED_HEADERS),
            (b"vary", b"Origin"),
        ]
        return True

    async def _read_body(
        self, receive: Receive, send: Send, headers: Mapping[bytes, bytes]
    ) -> bytes | None:
        """The whole request body; None when it was refused (answered here) or never came."""
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self._max_body:
            await _refuse_too_large(receive, send, body_ended=False)
            return None
        chunks: list[bytes] = []
        size = 0
        more = True
        with trio.move_on_after(self._body_timeout):
            while more and size <= self._max_body:
                message = await receive()
                if message["type"] == "http.disconnect":
                    return None
                chunk: bytes = message.get("body", b"")
                chunks.append(chunk)
                size += len(chunk)
                more = message.get("more_body", False)
        # Answered outside the timeout, so that it cannot cut the answer short.
        if size > self._max_body:
            await _refuse_too_large(receive, send, body_ended=not more)
        elif more:
            await _error(
                send, 408, "request_timeout", "the request body did not arrive in time", _CLOSE
            )
        else:
            return b"".join(chunks)
        return None


def _has_body(headers: Mapping[bytes, bytes]) -> bool:
    length = headers.get(b"content-length", b"0")
    return b"transfer-encoding" in headers or not length.isdigit() or int(length) > 0


def _replaying(body: bytes, receive: Receive) -> Receive:
    """A `receive` that gives `body` whole, then what the real `receive` gives."""
    pending = [{"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        return pending.pop() if pending else await receive()

    return replay


async def _finish(send: Send, message: Message) -> None:
    """Send the final body of a response, shielded from cancellation (module docstring)."""
    with trio.CancelScope(shield=True):
        await send(message)


async def _refuse_too_large(receive: Receive, send: Send, *, body_ended: bool) -> None:
    """413 with `Connection: close`, ended after a lingering read (module docstring)."""
    body = error_body("payload_too_large", "request body too large", request_id_var.get())
    await send(_start(413, body, _CLOSE))
    await send({"type": "http.response.body", "body": body, "more_body": True})
    with trio.move_on_after(LINGER_SECONDS):
        while not body_ended:
            message = await receive()
            body_ended = message["type"] == "http.disconnect" or not message.get("more_body", False)
    await send({"type": "http.response.body", "body": b""})


def _finish_server_span(span: trace.Span, method: str, route: str, status: int) -> None:
    if route != _UNMATCHED:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
    span.set_attribute("http.response.status_code", status)
    if status >= 500:
        span.set_status(trace.StatusCode.ERROR)


def _start(status: int, body: bytes, *headers: tuple[bytes, bytes]) -> Message:
    length = (b"content-length", str(len(body)).encode())
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [*_JSON_HEADERS, length, *headers],
    }


async def _respond(send: Send, status: int, body: bytes, *headers: tuple[bytes, bytes]) -> None:
    await send(_start(status, body, *headers))
    await send({"type": "http.response.body", "body": body})


async def _preflight(send: Send, allowed: bool, allowed_headers: bytes) -> None:
    if not allowed:
        await _error(send, 403, "forbidden", "origin not allowed by CORS policy")
        return
    await send(
        {
            "type": "http.response.start",
            "status": 204,
            "headers": [
                (b"access-control-allow-methods", _ALLOWED_METHODS),
                (b"access-control-allow-headers", allowed_headers),
                (b"access-control-max-age", b"600"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _redirect_to_https(scope: Scope, host: str, send: Send) -> None:
    path = scope.get("raw_path") or scope["path"].encode()
    target = f"https://{host}{path.decode('latin-1')}"
    if scope["query_string"]:
        target += "?" + scope["query_string"].decode("latin-1")
    await send(
        {
            "type": "http.response.start",
            "status": 308,
            "headers": [(b"location", target.encode("latin-1")), (b"content-length", b"0")],
        }
    )
    await send({"type": "http.response.body", "body": b""})


async def _error(
    send: Send, status: int, code: str, message: str, *headers: tuple[bytes, bytes]
) -> None:
    await _respond(send, status, error_body(code, message, request_id_var.get()), *headers)
