"""Small helpers the route modules share: body conversion, JSON responses, timestamps."""

from __future__ import annotations

import datetime
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


def iso8601(epoch: float | None) -> str | None:
    """Epoch seconds as ISO-8601 UTC with `Z`, as Miro writes timestamps."""
    if epoch is None:
        return None
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="seconds").replace("+00:00", "Z")
