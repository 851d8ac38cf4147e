"""Every error becomes RFC 9457 `application/problem+json` here, and only here: the HTTP
layer's own refusals (Problem), the core's domain errors, marshmallow's validation errors,
Werkzeug's HTTP errors, a database that is down, and any crash."""

import functools
from collections.abc import Callable, Mapping
from http import HTTPStatus

import flask_restful
import orjson
from flask import Flask, Response, current_app, g, request
from flask_restful.utils import unpack
from marshmallow import Schema, ValidationError, fields
from sqlalchemy.exc import IntegrityError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge
from werkzeug.wrappers import Response as ResponseBase

from api import errors

JSON = "application/json"
PROBLEM_JSON = "application/problem+json"
# RFC 9110's names where Python's HTTPStatus still has the older ones.
_TITLES = {413: "Content Too Large", 414: "URI Too Long", 422: "Unprocessable Content"}
# Headers a werkzeug exception may carry that the client needs (Allow on 405, …).
_KEPT_HEADERS = frozenset({"allow", "www-authenticate", "retry-after"})
# The status of each kind of domain error (api/errors.py).
_STATUSES: dict[type[errors.CofferError], int] = {
    errors.InvalidRequest: 400,
    errors.Unauthenticated: 401,
    errors.Forbidden: 403,
    errors.NotFound: 404,
    errors.Conflict: 409,
    errors.PreconditionFailed: 412,
    errors.RateLimited: 429,
    errors.Unavailable: 503,
}


class Problem(Exception):
    """An expected failure with an HTTP status; raised by any layer, rendered by `problem`."""

    def __init__(
        self,
        status: int,
        detail: str | None = None,
        *,
        errors: dict | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}


def problem(
    status: int,
    detail: str | None = None,
    *,
    errors: dict | None = None,
    headers: dict[str, str] | None = None,
    problem_type: str = "about:blank",
    members: dict | None = None,
) -> Response:
    """Build a problem+json response; the only place an error body is made."""
    body: dict = {
        "type": problem_type,
        "title": _TITLES.get(status) or HTTPStatus(status).phrase,
        "status": status,
        "detail": detail or HTTPStatus(status).description,
        "request_id": g.get("request_id"),
    }
    if errors is not None:
        body["errors"] = errors
    if members:
        body.update(members)
    content = orjson.dumps(body, option=orjson.OPT_APPEND_NEWLINE)
    response = current_app.response_class(content, status=status, mimetype=PROBLEM_JSON)
    if headers:
        response.headers.extend(headers)
    return response


def _from_problem(exc: Problem) -> Response:
    return problem(exc.status, exc.detail, errors=exc.errors, headers=exc.headers)


def challenge(detail: str, reason: str | None) -> str:
    """The RFC 6750 `WWW-Authenticate` challenge of a 401."""
    if reason is None:
        return 'Bearer realm="coffer"'
    return f'Bearer realm="coffer", error="{reason}", error_description="{detail}"'


def _from_domain(exc: errors.CofferError) -> Response:
    status = next(_STATUSES[kind] for kind in type(exc).__mro__ if kind in _STATUSES)
    headers = {}
    if isinstance(exc, errors.Unauthenticated):
        headers["WWW-Authenticate"] = challenge(exc.detail, exc.reason)
    elif isinstance(exc, errors.RateLimited | errors.Unavailable):
        headers["Retry-After"] = str(exc.retry_after)
    return problem(
        status,
        exc.detail,
        errors=exc.errors,
        headers=headers,
        problem_type=exc.problem_type,
        members=exc.members,
    )


def _from_http(exc: HTTPException) -> Response:
    headers = {k: v for k, v in exc.get_headers() if k.lower() in _KEPT_HEADERS}
    return problem(exc.code or 500, exc.description, headers=headers)


def _from_too_large(exc: RequestEntityTooLarge) -> Response:
    # Werkzeug's own sentence names no limit; a client needs the number to split its request.
    limit = current_app.config["COFFER_MAX_BODY_BYTES"]
    return problem(413, f"The request body is larger than {limit} bytes (COFFER_MAX_BODY_BYTES).")


def _from_validation(exc: ValidationError) -> Response:
    messages = exc.messages if isinstance(exc.messages, dict) else {"_schema": exc.messages}
    return problem(422, "The request is invalid.", errors=messages)


