"""The contract's error body, and the one place exceptions become HTTP error responses.

Body: `{"code", "message", "requestId"}`, plus `detail` for 422. A 500 never carries a
stack trace, SQL or a token: unexpected exceptions are logged here with their traceback and
answered with a fixed message.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

import msgspec
import structlog
from quart import Quart, Response
from quart_schema import RequestSchemaValidationError
from werkzeug.exceptions import HTTPException, MethodNotAllowed

from miro_bridge.context import request_id_var
from miro_bridge.errors import BridgeError, FieldProblem, RateLimited, ValidationFailed

log = structlog.get_logger(__name__)

#: Codes for statuses werkzeug raises itself (routing, body limits, malformed bodies).
_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    413: "payload_too_large",
    415: "bad_request",
    422: "validation_error",
    429: "rate_limited",
    502: "upstream_error",
    503: "unavailable",
}


def error_body(
    code: str, message: str, request_id: str | None, detail: list[dict[str, Any]] | None = None
) -> bytes:
    """The JSON error body of the contract."""
    body: dict[str, Any] = {"code": code, "message": message, "requestId": request_id or ""}
    if detail is not None:
        body["detail"] = detail
    return json.dumps(body, separators=(",", ":")).encode()


def bridge_error_answer(error: BridgeError, request_id: str | None) -> tuple[bytes, dict[str, str]]:
    """The body and extra headers (`Retry-After`) answering `error`, logged if it is a 5xx;
    for the routes' error handler and for what the edge answers itself."""
    headers: dict[str, str] = {}
    detail = None
    if isinstance(error, RateLimited):
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if isinstance(error, ValidationFailed):
        detail = [problem.as_json() for problem in error.detail]
    if error.status >= 500:
        log.warning("http.failed", code=error.code, error=error.message)
    return error_body(error.code, error.message, request_id, detail), headers


def _response(
    status: int,
    code: str,
    message: str,
    detail: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    return Response(
        error_body(code, message, request_id_var.get(), detail),
        status=status,
        content_type="application/json",
        headers=headers,
    )


_MSGSPEC_PATH = re.compile(r"^(?P<msg>.*?)(?: - at `(?P<path>[^`]*)`)?$", re.DOTALL)


def field_problems(error: Exception, prefix: Sequence[str | int] = ("body",)) -> list[FieldProblem]:
    """Turn a schema library's validation error into contract `detail` items under `prefix`."""
    match = _MSGSPEC_PATH.match(str(error))
    assert match is not None  # the pattern matches any string
    loc: list[str | int] = list(prefix)
    for part in re.findall(r"\.([^.\[]+)|\[(\d+)\]", (match["path"] or "$")[1:]):
        loc.append(part[0] if part[0] else int(part[1]))
    kind = "type_error" if isinstance(error, msgspec.ValidationError) else "value_error"
    return [FieldProblem(tuple(loc), match["msg"], kind)]


def register_error_handlers(app: Quart) -> None:
    """Map every exception a route can raise to the contract's error response."""

    @app.errorhandler(BridgeError)
    async def bridge_error(error: BridgeError) -> Response:
        body, headers = bridge_error_answer(error, request_id_var.get())
        return Response(body, status=error.status, content_type="application/json", headers=headers)

    @app.errorhandler(RequestSchemaValidationError)
    async def schema_error(error: RequestSchemaValidationError) -> Response:
        failed = ValidationFailed.of(field_problems(error.validation_error))
        return _response(422, failed.code, failed.message, [p.as_json() for p in failed.detail])

    @app.errorhandler(HTTPException)
    async def http_error(error: HTTPException) -> Response:
        status = error.code or 500
        if status >= 500:
            return await internal_error(error)
        headers = {}
        if isinstance(error, MethodNotAllowed) and error.valid_methods:
            headers["Allow"] = ", ".join(sorted(error.valid_methods))
        message = {
            400: "malformed request (is the body valid JSON?)",
            404: "no such route",
            405: "method not allowed on this route",
            413: "request body too large",
        }.get(status, error.description or error.name)
        return _response(status, _CODES.get(status, "bad_request"), message, headers=headers)

    @app.errorhandler(Exception)
    async def internal_error(error: Exception) -> Response:
        log.error("http.unhandled_exception", exc_info=error)
        return _response(500, "internal", "internal error")
