"""Small helpers the route modules share: body conversion and JSON responses."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from quart import Response
from quart_schema import RequestSchemaValidationError


def convert_body(data: object, kind: Any) -> Any:
    """`data` (parsed JSON) as `kind` (attrs classes, lists, unions); 422 with the field if not."""
    try:
        return msgspec.convert(data, kind, from_attributes=False)
    except msgspec.ValidationError as error:
        raise RequestSchemaValidationError(error) from None


def json_response(body: object, status: int = 200) -> Response:
    """A JSON response."""
    return Response(json.dumps(body), status=status, content_type="application/json")
