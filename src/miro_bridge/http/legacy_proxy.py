"""Any other `/api/...` path: proxied to the legacy service at `MIRO_LEGACY_BASE_URL`.

Proxied is a path under `/api/` that no route here matches (werkzeug's routing `NotFound`,
seen in a `before_request` hook, before Quart would raise it). A known path with another
method stays 405, and a 404 that one of our routes raises itself (an unknown job) stays ours.
Without a legacy base URL nothing is registered, and such paths are 404 as before.

The request becomes one `Forward` message (`miro_bridge.actors.legacy_proxy`): the method,
the raw path and query string, the body (read whole, so within `MIRO_MAX_BODY_BYTES`), and the
client's headers minus hop-by-hop ones, `Host` and `Content-Length` (both set again for the
upstream) and `Expect` (the body has already been received), with `X-Forwarded-For`,
`X-Forwarded-Proto`, `X-Forwarded-Host` and our `X-Request-ID` added. The answer goes back
with the upstream's status and headers, its body streamed as it arrives; an upstream failure
before the head is a 502 or 504 through the usual error mapping, one after it cuts the
response short (`StreamAborted`, which the edge turns into a dropped connection). The metrics
label the route `legacy_proxy`, never the raw path.
"""

from __future__ import annotations

from typing import cast

import trio
from quart import Quart, Response, request
from quart.wrappers.response import ResponseBody
from werkzeug.datastructures import Headers
from werkzeug.exceptions import NotFound

from miro_bridge.actors.legacy_proxy import END_OF_BODY, Forward, Forwarded, end_to_end
from miro_bridge.actors.system import ActorSystem
from miro_bridge.context import request_id_var
from miro_bridge.errors import BadRequest, StreamAborted
from miro_bridge.http.typing import PEER_KEY, ROUTE_KEY, Scope

#: The metrics label of every proxied request.
ROUTE = "legacy_proxy"
PREFIX = "/api/"

#: Request headers that are not forwarded as the client sent them (besides hop-by-hop ones).
_REPLACED = frozenset(
    {
        "host",
        "content-length",
        "expect",
        "x-request-id",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
    }
)


def proxied_path(raw: bytes, decoded: str) -> str:
    """The raw path to send upstream, once it is sure to name a path under `/api/` there.

    Refused (400): a request target that is not a path (absolute form, or `%2Fapi/...`),
    an encoded slash or backslash (the upstream may decode it into a separator), and any
    `.` or `..` segment, literal or percent-encoded (it would climb out of `/api/`).
    """
    if not raw.startswith(b"/"):
        raise BadRequest("only a path (/api/...) can be proxied, not another form of target")
    lowered = raw.lower()
    if b"%2f" in lowered or b"%5c" in lowered or b"\\" in raw or "\\" in decoded:
        raise BadRequest("encoded slashes and backslashes are not proxied")
    if any(segment in (".", "..") for segment in decoded.split("/")):
        raise BadRequest("dot segments (. and ..) are not proxied")
    if not decoded.startswith(PREFIX):
        raise BadRequest("only paths under /api/ are proxied")
    return raw.decode("latin-1")


def forwarded_headers(
    received: list[tuple[str, str]],
    *,
    client: str | None,
    scheme: str,
    request_id: str | None,
) -> tuple[tuple[str, str], ...]:
    """The headers to send upstream for a request that arrived with `received`.

    The client's end-to-end headers, then `X-Forwarded-For` (any earlier proxies' list with
    `client`, our peer, appended), `X-Forwarded-Proto` and `X-Forwarded-Host` (an earlier
    proxy's when one set them, else ours), and the request id the edge chose. The edge has
    removed the `X-Forwarded-*` headers of a peer that is not a trusted proxy.
    """

    def first(name: str) -> str | None:
        return next((v for n, v in received if n.lower() == name), None)

    earlier = ", ".join(v for n, v in received if n.lower() == "x-forwarded-for")
    chain = ", ".join(part for part in (earlier, client) if part)
    headers = [(n, v) for n, v in end_to_end(received) if n.lower() not in _REPLACED]
    if chain:
        headers.append(("x-forwarded-for", chain))
    headers.append(("x-forwarded-proto", first("x-forwarded-proto") or scheme))
    host = first("x-forwarded-host") or first("host")
    if host:
        headers.append(("x-forwarded-host", host))
    if request_id:
        headers.append(("x-request-id", request_id))
    return tuple(headers)


class _UpstreamBody(ResponseBody):
    """The upstream's body as Quart sends it: each chunk as it arrives.

    Leaving the `async with` (done, or the client went away) closes the channel, which stops
    the pump. A channel that ends without `END_OF_BODY` raises `StreamAborted`.
    """

    def __init__(self, chunks: trio.MemoryReceiveChannel[bytes]) -> None:
        self._chunks = chunks

    async def __aenter__(self) -> _UpstreamBody:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self._chunks.close()

    def __aiter__(self) -> _UpstreamBody:
        return self

    async def __anext__(self) -> bytes:
        try:
            chunk = await self._chunks.receive()
        except trio.EndOfChannel:
            raise StreamAborted("the legacy service's answer broke off") from None
        if chunk == END_OF_BODY:
            raise StopAsyncIteration
        return chunk


def _streamed(answer: Forwarded) -> Response:
    response = Response(
        _UpstreamBody(answer.body), status=answer.status, headers=Headers(list(answer.headers))
    )
    if not any(name.lower() == "content-type" for name, _ in answer.headers):
        del response.headers["Content-Type"]  # Quart's default; the upstream sent none
    # The upstream's read timeout bounds each wait: no total limit (Quart's default cuts a
    # response off after 60 s), so long downloads pass.
    response.timeout = None
    return response


def register_legacy_proxy(app: Quart, actors: ActorSystem) -> None:
    """Proxy unrouted `/api/...` requests to the legacy service, when one is configured."""
    legacy = actors.legacy
    if legacy is None:
        return

    @app.before_request
    async def proxy_unrouted() -> Response | None:
        """Forward a request no route matches; let every other request through."""
        if not isinstance(request.routing_exception, NotFound) or not request.path.startswith(
            PREFIX
        ):
            return None
        scope = cast(Scope, request.scope)
        scope[ROUTE_KEY] = ROUTE
        peer = scope.get(PEER_KEY, scope.get("client"))  # the edge keeps it; see _proxies.py
        forward = Forward(
            method=request.method,
            path=proxied_path(scope.get("raw_path") or scope["path"].encode(), scope["path"]),
            query=scope["query_string"],
            headers=forwarded_headers(
                [(n.decode("latin-1"), v.decode("latin-1")) for n, v in scope["headers"]],
                client=peer[0] if peer else None,
                scheme=scope["scheme"],
                request_id=request_id_var.get(),
            ),
            body=await request.get_data(cache=False, as_text=False, parse_form_data=False),
        )
        answer: Forwarded = await legacy.call(forward)
        return _streamed(answer)
