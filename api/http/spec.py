"""The OpenAPI 3.1 document, built from the routes alone: Flask's url_map gives the paths, each
Resource method's declaration (api/http/operation.py) its operation, and the marshmallow
schemas every body. A route whose method has no declaration fails the build.

`make openapi` regenerates openapi.yaml; a test fails when the committed file differs.
"""

import inspect
import re
from http import HTTPStatus

from apispec import APISpec
from apispec.ext.marshmallow import MarshmallowPlugin
from apispec.ext.marshmallow.common import resolve_schema_cls
from flask import Flask
from marshmallow import Schema, fields, validate
from werkzeug.routing import Rule

from api.http.operation import Operation, declaration
from api.http.pagination import page_schema
from api.http.problems import ProblemSchema
from api.http.sse import EVENT_STREAM
from api.http.web import MAX_URI_BYTES

TITLE = "Coffer"
VERSION = "1.0.0"
DESCRIPTION = "Users, JWT sessions and owner-scoped JSON records."
_CONVERTER = re.compile(r"<(?:(?P<kind>[a-z]+):)?(?P<name>[a-z_]+)>")
# What each URL converter takes, as the field that documents a path parameter without its own.
_CONVERTER_FIELDS = {"uuid": fields.UUID(), "string": fields.String(), None: fields.String()}

HEADERS = {
    "X-Request-ID": "The request's id: yours when sane, else generated.",
    "Location": "URL of the created resource.",
    "Link": 'RFC 8288 `<…>; rel="next"` when there is a next page (a relative reference).',
    "ETag": "Strong validator of the record's current version.",
    "Retry-After": "Seconds to wait before retrying.",
    "WWW-Authenticate": "RFC 6750 Bearer challenge.",
    "Allow": "Methods the resource supports.",
    "X-RateLimit-Limit": "Requests allowed in the current window.",
    "X-RateLimit-Remaining": "Requests left in the current window.",
    "X-RateLimit-Reset": "Unix time at which the window resets.",
}
_INTEGER_HEADERS = frozenset({"Retry-After", *(h for h in HEADERS if h.startswith("X-Rate"))})
PROBLEM_HEADERS = {401: ("WWW-Authenticate",), 429: ("Retry-After",), 503: ("Retry-After",)}
RATE_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def build_spec(app: Flask) -> dict:
    """The whole document; raises when a routed method declares no operation."""
    plugin = MarshmallowPlugin()
    spec = APISpec(
        TITLE,
        VERSION,
        "3.1.0",
        plugins=[plugin],
        info={"description": DESCRIPTION, "license": {"name": "MIT", "identifier": "MIT"}},
    )
    spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}
    )
    spec.components.security_scheme(
        "streamTicket",
        {
            "type": "apiKey",
            "in": "query",
            "name": "ticket",
            "description": "A single-use stream ticket (POST /api/v1/stream-tickets), for a "
            "browser's EventSource, which cannot send Authorization; it opens one stream.",
        },
    )
    for name, description in HEADERS.items():
        field = fields.Integer() if name in _INTEGER_HEADERS else fields.String()
        schema = plugin.converter.field2property(field)
        spec.components.header(name, {"description": description, "schema": schema})
    _component(spec, ProblemSchema)
    tags: list[str] = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view_class = getattr(app.view_functions[rule.endpoint], "view_class", None)
        operations = {}
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            op = _declared(view_class, method, rule)
            if op.documented:
                tag = getattr(view_class, "tag", None) or view_class.__module__.rsplit(".")[-1]
                tags += [tag] if tag not in tags else []
                operations[method.lower()] = _operation(
                    spec, plugin, rule, op, view_class, method, tag
                )
        if operations:
            spec.path(path=_CONVERTER.sub(r"{\g<name>}", rule.rule), operations=operations)
    for tag in tags:  # in routing order, which puts users and sessions first in /docs
        spec.tag({"name": tag})
    document = spec.to_dict()
    document["paths"] = dict(sorted(document["paths"].items()))
    return document


def _declared(view_class, method: str, rule: Rule) -> Operation:
    view = getattr(view_class, method.lower(), None) if view_class else None
    op = declaration(view) if view else None
    if op is None or (op.documented and op.op_id is None):
        raise RuntimeError(
            f"{method} {rule.rule} declares no operation: decorate "
            f"{getattr(view_class, '__name__', rule.endpoint)}.{method.lower()} with @operation"
        )
    return op


