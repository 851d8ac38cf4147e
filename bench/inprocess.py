"""Coffer's own cost per request, without HTTP: each scenario of `make bench`, called in-process.

    .venv/bin/python bench/inprocess.py                 # µs per request, ratio to the ceiling
    .venv/bin/python bench/inprocess.py --profile me    # and a pyinstrument profile of one

Calls the WSGI apps directly (no sockets, no gunicorn) and counts CPU time, so it shows what
Coffer adds to what Flask itself costs, even on a busy machine: the same scenarios as
`bench/http_bench.py` against `bench/ceiling.py`, the median of interleaved rounds.
DATABASE_URL selects PostgreSQL (own schema, dropped after).
"""

import argparse
import io
import statistics
import sys
import time

import orjson
from bench_list import database_url, drop_schema  # bench/ is on sys.path
from ceiling import app as ceiling_app
from flask_migrate import upgrade

from api import indexes
from api.accounts import create_user
from api.extensions import db
from api.models import Record
from coffer import create_app

PASSWORD = "benchmark password 123"
RECORDS = 10_000
ROUNDS = 7


def seed(app) -> tuple[str, str]:
    """A user with a 10k-record collection; its access token and one record's id."""
    import random

    with app.test_request_context():
        upgrade()
        user = create_user(email="bench@example.com", password=PASSWORD)
        rng = random.Random(7)
        rows = [
            {
                "owner_id": user.id,
                "collection": "bench",
                "data": {
                    "status": rng.choice(["open", "closed"]),
                    "priority": rng.randint(1, 9),
                    "title": f"item {i}",
                },
            }
            for i in range(RECORDS)
        ]
        db.session.execute(db.insert(Record), rows)
        db.session.commit()
        indexes.add("data.priority")  # the list scenario sorts on it, as http_bench.py does
    client = app.test_client()
    credentials = {"email": "bench@example.com", "password": PASSWORD}
    token = client.post("/api/v1/sessions", json=credentials).get_json()["access_token"]
    created = client.post(
        "/api/v1/data/bench",
        json={"data": {"status": "open"}},
        headers={"Authorization": f"Bearer {token}"},
    )
    return token, created.get_json()["id"]


def environ(method: str, path: str, token: str | None, body: bytes | None = None) -> dict:
    path, _, query = path.partition("?")
    env = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_NAME": "127.0.0.1",
        "SERVER_PORT": "8000",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_HOST": "127.0.0.1:8000",
        "HTTP_USER_AGENT": "wrk",
        "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr,
        "wsgi.multithread": False,
        "wsgi.multiprocess": True,
        "wsgi.run_once": False,
    }
    if token:
        env["HTTP_AUTHORIZATION"] = f"Bearer {token}"
    if body is not None:
        env["CONTENT_TYPE"] = "application/json"
        env["CONTENT_LENGTH"] = str(len(body))
    env["_body"] = body or b""
    return env


def call(app, env: dict) -> int:
    request = dict(env)
    request["wsgi.input"] = io.BytesIO(request.pop("_body"))
    status = []
    chunks = app(request, lambda s, h, e=None: status.append(s))
    b"".join(chunks)
    if hasattr(chunks, "close"):
        chunks.close()
    return int(status[0][:3])


def per_call_us(app, env: dict, calls: int) -> float:
    """CPU time of this process per call: waiting for a busy machine's CPUs does not count."""
    start = time.process_time()
    for _ in range(calls):
        call(app, env)
    return (time.process_time() - start) / calls * 1e6


# A new record of the kind the collection holds, but closed: the list (status=open, sorted on
# -data.priority) never shows it. A record without `priority` would sort first in that
# descending order, and each POST would lengthen the list's scan.
POSTED = {"data": {"status": "closed", "priority": 5, "title": "posted"}}


def scenarios(token: str, record_id: str) -> dict[str, tuple[dict, int]]:
    body = orjson.dumps(POSTED)
    return {
        "me": (environ("GET", "/api/v1/users/me", token), 2000),
        "record": (environ("GET", f"/api/v1/data/bench/{record_id}", token), 2000),
        "list": (
            environ(
                "GET",
                "/api/v1/data/bench?data.status=eq.open&sort=-data.priority&limit=20",
                token,
            ),
            200,
        ),
        "post": (environ("POST", "/api/v1/data/bench", token, body), 1000),
    }


def serve(app, cases: dict[str, tuple[dict, int]]) -> None:
    """For bench/compare.py: each line `<scenario> <calls>` in, CPU µs per call out."""
    cases = {**cases, "ceiling": (environ("GET", "/", None), 0)}
    print("ready", flush=True)
    for line in sys.stdin:
        name, calls = line.split()
        env, _ = cases[name]
        target = ceiling_app if name == "ceiling" else app
        print(f"{per_call_us(target, env, int(calls)):.2f}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", choices=["me", "record", "list", "post"])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--serve", action="store_true", help="answer bench/compare.py")
    args = parser.parse_args()
    url, schema = database_url()
    try:
        app = create_app(
            {
                "DATABASE_URL": url,
                "COFFER_RATE_LIMIT_API": "100000000/minute",
                "COFFER_LOG_LEVEL": "WARNING",
            }
        )
        token, record_id = seed(app)
        cases = scenarios(token, record_id)
        for env, _ in cases.values():
            assert call(app, env) in (200, 201), env["PATH_INFO"]
        if args.serve:
            serve(app, cases)
            return
        if args.profile:
            from pyinstrument import Profiler

            env, calls = cases[args.profile]
            with Profiler(interval=0.0001) as profiler:
                for _ in range(calls):
                    call(app, env)
            print(profiler.output_text(unicode=True, color=False, show_all=False))
            return
        ceiling_env = environ("GET", "/", None)
        print(f"database: {url.split(':')[0]}; CPU µs per request, median of {args.rounds} rounds")
        print(f"{'scenario':10} {'Coffer µs':>10} {'ceiling µs':>11} {'ratio':>6}")
        for name, (env, calls) in cases.items():
            ours, top = [], []
            for _ in range(args.rounds):
                top.append(per_call_us(ceiling_app, ceiling_env, calls))
                ours.append(per_call_us(app, env, calls))
            ours_us, top_us = statistics.median(ours), statistics.median(top)
            print(f"{name:10} {ours_us:10.1f} {top_us:11.1f} {top_us / ours_us:6.2f}")
    finally:
        if schema:
            drop_schema(schema)


if __name__ == "__main__":
    main()
