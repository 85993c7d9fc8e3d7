"""The OpenAPI document: quart-schema's, with the body schemas it gets wrong put right.

quart-schema (0.25) documents a model converted by msgspec with the first of the components
msgspec generates for it and drops the others (pgjones/quart-schema#117). So a model inside
another (a board's `Tag`s, a job's operations) is a `$ref` to nothing, and `list[Tag]` is
documented as a single `Tag`. This provider asks msgspec for the whole schema of each request
and response body, and keeps every component it refers to.

It also documents the contract's error body as every operation's `4XX` and `5XX` responses
(any route may answer 400, 404, 422, 503 and the rest with it: API.md, "Conventions"), and the
answers that have no JSON body (a 204, a redirect, Prometheus text), declared on a route with
`document_status`.
"""

from __future__ import annotations

import inspect
import typing
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

import attrs
import msgspec
from quart_schema import OpenAPIProvider
from quart_schema.typing import Model
from quart_schema.validation import DataSource
from werkzeug.routing import Rule

F = TypeVar("F", bound=Callable[..., Any])

_REF = "#/components/schemas/{name}"
_STATUSES = "miro_bridge_documented_statuses"
_FORM = "application/x-www-form-urlencoded"
_ENCODINGS = {DataSource.JSON: "application/json", DataSource.FORM_MULTIPART: "multipart/form-data"}


@attrs.frozen
class Problem:
    """One reason a 422 refused the body: where, what, and its kind."""

    loc: list[str | int]
    msg: str
    type: str


@attrs.frozen
class Error:
    """The contract's error body; `detail` only on 422, `Retry-After` goes with 429."""

    code: str
    message: str
    requestId: str
    detail: list[Problem] | None = None


def document_status(
    status: int, description: str, media_type: str | None = None
) -> Callable[[F], F]:
    """Document an answer of the route without a JSON body model (put it under the route).

    `media_type` names the body's type when there is one (`text/plain`, `text/html`).
    """

    def decorate(func: F) -> F:
        statuses: dict[int, tuple[str, str | None]] = func.__dict__.setdefault(_STATUSES, {})
        statuses[status] = (description, media_type)
        return func

    return decorate


#: Models documented as one of several (`one_of`): their components go in every document.
_ALTERNATIVES: list[type] = []


def one_of(*models: type) -> Any:
    """A JSON object documented as any one of `models`.

    msgspec cannot describe a union of two models (it could not tell them apart when
    converting); a route that tells them apart itself documents the field with this.
    """
    _ALTERNATIVES.extend(model for model in models if model not in _ALTERNATIVES)
    refs = [{"$ref": _REF.format(name=model.__name__)} for model in models]
    return Annotated[dict[str, Any], msgspec.Meta(extra_json_schema={"anyOf": refs})]


def body_schema(model: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The JSON schema of `model` (a model, a list of them, a union) and its components.

    A model itself is inlined, as quart-schema does; the models it refers to are components.
    """
    (schema, *_), components = msgspec.json.schema_components(
        [model, *_ALTERNATIVES], ref_template=_REF
    )
    if set(schema) == {"$ref"}:
        schema = components[schema["$ref"].rsplit("/", 1)[1]]
    return schema, components


_ERROR, _ERROR_COMPONENTS = body_schema(Error)


def _description(model: Any) -> str:
    """The docstring of the model, or of its element when it is a list of them."""
    if typing.get_origin(model) is list:
        (model,) = typing.get_args(model)
    if not inspect.isclass(model):
        return ""
    return inspect.getdoc(model) or ""


class BodySchemas(OpenAPIProvider):
    """quart-schema's OpenAPI provider with whole body schemas; see the module docstring."""

    def build_paths(self, rule: Rule) -> tuple[dict[str, Any], dict[str, Any]]:
        """The rule's operations, each with the error body as its 4XX and 5XX responses."""
        paths, components = super().build_paths(rule)
        statuses = getattr(self._app.view_functions[rule.endpoint], _STATUSES, {})
        documented = {
            str(status): {"description": description}
            | ({"content": {media_type: {}}} if media_type else {})
            for status, (description, media_type) in statuses.items()
        }
        failed = {
            "description": _description(Error),
            "content": {"application/json": {"schema": _ERROR}},
        }
        for operations in paths.values():
            for operation in operations.values():
                # Status keys as strings, as in the JSON: quart-schema's are ints, and the
                # document's keys are sorted, which cannot mix ints with "4XX".
                responses = {str(status): r for status, r in operation["responses"].items()}
                operation["responses"] = {
                    **responses,
                    **documented,
                    "4XX": failed,
                    "5XX": failed,
                }
        return paths, {**components, **_ERROR_COMPONENTS}

    def build_request_body(
        self, model: type[Model], source: DataSource
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The request body object of `model`, with every component it refers to.

        Built here whole: quart-schema's own cannot describe a union (one or many shapes).
        """
        schema, components = body_schema(model)
        content = {_ENCODINGS.get(source, _FORM): {"schema": schema}}
        return {"required": True, "content": content}, components

    def build_response_object(
        self, model: type[Model], headers_model: type[Model] | None
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """The response object of `model`, with every component it refers to.

        Built here whole, like the request body: quart-schema's own would build the broken
        schema first. No route here documents response headers.
        """
        if headers_model is not None:
            raise TypeError("documented response headers are not supported here")
        schema, components = body_schema(model)
        response = {
            "description": _description(model),
            "content": {"application/json": {"schema": schema}},
        }
        return response, components
