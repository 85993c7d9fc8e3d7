"""The LegacyProxy actor: forwards requests to the legacy service and streams its answers back.

The HTTP layer turns an `/api/...` request that no route here handles into one `Forward`
message (`miro_bridge.http.legacy_proxy`). This actor owns the pooled httpx client to
`MIRO_LEGACY_BASE_URL` and, for each message, runs a task in its own nursery (the mailbox never
waits on the network) that:

1. sends the request and waits for the response head, at most `MIRO_HTTP_TIMEOUT_SECONDS`: a
   timeout answers the caller with `UpstreamTimeout` (504), any other transport failure
   (connection refused, reset, a malformed answer) with `UpstreamError` (502);
2. answers with a `Forwarded`: the upstream's status, its headers minus hop-by-hop ones and
   those this service sets on every response itself, and a channel of body chunks;
3. pumps the body into that channel as it arrives. The bytes are the raw ones
   (`aiter_raw`, not decoded), so `Content-Encoding` and `Content-Length` stay true. After the
   last chunk comes `END_OF_BODY`; a channel that closes without it means the body broke off
   (the upstream failed, or its next chunk did not come within the timeout), and the HTTP side
   aborts the response instead of ending it as if it were complete.

The channel has no buffer: a chunk changes hands only when the HTTP side takes it, so a slow
client slows the upstream read instead of piling up memory. A client that goes away closes the
receiving end; the pump notices at its next hand-over (so, when the upstream is silent, at its
next chunk or read timeout), stops and closes the upstream response. If the HTTP side never
starts reading (its client left between the answer and the first chunk), the pump gives up
after the timeout.

The requests sent are built here and sent as they are, never through the client's defaults: no
`Accept-Encoding` the caller did not ask for, and no cookie jar (one user's `Set-Cookie` must
never be sent with another user's request). Each forward is counted once in
`legacy_proxy_requests_total` by how it ended, before the caller can see that end.
"""

from __future__ import annotations

import http.cookiejar
import math
from collections.abc import Iterable
from typing import ClassVar, cast

import attrs
import httpx
import structlog
import trio

from miro_bridge.actors._runtime import Actor, Envelope, Message
from miro_bridge.errors import UpstreamError, UpstreamTimeout
from miro_bridge.metrics import Metrics
from miro_bridge.tracing import Tracing

log = structlog.get_logger(__name__)

#: The pump's last item when the body arrived whole (chunks themselves are never empty).
END_OF_BODY = b""

#: Headers about one connection, not the message (RFC 9110 §7.6.1); a proxy never forwards them.
HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    }
)

#: Response headers this service sets itself on every response (the edge, or Hypercorn): the
#: upstream's would be duplicates, and CORS and HSTS are this service's policy, not the legacy's.
_OWN_RESPONSE_HEADERS = frozenset({"x-request-id", "date", "server", "strict-transport-security"})


