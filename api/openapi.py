"""The OpenAPI 3.1 document: component schemas come from the marshmallow schemas, operations
from the table in api/operations.py, paths from Flask's own routing table (so none can be missing).

`make openapi` regenerates openapi.yaml; tests fail when the committed file differs.
"""

import re
from http import HTTPStatus

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from flask import Flask

from api.operations import (
    EXTRA_SCHEMAS,
    FILTERS_PARAMETER,
    HEADERS,
    LINK_PARAMETERS,
    OPERATIONS,
    PATH_PARAMETERS,
    PROBLEM_HEADERS,
    RATE_HEADERS,
    SCHEMAS,
    Op,
)
from schemas.common import StrictBoolean, Timestamp

TITLE = "Coffer"
VERSION = "1.0.0"
_CONVERTER = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")
_DB_DOWN = 503


def _page_schema(item: str) -> dict:
    return {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": {"$ref": f"#/components/schemas/{item}"}},
            "next_cursor": {"type": ["string", "null"]},
        },
    }


def _openapi_path(rule: str) -> str:
    return _CONVERTER.sub(r"{\1}", rule)


def _path_parameters(path: str) -> list[dict]:
    return [
        {"name": name, "in": "path", "required": True, "schema": PATH_PARAMETERS[name]}
        for name in re.findall(r"{([a-z_]+)}", path)
    ]


def _response(status: int, schema: str | None, op: Op) -> dict:
    names = ["X-Request-ID", *op.headers.get(status, ()), *PROBLEM_HEADERS.get(status, ())]
    if op.auth or op.limited:
        names += list(RATE_HEADERS)
    response: dict = {
        "description": HTTPStatus(status).phrase,
        "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in names},
    }
    if status >= 400:
        response["content"] = {
            "application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}
        }
    elif schema and status != 304:
        response["content"] = {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema}"}}
        }
    return response


def _operation(path: str, op: Op) -> dict:
    statuses = dict(op.responses)
    statuses.setdefault(_DB_DOWN, None)
    statuses.setdefault(414, None)  # any URL over api.web.MAX_URI_BYTES
    if op.auth:
        statuses.setdefault(401, None)
        statuses.setdefault(429, None)
    result: dict = {
        "operationId": op.op_id,
        "summary": op.summary,
        "tags": [op.tag],
        "responses": {str(s): _response(s, name, op) for s, name in sorted(statuses.items())},
    }
    if op.links:
        success = str(min(s for s in statuses if s < 300))
        result["responses"][success]["links"] = {
            target: {"operationId": target, "parameters": LINK_PARAMETERS[target]}
            for target in op.links
        }
    parameters = _path_parameters(path)
    if op.query is not None:
        parameters.append({"in": "query", "schema": op.query})
    if op.filters:
        parameters.append(FILTERS_PARAMETER)
    if op.conditional:
        parameters.append(
            {
                "in": "header",
                "name": op.conditional,
                "required": False,
                "description": "An ETag from an earlier response, or *.",
                "schema": {"type": "string"},
            }
        )
    if op.idempotent:
        parameters.append(
            {
                "in": "header",
                "name": "Idempotency-Key",
                "required": False,
                "schema": {"type": "string", "minLength": 1, "maxLength": 255},
            }
        )
    if parameters:
        result["parameters"] = parameters
    if op.body:
        ref = {"schema": {"$ref": f"#/components/schemas/{op.body}"}}
        result["requestBody"] = {"required": True, "content": {t: ref for t in op.body_types}}
    result["security"] = [{"bearerAuth": []}] if op.auth else []
    return result


def build_spec(app: Flask) -> dict:
    """The whole document; raises when a route has no entry in OPERATIONS or vice versa."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        TITLE,
        VERSION,
        "3.1.0",
        plugins=[plugin],
        info={
            "description": "Users, JWT sessions and owner-scoped JSON records.",
            "license": {"name": "MIT", "identifier": "MIT"},
        },
    )
    plugin.map_to_openapi_type(Timestamp, "string", "date-time")
    plugin.map_to_openapi_type(StrictBoolean, "boolean", None)
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    for name, header in HEADERS.items():
        spec.components.header(name, header)
    for name, schema in SCHEMAS.items():
        spec.components.schema(name, schema=schema)
    for name in (
        "UserPublic",
        "SessionPublic",
        "SecurityEvent",
        "RecordPublic",
        "CollectionPublic",
    ):
        spec.components.schema(f"Page_{name}", _page_schema(name))
    for name, schema in EXTRA_SCHEMAS.items():
        spec.components.schema(name, schema)
    seen = set()
    for rule in sorted(app.url_map.iter_rules(), key=lambda r: r.rule):
        if rule.endpoint == "static":
            continue
        path = _openapi_path(rule.rule)
        operations = {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            key = (path, method.lower())
            if key not in OPERATIONS:
                raise RuntimeError(f"{method} {path} is not described in api/operations.py")
            seen.add(key)
            operations[method.lower()] = _operation(path, OPERATIONS[key])
        spec.path(path=path, operations=operations)
    unrouted = set(OPERATIONS) - seen
    if unrouted:
        raise RuntimeError(f"described but not routed: {sorted(unrouted)}")
    return spec.to_dict()