def _from_integrity(exc: IntegrityError) -> Response:
    current_app.logger.info("integrity error: %s", exc.orig)
    return problem(409, "The request conflicts with the current state of a resource.")


def _from_database_down(exc: Exception) -> Response:
    current_app.logger.error("database unavailable: %s", type(exc).__name__)
    return problem(503, "The database is unavailable; retry shortly.", headers={"Retry-After": "5"})


def _from_crash(exc: Exception) -> Response:
    current_app.logger.exception("unhandled exception")
    return problem(500, "An unexpected error occurred.")


def init_app(app: Flask) -> None:
    app.register_error_handler(Problem, _from_problem)
    app.register_error_handler(errors.CofferError, _from_domain)
    app.register_error_handler(HTTPException, _from_http)
    app.register_error_handler(RequestEntityTooLarge, _from_too_large)
    app.register_error_handler(ValidationError, _from_validation)
    app.register_error_handler(IntegrityError, _from_integrity)
    for exc_type in (OperationalError, InterfaceError, PoolTimeoutError):
        app.register_error_handler(exc_type, _from_database_down)
    app.register_error_handler(Exception, _from_crash)


class ProblemApi(flask_restful.Api):
    """Flask-RESTful's Api, minus its own error handling and its per-request work.

    `Api.handle_error` passes non-HTTP exceptions on to Flask only when PROPAGATE_EXCEPTIONS is
    set (testing/debug); in production it would answer a marshmallow ValidationError with
    `500 null`. Routing every error to Flask's handlers keeps one behaviour everywhere.

    Coffer answers JSON only: `representation` (data, status, headers) -> Response builds every
    body a view returns, whatever the request's Accept (Flask-RESTful negotiated it for each
    request, always to JSON). And each Resource's methods are looked up, with their
    `method_decorators` applied, once per class rather than once per request: Coffer's
    Resources keep no state, so one instance serves every request.
    """

    def __init__(self, *args, representation: Callable[..., Response], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.representation = representation
        self.representations = {JSON: representation}

    def error_router(self, original_handler, e):
        return original_handler(e)

    def output(self, resource):
        """The view of a Resource class (`resource` is its Flask view, whose attributes it
        keeps): the method of the request, its result made a Response by `representation`."""
        handlers = _handlers(resource.view_class)
        represent = self.representation

        @functools.wraps(resource)
        def view(*args, **kwargs):
            result = handlers[request.method](*args, **kwargs)
            if isinstance(result, ResponseBase):
                return result
            data, code, headers = unpack(result)
            return represent(data, code, headers)

        return view


def _handlers(resource_class: type[flask_restful.Resource]) -> dict[str, Callable]:
    """HTTP method -> the bound method that answers it, decorated by `method_decorators` (a
    list, or a dict per lower-case method), as Resource.dispatch_request does per request."""
    resource = resource_class()
    handlers = {}
    for method in resource_class.methods or ():
        handler = getattr(resource, method.lower())
        decorators = resource_class.method_decorators
        if isinstance(decorators, Mapping):
            decorators = decorators.get(method.lower(), [])
        for decorator in decorators:
            handler = decorator(handler)
        handlers[method] = handler
    if "GET" in handlers and "HEAD" not in handlers:
        handlers["HEAD"] = handlers["GET"]
    return handlers


class ProblemSchema(Schema):
    """RFC 9457 problem details, as every error is sent."""

    type = fields.String(required=True)
    title = fields.String(required=True)
    status = fields.Integer(required=True)
    detail = fields.String(required=True)
    request_id = fields.String(allow_none=True)
    errors = fields.Dict(keys=fields.String())


class MfaRequiredProblemSchema(ProblemSchema):
    """A 401 of a log-in: `type` `urn:coffer:problem:mfa-required` and these members when the
    password was right and the account has a second factor; a plain problem otherwise."""

    mfa_token = fields.String(
        metadata={"description": "Single-use, 5 minutes: POST it with a code to /sessions/mfa."}
    )
    methods = fields.List(
        fields.String(), metadata={"description": 'What the second step takes: "totp", …'}
    )


class MfaCodeProblemSchema(ProblemSchema):
    """A 401 of the second log-in step: `attempts_left` when the code was wrong (0: the
    mfa_token is dead, log in again); no such member when the mfa_token was not live."""

    attempts_left = fields.Integer(
        metadata={"description": "Wrong codes the mfa_token takes before it dies."}
    )