def _component(spec: APISpec, schema: Schema | type[Schema]) -> str:
    """The component name of a schema, registered on first use."""
    cls = resolve_schema_cls(schema)
    name = cls.__name__.removesuffix("Schema")
    if name not in spec.components.schemas:
        spec.components.schema(name, schema=cls)
    return name


def _ref(name: str) -> dict:
    return {"$ref": f"#/components/schemas/{name}"}


def _success_schema(spec: APISpec, op: Operation) -> dict | None:
    if op.schema is None:
        return None
    item = _component(spec, op.schema)  # before its page, which refers to it
    return _ref(_component(spec, page_schema(op.schema)) if op.paged else item)


# What a status that a declaration implies means there: (status, when) by what implies it.
_SERVER = (
    (400, "A malformed HTTP request (the HTTP server refuses it)."),
    (414, f"The request line is over {MAX_URI_BYTES} bytes (the HTTP server refuses it)."),
    (431, "Too many header fields, or one too large (the HTTP server refuses them)."),
    (503, "A dependency (database, Redis) is unavailable; the client may retry."),
)
_BODY = ((400, "Malformed JSON."), (413, None), (415, None), (422, "The body is invalid."))
_API_LIMIT = (429, "Over the per-user limit of COFFER_RATE_LIMIT_API.")
_IP_LIMIT = (429, "Over COFFER_RATE_LIMIT_AUTH from this client IP.")
_IDEMPOTENT = (
    (400, "A malformed Idempotency-Key."),
    (409, "A request with this Idempotency-Key is still being processed."),
    (422, "This Idempotency-Key was used with another request."),
)
_IF_MATCH = (
    (400, "A malformed If-Match: neither * nor a list of quoted ETags."),
    (412, "If-Match does not match the record's current ETag: it has changed."),
)


def _statuses(op: Operation) -> dict[int, str | None]:
    """Every status the operation can answer, with when: its own (from the view's
    declaration) first, then what its decorators imply; the reasons of one status joined."""
    own = [*op.also.items(), *op.responses.items(), (op.success, None)]
    reasons: dict[int, list[str]] = {}
    for status, when in (*own, *_implied(op), *_SERVER):
        said = reasons.setdefault(status, [])
        said += [when] if when and when not in said else []
    return {status: " ".join(reasons[status]) or None for status in sorted(reasons)}


def _implied(op: Operation) -> list[tuple[int, str | None]]:
    """(status, when) of what the operation's decorators do: load, authenticate, limit …"""
    implied = list(_BODY) if op.body is not None else []
    if op.query is not None:
        implied += [(400, "A malformed query parameter.")]
        implied += [(422, "A query parameter out of range.")] if op.query.fields else []
    if op.auth:
        token = "An invalid, expired or revoked access token" + (" (or none)." * (not op.anonymous))
        implied += [(401, token), _API_LIMIT]
    if op.roles:
        implied.append((403, f"The caller's role is not {' or '.join(op.roles)}."))
    if op.limited:
        implied.append(_IP_LIMIT)
    if op.idempotent:
        implied += _IDEMPOTENT
    if op.conditional == "If-Match":
        implied += _IF_MATCH
    elif op.conditional == "If-None-Match":
        implied.append((304, None))
    return implied


def _response(spec: APISpec, status: int, when: str | None, op: Operation) -> dict:
    own = op.headers.get(op.success if status == 304 else status, ())  # a 304 repeats the ETag
    names = ["X-Request-ID", *own, *PROBLEM_HEADERS.get(status, ())]
    if (op.auth or op.limited) and status not in (414, 431):  # refused before any count
        names += RATE_HEADERS
    response: dict = {
        "description": when or HTTPStatus(status).phrase,
        "headers": {name: {"$ref": f"#/components/headers/{name}"} for name in names},
    }
    if status >= 400:
        name = _component(spec, op.problems[status]) if status in op.problems else "Problem"
        response["content"] = {"application/problem+json": {"schema": _ref(name)}}
    elif op.media_type == EVENT_STREAM and status == op.success:
        response["content"] = {EVENT_STREAM: _event_stream(spec, op)}
    elif (status == op.success or status in op.also) and op.schema is not None:
        response["content"] = {"application/json": {"schema": _success_schema(spec, op)}}
    if status == op.success and op.links:
        response["links"] = {
            target: {"operationId": target, "parameters": parameters}
            for target, parameters in op.links.items()
        }
    return response


