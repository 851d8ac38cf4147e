"""Request authentication: the bearer token of the Authorization header, the live caller
behind it (api/tokens.py), and role checks. Each decorator marks its operation."""

import functools

from flask import g, request

from api import ratelimit, stream_tickets, tokens
from api.errors import Forbidden, Unauthenticated
from api.http.operation import declare
from api.http.queries import QUERY_CREDENTIALS, query_names
from api.http.web import client_ip


def _bearer_token(environ: dict) -> str | None:
    header = environ.get("HTTP_AUTHORIZATION", "")  # request.headers["Authorization"]
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return None
    return token.strip()


def _authenticate() -> None:
    if "access_token" in query_names():
        raise Unauthenticated(
            "Tokens are accepted only in the Authorization header.", reason="invalid_request"
        )
    token = _bearer_token(request.environ)
    if token is None:
        raise Unauthenticated("Authentication is required.", reason=None)
    caller = tokens.live_caller(token)
    # Counted only once the session is known to be live: a revoked or stolen token must
    # not spend its user's limit and lock the user out (API.md: Sessions).
    ratelimit.enforce_api_limit(str(caller.id))
    g.caller = caller


def authenticate(view):
    """Require a valid access token of a live session; sets `g.caller`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        _authenticate()
        return view(*args, **kwargs)

    declare(wrapper).auth = True
    return wrapper


def authenticate_or_anonymous(view):
    """A valid access token as `authenticate` wants, or no Authorization header at all: then
    `g.caller` is None (the view decides what an anonymous caller may do), and the request
    counts under COFFER_RATE_LIMIT_API per client IP. A bad token is 401, never anonymous;
    so is a credential in the query string (a token, or a stream ticket off its stream)."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        if "Authorization" in request.headers or QUERY_CREDENTIALS & query_names():
            _authenticate()
        else:
            ratelimit.enforce_anonymous_api_limit(client_ip())
            g.caller = None
        return view(*args, **kwargs)

    op = declare(wrapper)
    op.auth = op.anonymous = True
    return wrapper


def authenticate_stream(view):
    """A change stream's caller: the bearer token's, as `authenticate`, or, for a browser's
    EventSource, which cannot send headers, the session of a single-use `?ticket=`."""

    @functools.wraps(view)
    def wrapper(*args, **kwargs):
        ticket = request.args.get("ticket")
        if ticket is None:
            return authenticate(view)(*args, **kwargs)
        caller = stream_tickets.redeem(ticket)
        ratelimit.enforce_api_limit(str(caller.id))
        g.caller = caller
        return view(*args, **kwargs)

    op = declare(wrapper)
    op.auth = op.ticket = True
    return wrapper


def authenticate_stream_or_anonymous(view):
    """`authenticate_stream`, or, with neither a ticket nor an Authorization header, an
    anonymous caller as `authenticate_or_anonymous` has it (a public collection's stream)."""
    streamed = authenticate_stream(view)

    @functools.wraps(streamed)
    def wrapper(*args, **kwargs):
        if "ticket" in query_names() or "Authorization" in request.headers:
            return streamed(*args, **kwargs)
        return authenticate_or_anonymous(view)(*args, **kwargs)

    declare(wrapper).anonymous = True
    return wrapper


def require_role(*roles: str):
    """Allow only these roles (as the database has them, never the token alone). Goes below
    @authenticate, which reads the caller."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if g.caller.role not in roles:
                raise Forbidden("Your role does not allow this operation.")
            return view(*args, **kwargs)

        declare(wrapper).roles = roles
        return wrapper

    return decorator
