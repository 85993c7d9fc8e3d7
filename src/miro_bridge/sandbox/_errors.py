"""Miro's error answers, raised by the sandbox's state and turned into responses by the app.

Bodies follow Miro's documented error object (developers.miro.com/reference/errors):
`{"type": "error", "status", "code", "message", "context"}`, with the codes Miro documents:
`invalidParameters` (400), `tokenNotProvided` / `tokenNotFound` (401), `oauthError` (401, the
token endpoint), `insufficientPermissions` (403), `notFound` (404), `tooManyRequests` (429),
`internalError` (5xx). Bulk creation answers `BulkOperationError`, whose `context.fields` name
the failing item by its index (`"1.data.shape"`).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import attrs


@attrs.frozen
class FieldError:
    """One invalid request field, named by its dotted path (`data.shape`, `0.style.fillColor`)."""

    field: str
    message: str


class ApiError(Exception):
    """A Miro error answer: an HTTP status and Miro's error body."""

    def __init__(
        self, status: int, code: str, message: str, context: dict[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.context = context

    def body(self) -> dict[str, Any]:
        """The JSON body Miro sends with this error."""
        return {
            "type": "error",
            "status": self.status,
            "code": self.code,
            "message": self.message,
            "context": self.context,
        }


def invalid_parameters(fields: Iterable[FieldError], message: str = "") -> ApiError:
    """400 for a request whose parameters or body do not validate."""
    listed = list(fields)
    if not message:
        message = "; ".join(f"{error.field}: {error.message}" for error in listed)
    context = {
        "fields": [
            {"field": error.field, "reason": "invalid", "message": error.message}
            for error in listed
        ]
    }
    return ApiError(400, "invalidParameters", message or "Method parameters are not valid", context)


def invalid(field: str, message: str) -> ApiError:
    """400 naming one invalid field."""
    return invalid_parameters([FieldError(field, message)])


def bulk_invalid(fields: Iterable[FieldError]) -> ApiError:
    """400 `BulkOperationError` for a bulk request with invalid items; nothing was created."""
    listed = list(fields)
    context = {
        "fields": [
            {"field": error.field, "message": error.message, "context": {}} for error in listed
        ]
    }
    return ApiError(400, "invalidParameters", "Bulk operation failed: invalid items", context)


def not_found(message: str) -> ApiError:
    """404: the resource does not exist (or is not of the type the route serves)."""
    return ApiError(404, "notFound", message)


def forbidden(message: str = "Insufficient permissions to do this action") -> ApiError:
    """403: the caller may not touch this board."""
    return ApiError(403, "insufficientPermissions", message)


def token_not_provided() -> ApiError:
    """401: no access token on the request."""
    return ApiError(401, "tokenNotProvided", "No authorization data was found on the request")


def token_not_found() -> ApiError:
    """401: the access token is unknown, expired or revoked."""
    return ApiError(401, "tokenNotFound", "The access token does not exist or has expired")


def oauth_error(message: str) -> ApiError:
    """401 from the token endpoint: bad client, code, refresh token or redirect URI."""
    return ApiError(401, "oauthError", message)


def too_many_requests() -> ApiError:
    """429: the user's credit budget for this minute is spent."""
    return ApiError(429, "tooManyRequests", "Request rate limit exceed")


_SERVER_CODES = {
    500: "internalError",
    502: "badGateway",
    503: "serviceUnavailable",
    504: "gatewayTimeout",
}


def server_error(status: int) -> ApiError:
    """A 5xx answer, as injected by faults."""
    code = _SERVER_CODES.get(status, "internalError")
    return ApiError(status, code, "Something went wrong on the server, try again later")
