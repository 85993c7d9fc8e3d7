"""The sandbox's ASGI app: Miro's OAuth and REST routes, the admin routes, and the faults.

Every request on a Miro route (anything outside `/_admin`) is logged, then meets its fault, if
one is drawn: latency first, then a hang, a dropped connection, an injected 429 or 5xx. A
faulted request never reaches the API, so it changes nothing and costs no credits. A REST
call then authenticates (401), pays its credits (429 when the budget is spent) and runs;
its answer carries the `X-RateLimit-*` headers of the caller's budget.
"""

from __future__ import annotations

import contextvars
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import quart
import trio
from hypercorn.typing import ASGIReceiveCallable, ASGISendCallable, HTTPScope, Scope
from quart_trio import QuartTrio
from werkzeug.exceptions import HTTPException

from miro_bridge.sandbox import _render
from miro_bridge.sandbox._config import Faults
from miro_bridge.sandbox._credits import Budget, OutOfCredits
from miro_bridge.sandbox._errors import ApiError, invalid, server_error, too_many_requests
from miro_bridge.sandbox._faults import FaultKind
from miro_bridge.sandbox._log import LogEntry
from miro_bridge.sandbox._rest import Call, MiroApi, Route, rest_routes

if TYPE_CHECKING:
    from miro_bridge.sandbox._sandbox import Sandbox

ADMIN_PREFIX = "/_admin"
#: The status the log gives a call whose client went away before it was answered (as
#: nginx logs it): over, not in flight.
CLIENT_CLOSED_REQUEST = 499

_current_entry: contextvars.ContextVar[LogEntry | None] = contextvars.ContextVar(
    "miro_sandbox_log_entry", default=None
)


def _json_response(
    status: int, body: object = None, headers: Mapping[str, str] | None = None
) -> quart.Response:
    if body is None:
        empty = quart.Response(b"", status=status, headers=dict(headers or {}))
        del empty.headers["Content-Type"]
        return empty
    return quart.Response(
        json.dumps(body),
        status=status,
        headers=dict(headers or {}),
        content_type="application/json",
    )


def _error_response(error: ApiError, headers: Mapping[str, str] | None = None) -> quart.Response:
    return _json_response(error.status, error.body(), headers)


