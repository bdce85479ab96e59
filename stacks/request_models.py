"""API Gateway's request models, generated from the schemas the query handler validates.

The models are the pydantic request models of ``ragline.schemas`` and the filter grammar
of ``ragline.filters``, converted to JSON Schema draft 4 (the only draft API Gateway
reads), so the deployed API accepts what ``ragline dev`` accepts. The conversion:

* references to other schemas point into the model's ``definitions`` (API Gateway
  resolves ``#/definitions/...`` within a model); ``const`` becomes a one-value ``enum``;
* an integer is a number that is a multiple of 1: the handler reads ``5.0`` as 5, and
  draft 4's ``integer`` would refuse it;
* the filter, recursive in the OpenAPI document, is unrolled into one definition per
  nesting level (``Filter1`` to ``Filter6``, the last without ``and``, ``or`` and
  ``not``): a model must not refer to itself, and the grammar's depth limit is then
  checked here too;
* titles, descriptions and defaults are dropped (API Gateway does not need them, and a
  description holding ``*/`` would break its SDK generation).

What draft 4 cannot say (at most 64 operators in a filter) is left to the handler, which
answers such a body with its own 400.
"""

from __future__ import annotations

import json
import re
from typing import Any

from aws_cdk import aws_apigateway as apigw
from pydantic import BaseModel
from pydantic.json_schema import GenerateJsonSchema
from ragline.filters import MAX_DEPTH, filter_schema
from ragline.schemas import ChatCompletionRequest, FeedbackRequest, QueryRequest, RetrieveRequest

DRAFT4 = "http://json-schema.org/draft-04/schema#"
# The request model of each POST route, and its text field bounded by max_question_chars.
ROUTES: dict[str, tuple[type[BaseModel], str | None]] = {
    "/query": (QueryRequest, "question"),
    "/retrieve": (RetrieveRequest, "query"),
    "/feedback": (FeedbackRequest, None),
    "/v1/chat/completions": (ChatCompletionRequest, None),
}
COMPONENT = "#/components/schemas/"  # where the OpenAPI document keeps the schemas
FILTER = "MetadataFilter"  # the filter's component (``ragline.filters.openapi_schemas``)
_ANNOTATIONS = {"title", "description", "default", "examples"}
# Keywords whose value is a schema, a list of schemas, or a name -> schema mapping.
_SCHEMA = {"items", "additionalProperties", "not"}
_SCHEMA_LIST = {"anyOf", "allOf", "oneOf"}
_SCHEMA_MAP = {"properties", "patternProperties", "definitions"}


def _level(depth: int) -> str:
    return f"Filter{depth}"


def filter_definitions() -> dict[str, dict[str, Any]]:
    """The filter grammar as one definition per nesting level, ``Filter1`` the root."""
    definitions = {}
    for depth in range(1, MAX_DEPTH + 1):
        child = {"$ref": f"#/definitions/{_level(depth + 1)}"} if depth < MAX_DEPTH else None
        definitions[_level(depth)] = filter_schema(child)
    return definitions


def _components(model: type[BaseModel]) -> dict[str, Any]:
    """The model's JSON Schema and those it refers to, as the OpenAPI document's
    components (pydantic's standalone ``model_json_schema`` cannot leave the filter's
    reference to a component the document adds: ``ragline.api``)."""
    generator = GenerateJsonSchema(ref_template=COMPONENT + "{model}")
    _, components = generator.generate_definitions(
        [(model, "validation", model.__pydantic_core_schema__)]
    )
    return {str(name): schema for name, schema in components.items()}


def draft4(schema: Any) -> Any:
    """``schema`` (pydantic's JSON Schema, draft 2020-12) as draft 4, recursively; a
    reference to a component becomes one to a definition, the filter's to its first level."""
    if isinstance(schema, list):
        return [draft4(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    converted: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key == "$ref":
            name = value.removeprefix(COMPONENT).removeprefix("#/definitions/")
            converted["$ref"] = f"#/definitions/{_level(1) if name == FILTER else name}"
        elif key == "const":
            converted["enum"] = [value]
        elif key in _SCHEMA_MAP:
            converted[key] = {name: draft4(part) for name, part in value.items()}
        else:
            converted[key] = draft4(value)
    if converted.get("type") == "integer":
        converted["type"] = "number"
        converted["multipleOf"] = 1
    return converted


def _references(schema: Any) -> set[str]:
    text = json.dumps(schema)
    return {name for name in re.findall(r'"#/components/schemas/([^"]+)"', text)}


def request_model(model: type[BaseModel], bounded: str | None, max_chars: int) -> dict[str, Any]:
    """The draft-4 schema of one request body, as a JSON object (the model's schema)."""
    components = _components(model)
    schema = draft4(components[model.__name__])
    definitions: dict[str, Any] = {}
    pending = _references(components[model.__name__])
    while pending:
        name = pending.pop()
        if name in definitions or name == FILTER:
            continue
        definitions[name] = draft4(components[name])
        pending |= _references(components[name])
    if FILTER in _references(components):
        definitions.update(draft4(filter_definitions()))
    if definitions:
        schema["definitions"] = definitions
    if bounded is not None:
        schema["properties"][bounded]["maxLength"] = max_chars
    return {"$schema": DRAFT4, "title": model.__name__, **schema}


def request_models(max_question_chars: int) -> dict[str, dict[str, Any]]:
    """Each POST route's draft-4 request schema, the question bounded as configured."""
    return {
        path: request_model(model, field, max_question_chars)
        for path, (model, field) in ROUTES.items()
    }


# --- the same schemas as CDK's JsonSchema -------------------------------------------------

_KEYWORDS = {  # draft-4 keyword -> JsonSchema's argument, where they differ beyond case
    "$schema": "schema",
    "$ref": "ref",
    "enum": "enum",
}


def _argument(keyword: str) -> str:
    if keyword in _KEYWORDS:
        return _KEYWORDS[keyword]
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in keyword)


def _type(value: str | list[str]) -> Any:
    if isinstance(value, list):
        return [apigw.JsonSchemaType[v.upper()] for v in value]
    return apigw.JsonSchemaType[value.upper()]


def as_cdk(schema: dict[str, Any]) -> apigw.JsonSchema:
    """A draft-4 schema (a JSON object) as CDK's ``JsonSchema``, which the template
    renders back to the same JSON."""
    arguments: dict[str, Any] = {}
    for keyword, value in schema.items():
        name = _argument(keyword)
        if keyword == "$schema":
            arguments[name] = apigw.JsonSchemaVersion.DRAFT4
        elif keyword == "type":
            arguments[name] = _type(value)
        elif keyword in _SCHEMA_MAP:
            arguments[name] = {key: as_cdk(part) for key, part in value.items()}
        elif keyword in _SCHEMA_LIST:
            arguments[name] = [as_cdk(part) for part in value]
        elif keyword in _SCHEMA and isinstance(value, dict):
            arguments[name] = as_cdk(value)
        else:
            arguments[name] = value
    return apigw.JsonSchema(**arguments)


def cdk_request_models(max_question_chars: int) -> dict[str, apigw.JsonSchema]:
    """:func:`request_models` as CDK's ``JsonSchema``, by route."""
    return {path: as_cdk(schema) for path, schema in request_models(max_question_chars).items()}
