"""What the per-request revocation check costs.

Compares, in one run and one process (WSGI calls, no HTTP), the CPU time of an authenticated
request (`GET /users/me`: token check + session/user lookup) with its parts, with `/healthz`
and with the bare-Flask ceiling.
Run on purpose: `.venv/bin/python bench/bench_revocation.py` (DATABASE_URL selects PostgreSQL).
"""

import statistics
import time

from bench_list import database_url, drop_schema, make_user  # bench/ is on sys.path
from ceiling import app as ceiling_app
from flask_migrate import upgrade
from inprocess import call, environ

from api.tokens import _live_caller, _verify_access_token, decode_access_token
from coffer import create_app

ROUNDS, CALLS = 7, 500


def timed(fn) -> float:
    """Median over ROUNDS of the mean CPU time of one call, in microseconds (CPU time, so that
    a busy machine does not skew it)."""
    samples = []
    for _ in range(ROUNDS):
        start = time.process_time()
        for _ in range(CALLS):
            fn()
        samples.append((time.process_time() - start) / CALLS * 1e6)
    return statistics.median(samples)


def main() -> None:
    url, schema = database_url()  # PostgreSQL: a schema of its own, dropped at the end
    try:
        measure(url)
    finally:
        if schema:
            drop_schema(schema)


def measure(url: str) -> None:
    app = create_app({"DATABASE_URL": url, "COFFER_RATE_LIMIT_API": "1000000/minute"})
    with app.app_context():
        upgrade()
        _, headers = make_user()
    token = headers["Authorization"].removeprefix("Bearer ")
    with app.test_request_context():
        claims = decode_access_token(token)
        jwt_first = timed(lambda: _verify_access_token(token))
        jwt_again = timed(lambda: decode_access_token(token))
        lookup = timed(lambda: _live_caller(claims, touch=True))
    health = timed(lambda: call(app, environ("GET", "/healthz", None)))
    me = timed(lambda: call(app, environ("GET", "/api/v1/users/me", token)))
    ceiling = timed(lambda: call(ceiling_app, environ("GET", "/", None)))
    print(f"database: {url.split(':')[0]}; CPU µs per call, median of {ROUNDS} rounds")
    print(f"bare Flask ceiling            {ceiling:8.1f}")
    print(f"GET /healthz                  {health:8.1f}  (Coffer's hooks, no auth)")
    print(f"GET /api/v1/users/me          {me:8.1f}")
    print(f"JWT verification, first use   {jwt_first:8.1f}")
    print(f"JWT, verified before (cached) {jwt_again:8.1f}")
    print(f"session+user lookup           {lookup:8.1f}  ({lookup / me:.0%} of /users/me)")


if __name__ == "__main__":
    main()
