"""What the per-request revocation check costs.

Compares, in one run and one process, the time of an authenticated request (`GET /users/me`:
JWT verification + session/user lookup) with the JWT verification alone and with `/healthz`.
Run on purpose: `.venv/bin/python bench/bench_revocation.py` (DATABASE_URL selects PostgreSQL).
"""

import os
import statistics
import tempfile
import time

from bench_list import make_user  # a user with one live session (bench/ is on sys.path)
from flask_migrate import upgrade

from api import create_app
from api.auth import _live_caller, decode_access_token

ROUNDS, CALLS = 7, 500


def timed(fn) -> float:
    """Median over ROUNDS of the mean time of one call, in microseconds."""
    samples = []
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for _ in range(CALLS):
            fn()
        samples.append((time.perf_counter() - start) / CALLS * 1e6)
    return statistics.median(samples)


def main() -> None:
    url = os.environ.get("DATABASE_URL") or f"sqlite:///{tempfile.mkdtemp()}/bench.db"
    app = create_app({"DATABASE_URL": url, "COFFER_RATE_LIMIT_API": "1000000/minute"})
    with app.app_context():
        upgrade()
        _, headers = make_user()
    client = app.test_client()
    token = headers["Authorization"].removeprefix("Bearer ")
    with app.test_request_context():
        claims = decode_access_token(token)
        jwt_only = timed(lambda: decode_access_token(token))
        lookup = timed(lambda: _live_caller(claims, touch=True))
    health = timed(lambda: client.get("/healthz"))
    me = timed(lambda: client.get("/api/v1/users/me", headers=headers))
    print(f"database: {url.split(':')[0]}")
    print(f"JWT verification      {jwt_only:8.1f} µs")
    print(f"session+user lookup   {lookup:8.1f} µs")
    print(f"GET /healthz          {health:8.1f} µs  (baseline)")
    print(f"GET /api/v1/users/me  {me:8.1f} µs  ratio to /healthz {me / health:.2f}")
    print(f"lookup share of /users/me: {lookup / me:.0%}")


if __name__ == "__main__":
    main()
