"""Rate limits over HTTP: the per-IP limit of the auth routes, and which window a request was
counted in the X-RateLimit headers show: the tightest (api/ratelimit.py counts; the response's
finishing step in api/http/web.py writes the headers)."""

import functools

from flask import Flask, g

from api import ratelimit
from api.http.operation import also_when, declare
from api.http.web import client_ip


def auth_limit(scope: str):
    """Limit a view by COFFER_RATE_LIMIT_AUTH per client IP, on the counter `scope`."""

    def decorator(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            ratelimit.enforce_auth_limit(scope, client_ip())
            return view(*args, **kwargs)

        declare(wrapper).limited = True
        return wrapper

    return decorator


LOG_IN_LIMIT = (
    "Over the account's log-in limit (COFFER_RATE_LIMIT_AUTH per account): every password or "
    "code that this route checks counts under it, right or wrong, as a log-in does."
)


def log_in_limit(view):
    """Document that the view counts the password or code it checks under the account's log-in
    limit (API.md: Sessions), so that a token is no way around it. The counting is the
    service's (api/passwords.py, api/mfa.py, api/sessions.py), where the account is known."""
    also_when(declare(view), 429, LOG_IN_LIMIT)
    return view


def _shown(window: ratelimit.Window) -> None:
    """Keep the window that the headers show: the tightest, or the one that refused."""
    shown = g.get("rate_window")
    if (
        shown is None
        or not window.allowed
        or (shown.allowed and window.remaining < shown.remaining)
    ):
        g.rate_window = window


def init_app(app: Flask) -> None:
    ratelimit.counted.connect(_shown)  # web.py's finishing step shows g.rate_window
