"""Small helpers the route modules share: reading, converting and answering JSON bodies."""

from __future__ import annotations

import json
from typing import Any

import msgspec
from quart import Response
from quart_schema import RequestSchemaValidationError
from quart_trio.wrappers import TrioRequest


class JSONRequest(TrioRequest):
    """Quart-Trio's request, with a body that is not UTF-8 refused like any malformed JSON.

    Quart decodes the body before its JSON error handling starts, so bytes that are not
    UTF-8 (which JSON must be) escape as a `UnicodeDecodeError`: a 500 instead of a 400.
    """

    async def get_json(self, force: bool = False, silent: bool = False, cache: bool = True) -> Any:
        """Parse the body as JSON; a body that is not UTF-8 is a malformed one (400)."""
        try:
            return await super().get_json(force=force, silent=silent, cache=cache)
        except UnicodeDecodeError as error:
            if silent:
                return None
            return self.on_json_loading_failed(error)


def convert_body(data: object, kind: Any) -> Any:
    """`data` (parsed JSON) as `kind` (attrs classes, lists, unions); 422 with the field if not."""
    try:
        return msgspec.convert(data, kind, from_attributes=False)
    except msgspec.ValidationError as error:
        raise RequestSchemaValidationError(error) from None


def json_response(body: object, status: int = 200) -> Response:
    """A JSON response."""
    return Response(json.dumps(body), status=status, content_type="application/json")
