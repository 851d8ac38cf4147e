"""Each operation is declared once, on its Resource method, by decorators that do the work and
document it, in the spirit of APIFairy and flask-smorest:

    @authenticate
    @operation("updateMe")
    @body(user_self_update)
    @response(user_public)
    @other_responses({409: "The address is taken."})
    def patch(self, changes): ...

`body` and `arguments` load and validate, and hand the result to the view as an argument (in
the order the decorators are listed); `response` and `paginated` dump what the view returns.
`authenticate`, `require_role`, the limits, `idempotent` and `if_match` mark themselves. The
spec builder (api/http/spec.py) reads the declarations: nothing else describes an operation.
What a schema dumps, a function generated from it when the decorator runs dumps
(api/http/serializers.py): the same dicts, faster.
"""

import functools
from collections.abc import Callable
from dataclasses import dataclass, field

from flask import Response
from marshmallow import Schema, fields

from api.http.pagination import next_link, page_schema
from api.http.queries import QUERY_CREDENTIALS, load_query
from api.http.serializers import serializer
from api.http.sse import EVENT_STREAM, EventStreamBody
from api.http.web import JSON, load_body

_DECLARATION = "__coffer_operation__"


@dataclass
class Operation:
    """What one Resource method takes, answers and requires."""

    op_id: str | None = None
    links: dict[str, dict] = field(default_factory=dict)  # operationId -> link parameters
    body: Schema | None = None
    body_types: tuple[str, ...] = (JSON,)
    query: Schema | None = None
    query_parameters: tuple[dict, ...] = ()  # what no schema can say (the data filters)
    path_parameters: dict[str, fields.Field] = field(default_factory=dict)
    success: int | None = None
    schema: Schema | None = None  # of the success body; None: no body
    media_type: str = JSON  # of the success body (text/event-stream for a stream)
    also: dict[int, str] = field(default_factory=dict)  # other successes, same body -> when
    paged: bool = False  # the body is a page of `schema` items
    headers: dict[int, tuple[str, ...]] = field(default_factory=dict)
    responses: dict[int, str] = field(default_factory=dict)  # further statuses -> when
    problems: dict[int, Schema] = field(default_factory=dict)  # statuses with a richer problem
    auth: bool = False
    anonymous: bool = False  # auth is optional: no token at all is an anonymous caller
    ticket: bool = False  # a stream ticket (?ticket=) may stand in for the bearer token
    roles: tuple[str, ...] = ()
    limited: bool = False  # a per-IP limit of its own (log-in, registration, refresh)
    idempotent: bool = False
    conditional: str | None = None  # If-Match / If-None-Match
    documented: bool = True


def declaration(view: Callable) -> Operation | None:
    """The declaration of a view, or None for a view that nothing declared."""
    return getattr(view, _DECLARATION, None)


def declare(view: Callable) -> Operation:
    """The declaration of `view`, made on first use. functools.wraps copies it onto every
    wrapper, so each decorator of a method adds to one and the same declaration."""
    found = view.__dict__.get(_DECLARATION)
    if found is None:
        found = Operation()
        setattr(view, _DECLARATION, found)
    return found


def operation(op_id: str, *, links: dict[str, dict] | None = None):
    """Name the operation (its OpenAPI operationId) and the operations its answer links to."""

    def decorator(view):
        op = declare(view)
        op.op_id = op_id
        op.links = links or {}
        return view

    return decorator


def undocumented(view):
    """A route deliberately left out of the spec (the documentation page's own assets)."""
    declare(view).documented = False
    return view