def end_to_end(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """`headers` without the hop-by-hop ones: `HOP_BY_HOP` and every name `Connection` lists."""
    headers = list(headers)
    listed = {
        token.strip().lower()
        for name, value in headers
        if name.lower() == "connection"
        for token in value.split(",")
    }
    dropped = HOP_BY_HOP | listed
    return [(name, value) for name, value in headers if name.lower() not in dropped]


def _relayed_headers(raw: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[str, str], ...]:
    """The upstream's response headers that go to the client."""
    decoded = [(name.decode("latin-1"), value.decode("latin-1")) for name, value in raw]
    return tuple(
        (name, value)
        for name, value in end_to_end(decoded)
        if name.lower() not in _OWN_RESPONSE_HEADERS
        and not name.lower().startswith("access-control-")
    )


@attrs.frozen
class Forwarded:
    """The upstream's answer: its status, the headers to relay, and its body as it arrives.

    `body` yields the chunks, then `END_OF_BODY`; if it ends without that, the body broke
    off. Closing it tells the pump that the client has gone.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: trio.MemoryReceiveChannel[bytes]


@attrs.frozen
class Forward(Message[Forwarded, "LegacyProxy"]):
    """Send a request to the legacy service.

    `path` is the raw (still percent-encoded) path, checked to stay under `/api/`
    (`http.legacy_proxy.proxied_path`) and appended to the base URL's path; `query` the raw
    query string; `headers` exactly the ones to send (the HTTP layer has filtered them).
    """

    method: str
    path: str
    query: bytes
    headers: tuple[tuple[str, str], ...]
    body: bytes


async def _hand_over(chunks: trio.MemorySendChannel[bytes], chunk: bytes, deadline: float) -> bool:
    """Give `chunk` to the HTTP side; False if it has gone, or did not take it by `deadline`."""
    with trio.move_on_at(deadline):
        try:
            await chunks.send(chunk)
        except trio.BrokenResourceError:
            return False
        return True
    return False


class LegacyProxy(Actor):
    """Owns the HTTP client to the legacy service; see the module docstring."""

    name: ClassVar[str] = "legacy_proxy"

    def __init__(
        self,
        base_url: str,
        timeout: float,
        metrics: Metrics,
        tracing: Tracing | None = None,
    ) -> None:
        self._base = httpx.URL(base_url)
        self._timeout = timeout
        self._metrics = metrics
        self._tracing = tracing

    async def setup(self) -> None:
        """Open the pooled HTTP client, with a cookie jar that keeps nothing."""
        self._http = httpx.AsyncClient(
            cookies=http.cookiejar.CookieJar(
                policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=())
            ),
            transport=self._traced(
                httpx.AsyncHTTPTransport(
                    limits=httpx.Limits(max_connections=100, max_keepalive_connections=20)
                )
            ),
        )

    def _traced(self, transport: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        """With tracing on, a client span per forward, whose `traceparent` the upstream gets."""
        return transport if self._tracing is None else self._tracing.transport(transport)

    async def teardown(self) -> None:
        """Close the HTTP client."""
        await self._http.aclose()

    async def handle(self, envelope: Envelope) -> None:
        """Start each forward in its own task."""
        message = cast(Forward, envelope.message)  # the only message it takes
        self.nursery.start_soon(self._forward, envelope, message)

    def _count(self, outcome: str) -> None:
        self._metrics.legacy_proxy_requests.labels(outcome).inc()

    def _url(self, forward: Forward) -> httpx.URL:
        """The base URL's scheme, host and port, its path followed by the request's path.

        Built from parts, never by joining strings: whatever the path holds, it cannot become
        the URL's user info, host or port.
        """
        path = self._base.raw_path.split(b"?")[0].rstrip(b"/") + forward.path.encode("latin-1")
        url = self._base.copy_with(raw_path=path + (b"?" + forward.query if forward.query else b""))
        if (url.scheme, url.host, url.port) != (
            self._base.scheme,
            self._base.host,
            self._base.port,
        ):
            raise UpstreamError("refusing to forward outside the legacy service")  # unreachable
        return url

    def _request(self, forward: Forward) -> httpx.Request:
        return httpx.Request(
            forward.method,
            self._url(forward),
            headers=[
                (name.encode("latin-1"), value.encode("latin-1")) for name, value in forward.headers
            ],
            content=forward.body,
            # Per operation (connect, each write, each read of the body); the head as a whole
            # is bounded in `_forward`.
            extensions={"timeout": httpx.Timeout(self._timeout).as_dict()},
        )

    async def _forward(self, envelope: Envelope, forward: Forward) -> None:
        """Send the request; answer with the head or the failure; then pump the body."""
        with envelope.context():
            try:
                with trio.fail_after(self._timeout):
                    response = await self._http.send(self._request(forward), stream=True)
            except (trio.TooSlowError, httpx.TimeoutException):
                self._count("timeout")
                envelope.fail(
                    UpstreamTimeout(f"the legacy service did not answer within {self._timeout:g}s")
                )
                return
            except httpx.TransportError as error:
                self._count("upstream_error")
                # The details (its address, the OS error) go to the log, not to the client.
                log.warning("legacy_proxy.unreachable", error=repr(error))
                reason = type(error).__name__
                envelope.fail(UpstreamError(f"the legacy service could not be reached ({reason})"))
                return
            except Exception as error:
                self._count("upstream_error")
                envelope.fail(error)
                return
            try:
                await self._relay(envelope, response)
            finally:
                await response.aclose()

    async def _relay(self, envelope: Envelope, response: httpx.Response) -> None:
        """Answer with the head, then hand the body over chunk by chunk; count how it ended."""
        chunks, body = trio.open_memory_channel[bytes](0)
        head = Forwarded(response.status_code, _relayed_headers(response.headers.raw), body)
        with chunks:
            if not envelope.reply(head):  # the caller gave up before the head came
                body.close()
                self._count("client_closed")
                return
            # The HTTP side starts reading at once; one that has not within the timeout lost
            # its client before the first chunk, and nobody will ever read.
            deadline = trio.current_time() + self._timeout
            try:
                async for chunk in response.aiter_raw():
                    if not chunk:
                        continue
                    if not await _hand_over(chunks, chunk, deadline):
                        self._count("client_closed")
                        return
                    deadline = math.inf
            except httpx.HTTPError as error:
                if chunks.statistics().open_receive_channels == 0:
                    self._count("client_closed")
                    return
                timed_out = isinstance(error, httpx.TimeoutException)
                self._count("timeout" if timed_out else "upstream_error")
                log.warning(
                    "legacy_proxy.aborted",
                    status=response.status_code,
                    error=repr(error),
                    detail="the legacy service's body broke off; the response is cut short",
                )
                return
            self._count("forwarded")
            await _hand_over(chunks, END_OF_BODY, deadline)