def _bearer(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header."""
    scheme, _, token = (authorization or "").partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def _base_url() -> str:
    return quart.request.root_url.rstrip("/")


def _local_path(scope: HTTPScope) -> str:
    path, root = scope["path"], scope.get("root_path", "")
    if root and path.startswith(root):
        path = path[len(root) :]
    return path or "/"


def _scope_header(scope: HTTPScope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key.lower() == name:
            return value.decode("latin-1")
    return None


async def _send_json(
    send: ASGISendCallable, status: int, body: object, headers: Mapping[str, str]
) -> None:
    payload = json.dumps(body).encode()
    raw_headers = [(b"content-type", b"application/json")]
    raw_headers += [(b"content-length", str(len(payload)).encode())]
    raw_headers += [(key.lower().encode(), value.encode()) for key, value in headers.items()]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": payload, "more_body": False})


class SandboxApp(QuartTrio):
    """The QuartTrio app of a sandbox, wrapped in the fault injection and request log."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__("miro_bridge.sandbox", static_folder=None)
        self.sandbox = sandbox
        api = MiroApi(sandbox)
        for route in rest_routes(api):
            self.add_url_rule(
                route.rule,
                endpoint=f"{route.method} {route.rule}",
                view_func=self._rest_view(route),
                methods=[route.method],
            )
        self.add_url_rule("/oauth/authorize", view_func=self._authorize, methods=["GET"])
        self.add_url_rule("/v1/oauth/token", view_func=self._token, methods=["POST"])
        self.add_url_rule("/v1/oauth-token", view_func=self._token_info, methods=["GET"])
        self.add_url_rule("/v2/oauth/revoke", view_func=self._revoke, methods=["POST"])
        self.add_url_rule("/v1/oauth/revoke", view_func=self._revoke_v1, methods=["POST"])
        admin = [
            ("/boards", "POST", self._admin_boards),
            ("/tokens", "POST", self._admin_tokens),
            ("/expire-tokens", "POST", self._admin_expire_tokens),
            ("/requests", "GET", self._admin_requests),
            ("/faults", "POST", self._admin_faults),
            ("/reset", "POST", self._admin_reset),
        ]
        for path, method, view in admin:
            self.add_url_rule(ADMIN_PREFIX + path, view_func=view, methods=[method])
        self.register_error_handler(HTTPException, self._http_error)
        self.register_error_handler(Exception, self._unexpected_error)

    # The ASGI edge: log, faults

    async def asgi_app(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        """Log Miro-route requests and inject faults before Quart handles them."""
        if scope["type"] != "http":
            await super().asgi_app(scope, receive, send)
            return
        path = _local_path(scope)
        if path == ADMIN_PREFIX or path.startswith(ADMIN_PREFIX + "/"):
            await super().asgi_app(scope, receive, send)
            return
        sandbox = self.sandbox
        entry = sandbox.log.open(scope["method"], path)
        token = _bearer(_scope_header(scope, b"authorization"))
        entry.user = sandbox.oauth.user_of(token)
        fault = sandbox.injector.draw()
        if fault.latency_seconds > 0:
            await trio.sleep(fault.latency_seconds)
        if fault.kind is FaultKind.HANG:
            await self._hang(receive, send, entry)
        elif fault.kind is FaultKind.DROP:
            await self._drop(send)
        elif fault.kind is FaultKind.RATE_LIMIT:
            entry.status = 429
            await _send_json(send, 429, too_many_requests().body(), self._peek_headers(token))
        elif fault.kind is FaultKind.ERROR:
            entry.status = fault.status
            await _send_json(send, fault.status, server_error(fault.status).body(), {})
        elif fault.kind is FaultKind.APPLY_THEN_DROP:
            await self._apply_then_drop(scope, receive, send, entry)
        else:
            await self._pass_on(scope, receive, send, entry)

    async def _pass_on(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable, entry: LogEntry
    ) -> None:
        async def recording_send(message: Any) -> None:
            if message["type"] == "http.response.start":
                entry.status = message["status"]
            await send(message)

        reset = _current_entry.set(entry)
        try:
            await super().asgi_app(scope, receive, recording_send)
        finally:
            _current_entry.reset(reset)
            if entry.status is None:  # the client went away first (Quart cancelled the call)
                entry.status = CLIENT_CLOSED_REQUEST

    async def _hang(
        self, receive: ASGIReceiveCallable, send: ASGISendCallable, entry: LogEntry
    ) -> None:
        """Answer nothing until the client gives up, or 504 after `hang_seconds`."""
        with trio.move_on_after(self.sandbox.config.hang_seconds):
            while (await receive())["type"] != "http.disconnect":
                pass
            return
        entry.status = 504
        await _send_json(send, 504, server_error(504).body(), {})

    async def _apply_then_drop(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable, entry: LogEntry
    ) -> None:
        """Carry the request out, swallow its answer, and drop the connection instead."""

        async def swallow(message: Any) -> None:
            pass

        await self._pass_on(scope, receive, swallow, entry)
        entry.status = None  # no answer reached the client
        await self._drop(send)

    @staticmethod
    async def _drop(send: ASGISendCallable) -> None:
        """Start an answer and stop mid-body: the server then closes the connection."""
        headers = [(b"content-type", b"application/json"), (b"content-length", b"4096")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b'{"', "more_body": True})

    def _peek_headers(self, token: str | None) -> dict[str, str]:
        try:
            session = self.sandbox.oauth.authenticate(token)
        except ApiError:
            return {}
        return self.sandbox.ledger.peek(session.user_id, session.client_id).headers()

    # REST calls

    def _rest_view(self, route: Route) -> Callable[..., Any]:
        sandbox = self.sandbox

        async def view(**path: str) -> quart.Response:
            request = quart.request
            entry = _current_entry.get()
            try:
                session = sandbox.oauth.authenticate(_bearer(request.headers.get("Authorization")))
            except ApiError as error:
                return _error_response(error)
            if entry is not None:
                entry.user = session.user_id
            call = Call(
                session, _base_url(), request.args, await request.get_data(True, False, False)
            )
            cost = route.cost(call)
            try:
                budget: Budget = sandbox.ledger.charge(session.user_id, session.client_id, cost)
            except OutOfCredits as spent:
                return _error_response(too_many_requests(), spent.budget.headers())
            if entry is not None:
                entry.credits = cost
            try:
                reply = route.handler(call, **path)
            except ApiError as error:
                return _error_response(error, budget.headers())
            return _json_response(reply.status, reply.body, budget.headers())

        return view

    # OAuth

    async def _authorize(self) -> quart.Response:
        """Consent at once and redirect: the sandbox has no login or consent page."""
        try:
            location = self.sandbox.oauth.authorize(quart.request.args)
        except ApiError as error:
            return _error_response(error)
        return _json_response(302, headers={"Location": location})

    async def _token(self) -> quart.Response:
        request = quart.request
        params = dict(request.args) | dict(await request.form)
        try:
            answer = self.sandbox.oauth.exchange(params)
        except ApiError as error:
            return _error_response(error)
        entry = _current_entry.get()
        if entry is not None:
            entry.user = answer["user_id"]
        return _json_response(200, answer)

    async def _token_info(self) -> quart.Response:
        request = quart.request
        token = _bearer(request.headers.get("Authorization")) or request.args.get("access_token")
        try:
            return _json_response(200, self.sandbox.oauth.token_info(token))
        except ApiError as error:
            return _error_response(error)

    async def _revoke(self) -> quart.Response:
        body = await quart.request.get_json(force=True, silent=True)
        fields = ("accessToken", "clientId", "clientSecret")
        if not isinstance(body, dict) or not all(isinstance(body.get(f), str) for f in fields):
            missing = invalid("body", "accessToken, clientId and clientSecret are required")
            return _error_response(missing)
        if not self.sandbox.oauth.revoke(*(body[f] for f in fields)):
            not_revoked = {
                "type": "error",
                "status": 404,
                "code": "notFound",
                "message": "Token not revoked",
            }
            return _json_response(404, not_revoked)
        return _json_response(204)

    async def _revoke_v1(self) -> quart.Response:
        """Deprecated `POST /v1/oauth/revoke?access_token=`, still used by Miro's Python client."""
        config = self.sandbox.config
        token = quart.request.args.get("access_token", "")
        if not self.sandbox.oauth.revoke(token, config.client_id, config.client_secret):
            return _error_response(invalid("access_token", "Unknown access token"))
        return _json_response(204)

    # Admin

    @staticmethod
    async def _admin_body() -> Mapping[str, Any]:
        body = await quart.request.get_json(force=True, silent=True)
        if body is None and not await quart.request.get_data(True, False, False):
            return {}
        if not isinstance(body, dict):
            raise invalid("body", "Must be a JSON object")
        return body

    async def _admin_boards(self) -> quart.Response:
        try:
            body = await self._admin_body()
            owner, name = body.get("owner"), body.get("name", "Untitled")
            description, members = body.get("description", ""), body.get("members", [])
            if not isinstance(owner, str) or not owner:
                raise invalid("owner", "Required: the user id of the board's owner")
            if not isinstance(name, str) or not isinstance(description, str):
                raise invalid("body", "name and description must be strings")
            if not isinstance(members, list):
                raise invalid("members", "Must be a list of user ids")
        except ApiError as error:
            return _error_response(error)
        board = self.sandbox.boards.create_board(
            owner, name, description, [str(member) for member in members]
        )
        return _json_response(201, _render.board(_base_url(), board, owner))

    async def _admin_tokens(self) -> quart.Response:
        try:
            user_id = (await self._admin_body()).get("user_id")
            if not isinstance(user_id, str) or not user_id:
                raise invalid("user_id", "Required")
        except ApiError as error:
            return _error_response(error)
        return _json_response(200, self.sandbox.issue_tokens(user_id))

    async def _admin_expire_tokens(self) -> quart.Response:
        self.sandbox.expire_tokens()
        return _json_response(204)

    async def _admin_requests(self) -> quart.Response:
        return _json_response(200, {"requests": self.sandbox.requests()})

    async def _admin_faults(self) -> quart.Response:
        try:
            faults = Faults.from_json(await self._admin_body())
        except ApiError as error:
            return _error_response(error)
        except ValueError as error:
            return _error_response(invalid("body", str(error)))
        self.sandbox.set_faults(faults)
        return _json_response(204)

    async def _admin_reset(self) -> quart.Response:
        self.sandbox.reset()
        return _json_response(204)

    # Errors outside the handlers

    async def _http_error(self, error: HTTPException) -> quart.Response:
        codes = {404: "notFound", 405: "methodNotAllowed", 413: "payloadTooLarge"}
        status = error.code or 500
        body = ApiError(status, codes.get(status, "invalidParameters"), error.description or "")
        return _error_response(body)

    async def _unexpected_error(self, error: Exception) -> quart.Response:
        self.logger.exception("sandbox handler failed", exc_info=error)
        return _error_response(server_error(500))