def body(schema: Schema, *, media_types: tuple[str, ...] = (JSON,)):
    """Load the JSON body with `schema` (400/413/415/422 when it cannot) and pass it on."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            return view(*args, load_body(schema, media_types=media_types), **kwargs)

        op = declare(wrapper)
        op.body, op.body_types = schema, media_types
        return wrapper

    return decorator


def arguments(schema: Schema, *, parameters: tuple[dict, ...] = ()):
    """Load the query string with `schema` (400 malformed, 422 out of range) and pass it on.

    A schema without fields only refuses query parameters, and passes nothing. `parameters`
    documents query parameters that the view parses itself (the data filters).
    """

    remember = not QUERY_CREDENTIALS & schema.fields.keys()

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            loaded = load_query(schema, remember=remember)
            if not schema.fields:
                return view(*args, **kwargs)
            return view(*args, loaded, **kwargs)

        op = declare(wrapper)
        op.query, op.query_parameters = schema, parameters
        return wrapper

    return decorator


def response(
    schema: Schema | None,
    status: int = 200,
    *,
    headers: tuple[str, ...] = (),
    also: dict[int, str] | None = None,
):
    """Dump the view's result with `schema` (None: an empty body) under `status`.

    The view returns the object, or (object, headers); a Response it returns (a 304, say)
    passes through. `headers` names the response headers that the view sets. `also` names
    other statuses that answer the same body, with when (a change that only starts: 202);
    the view picks one by returning (object, headers, status).
    """

    dump = None if schema is None else serializer(schema)

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            result = view(*args, **kwargs)
            if isinstance(result, Response):
                return result
            found, extra, code = _result(result, status)
            if dump is None:
                return no_content(code, extra)
            return dump(found), code, extra

        _answers(wrapper, schema, status, headers)
        declare(wrapper).also.update(also or {})
        return wrapper

    return decorator


def _result(result, status: int) -> tuple:
    """(object, headers, status) of what a view returned."""
    if not isinstance(result, tuple):
        return result, {}, status
    return result if len(result) == 3 else (*result, status)


def event_stream(schema: Schema):
    """The view returns an iterable of api.feed.Event: answer it as Server-Sent Events, each
    event's data dumped with `schema`, unbuffered (nginx: X-Accel-Buffering)."""
    dump = serializer(schema)

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            body = EventStreamBody(view(*args, **kwargs), dump)
            headers = {"X-Accel-Buffering": "no"}
            return Response(body, mimetype=EVENT_STREAM, headers=headers, direct_passthrough=True)

        _answers(wrapper, schema, 200, ())
        declare(wrapper).media_type = EVENT_STREAM
        return wrapper

    return decorator


def paginated(schema: Schema):
    """The view returns (items, next_cursor): answer the page envelope of `schema` items, with
    `Link: rel="next"` when there is a next page."""
    dump = serializer(page_schema(schema))

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            items, next_cursor = view(*args, **kwargs)
            return dump({"items": items, "next_cursor": next_cursor}), 200, next_link(next_cursor)

        _answers(wrapper, schema, 200, ("Link",))
        declare(wrapper).paged = True
        return wrapper

    return decorator


def other_responses(responses: dict[int, str | tuple[str, Schema]]):
    """The statuses besides the success that only the view knows of (404, 409 …), with when;
    (when, schema) for a problem body with extension members beyond ProblemSchema's."""

    def decorator(view):
        op = declare(view)
        for status, when in responses.items():
            if isinstance(when, tuple):
                when, op.problems[status] = when
            also_when(op, status, when)
        return view

    return decorator


def also_when(op: Operation, status: int, when: str) -> None:
    """One more case in which the operation answers `status` (after those said already)."""
    said = op.responses.get(status)
    op.responses[status] = f"{said} {when}" if said and when not in said else when


def path_parameter(name: str, documented: fields.Field):
    """Document a path parameter that its URL converter says too little of, by the field that
    describes it (a pattern as a Regexp validator)."""

    def decorator(view):
        declare(view).path_parameters[name] = documented
        return view

    return decorator


def no_content(status: int = 204, headers: dict | None = None) -> Response:
    response = Response(status=status, headers=headers)
    del response.headers["Content-Type"]  # no body, so no media type
    return response


def _answers(view, schema: Schema | None, status: int, headers: tuple[str, ...]) -> None:
    op = declare(view)
    op.success, op.schema = status, schema
    op.headers[status] = headers


def conditional(header: str):
    """Document that the view honours a conditional header (If-Match, If-None-Match)."""

    def decorator(view):
        declare(view).conditional = header
        return view

    return decorator
