"""The OpenAPI document: quart-schema's, with the body schemas it gets wrong put right.

quart-schema (0.25) documents a model converted by msgspec with the first of the components
msgspec generates for it and drops the others (pgjones/quart-schema#117). So a model inside
another (a board's `Tag`s, a job's operations) is a `$ref` to nothing, and `list[Tag]` is
documented as a single `Tag`. This provider asks msgspec for the whole schema of each request
and response body, and keeps every component it refers to.
"""

from __future__ import annotations

import inspect
import typing
from typing import Any

import msgspec
from quart_schema import OpenAPIProvider
from quart_schema.typing import Model
from quart_schema.validation import DataSource

_REF = "#/components/schemas/{name}"
_FORM = "application/x-www-form-urlencoded"
_ENCODINGS = {DataSource.JSON: "application/json", DataSource.FORM_MULTIPART: "multipart/form-data"}


def body_schema(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of `model` (a model, a list of them, a union) and its components.

    A model itself is inlined, as quart-schema does; the models it refers to are components.
    """
    (schema,), components = msgspec.json.schema_components([model], ref_template=_REF)
    if set(schema) == {"$ref"}:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema, components


def _description(model: Any) -> str:
    """The docstring of the model, or of its element when it is a list of them."""
    if typing.get_origin(model) is list:
        (model,) = typing.get_args(model)
    if not inspect.isclass(model):
        return ""
    return inspect.getdoc(model) or ""


class BodySchemas(OpenAPIProvider):
    """quart-schema's OpenAPI provider with whole body schemas; see the module docstring."""

    def build_request_body(
        self, model: type[Model], source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request body object of `model`, with every component it refers to.

        Built here whole: quart-schema's own cannot describe a union (one or many shapes).
        """
        schema, components = body_schema(model)
        return {"content": {_ENCODINGS.get(source, _FORM): {"schema": schema}}}, components

    def build_response_object(
        self, model: type[Model], headers_model: type[Model] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The response object of `model`, with every component it refers to."""
        response, definitions = super().build_response_object(model, headers_model)
        schema, components = body_schema(model)
        response["content"]["application/json"]["schema"] = schema
        response["description"] = _description(model)
        return response, {**definitions, **components}