def _event_stream(spec: APISpec, op: Operation) -> dict:
    """A Server-Sent Events body: its schema is text; each event's `data` is the JSON of the
    operation's schema, which its description and examples name (OpenAPI 3.1 has no way to
    type the events themselves)."""
    name = _component(spec, op.schema)
    return {
        "schema": {
            "type": "string",
            "description": (
                "Server-Sent Events (WHATWG HTML §9.2). First `retry: 2000`. Then one block "
                "per change, in commit order: `id:` (opaque, increasing), `event:` `created`, "
                f"`updated` or `deleted`, `data:` one line of JSON, a {name} "
                f"(#/components/schemas/{name}): `record` is the whole record with the "
                'caller\'s `access` (only `{"id"}` when deleted), `matches` whether the '
                "record matches the stream's filters after the change. `event: reset` with "
                "`data: {}` and the current position as `id:` when `Last-Event-ID` cannot be "
                "resumed (reload, then follow). A comment line (`: keep-alive`) every 15 s."
            ),
        },
        "examples": {
            "created": {
                "value": (
                    'retry: 2000\n\nid: 41\nevent: created\ndata: {"collection": "todos", '
                    '"record": {"id": "0192…", "collection": "todos", "owner_id": "0191…", '
                    '"data": {"title": "milk"}, "version": 1, "created_at": '
                    '"2026-11-21T10:00:00.123Z", "updated_at": "2026-11-21T10:00:00.123Z", '
                    '"access": "owner"}, "matches": true}\n\n'
                )
            },
            "deleted": {
                "value": 'id: 42\nevent: deleted\ndata: {"collection": "todos", '
                '"record": {"id": "0192…"}, "matches": false}\n\n'
            },
            "reset": {"value": "id: 57\nevent: reset\ndata: {}\n\n"},
        },
    }


def _parameters(plugin: MarshmallowPlugin, rule: Rule, op: Operation) -> list[dict]:
    parameters = []
    for match in _CONVERTER.finditer(rule.rule):
        field = op.path_parameters.get(match["name"], _CONVERTER_FIELDS[match["kind"]])
        schema = plugin.converter.field2property(field)
        parameters.append({"name": match["name"], "in": "path", "required": True, "schema": schema})
    if op.query is not None and op.query.fields:
        parameters.append({"in": "query", "schema": op.query.__class__})
    parameters += op.query_parameters
    if op.conditional:
        etag = "An ETag from an earlier response, or *."
        parameters.append(_header(plugin, op.conditional, etag, fields.String()))
    if op.idempotent:
        key = fields.String(validate=validate.Length(min=1, max=255))
        parameters.append(_header(plugin, "Idempotency-Key", None, key))
    if op.media_type == EVENT_STREAM:
        resume = "The id of the last event received: the stream replays every change after it."
        parameters.append(_header(plugin, "Last-Event-ID", resume, fields.String()))
    return parameters


def _header(plugin, name: str, description: str | None, field: fields.Field) -> dict:
    header = {"in": "header", "name": name, "required": False}
    if description:
        header["description"] = description
    header["schema"] = plugin.converter.field2property(field)
    return header


def _operation(spec, plugin, rule: Rule, op: Operation, view_class, method: str, tag: str) -> dict:
    doc = inspect.cleandoc(getattr(view_class, method.lower()).__doc__ or "")
    summary, _, description = doc.partition("\n\n")  # PEP 257: a line, a blank line, more
    if "\n" in summary:
        raise RuntimeError(f"{op.op_id}: a one-line summary, then a blank line before more")
    result: dict = {
        "operationId": op.op_id,
        "summary": summary.rstrip("."),
        "tags": [tag],
        "responses": {
            str(status): _response(spec, status, when, op) for status, when in _statuses(op).items()
        },
    }
    if description:
        result["description"] = " ".join(description.split())
    parameters = _parameters(plugin, rule, op)
    if parameters:
        result["parameters"] = parameters
    if op.body is not None:
        name = _component(spec, op.body)
        content = {media_type: {"schema": _ref(name)} for media_type in op.body_types}
        result["requestBody"] = {"required": True, "content": content}
    result["security"] = [{"bearerAuth": []}] if op.auth else []
    if op.anonymous:
        result["security"].append({})  # OpenAPI's "or no credentials at all"
    if op.ticket:
        result["security"].append({"streamTicket": []})
    return result
