"""Coffer against the bare-Flask ceiling, under wrk, on the same gunicorn settings.

    .venv/bin/python bench/http_bench.py [--db sqlite|postgres|both] [--duration 8] [--rounds 3]

Starts gunicorn with bench/ceiling.py and with Coffer, interleaves wrk runs (ceiling, Coffer,
ceiling, …) and prints requests/s, p50/p99 latency and the ratio to the ceiling measured in the
same round, the median over rounds, plus log-in time and peak RSS per worker.
"""

import argparse
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
import urllib.request
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent
VENV = Path(sys.executable).parent
PASSWORD = "benchmark password 123"
POSTGRES = os.environ.get("BENCH_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
# As bench/inprocess.py's: a closed record with the keys the list filters and sorts on.
POSTED = {"data": {"status": "closed", "priority": 5, "title": "posted"}}
RECORDS = 10_000


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(app: str, port: int, env: dict) -> subprocess.Popen:
    env = {**os.environ, **env, "COFFER_BIND": f"127.0.0.1:{port}"}
    process = subprocess.Popen(
        [
            str(VENV / "gunicorn"),
            "--config",
            "gunicorn.conf.py",
            "--access-logfile",
            "/dev/null",
            app,
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    for _ in range(100):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1)
            return process
        except urllib.error.HTTPError:
            return process  # answering (Coffer's / is a 404)
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{app} did not start")


def stop(process: subprocess.Popen) -> None:
    os.killpg(process.pid, signal.SIGTERM)
    process.wait(timeout=20)


def peak_rss_mb(process: subprocess.Popen) -> float:
    workers = subprocess.run(["pgrep", "-P", str(process.pid)], capture_output=True, text=True)
    peaks = []
    for pid in workers.stdout.split():
        status = Path(f"/proc/{pid}/status").read_text()
        peaks.append(int(re.search(r"VmHWM:\s+(\d+)", status).group(1)) / 1024)
    return max(peaks)


def call(method: str, url: str, body: dict | None = None, token: str | None = None) -> dict:
    request = urllib.request.Request(url, method=method, data=orjson.dumps(body) if body else None)
    request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request) as response:
        return orjson.loads(response.read() or b"null")


def wrk(url: str, *, duration: int, connections: int, script: str | None = None) -> dict:
    command = ["wrk", "-t2", f"-c{connections}", f"-d{duration}s", "--latency", url]
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as lua:
        if script:
            lua.write(script)
            lua.flush()
            command += ["-s", lua.name]
        out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    return {
        "rps": rps,
        "p50": _ms(re.search(r"50%\s+([\d.]+\w+)", out).group(1)),
        "p99": _ms(re.search(r"99%\s+([\d.]+\w+)", out).group(1)),
        "errors": int(errors.group(1)) if errors else 0,
    }


def _ms(value: str) -> float:
    number, unit = re.match(r"([\d.]+)(\w+)", value).groups()
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def lua(method: str, token: str, body: dict | None = None) -> str:
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body is not None:
        lines += [
            'wrk.headers["Content-Type"] = "application/json"',
            f"wrk.body = [[{orjson.dumps(body).decode()}]]",
        ]
    return "\n".join(lines) + "\n"


def seed(database_url: str) -> None:
    """Migrate; a user with a 10k-record collection, inserted in bulk; its keys declared."""
    env = {**os.environ, "DATABASE_URL": database_url}
    subprocess.run(
        [str(VENV / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
    )
    script = textwrap.dedent(f"""
        import random
        from coffer import create_app
        from api.accounts import create_user
        from api.extensions import db
        from api.models import Record
        app = create_app({{"DATABASE_URL": {database_url!r}}})
        with app.app_context():
            user = create_user(email="bench@example.com", password={PASSWORD!r})
            rng = random.Random(7)
            rows = [{{"owner_id": user.id, "collection": "bench",
                      "data": {{"status": rng.choice(["open", "closed"]),
                               "priority": rng.randint(1, 9), "title": f"item {{i}}"}}}}
                    for i in range({RECORDS})]
            db.session.execute(db.insert(Record), rows)
            db.session.commit()
    """)
    subprocess.run([sys.executable, "-c", script], cwd=ROOT, env=env, check=True)
    # The list scenario filters on data.status and sorts on data.priority: declare both, as an
    # operator would (README): an index for the sort, planner statistics for the filter.
    for key in ("data.priority", "data.status"):
        subprocess.run(
            [str(VENV / "flask"), "--app", "wsgi", "data-index", "add", key],
            cwd=ROOT,
            env=env,
            check=True,
            capture_output=True,
        )


def database_urls(choice: str) -> dict[str, str]:
    urls = {}
    if choice in ("sqlite", "both"):
        urls["sqlite"] = f"sqlite:///{tempfile.mkdtemp(prefix='coffer-bench-')}/bench.db"
    if choice in ("postgres", "both"):
        schema = f"bench_{os.getpid()}"
        import sqlalchemy as sa

        engine = sa.create_engine(POSTGRES)
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
            conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
        urls["postgres"] = f"{POSTGRES}?options=-csearch_path%3D{schema}"
    return urls


def run(name: str, url: str, args) -> None:
    seed(url)
    env = {
        "DATABASE_URL": url,
        "COFFER_RATE_LIMIT_API": "100000000/minute",
        "COFFER_RATE_LIMIT_AUTH": "100000000/minute",
        "WEB_CONCURRENCY": str(args.workers),
        "COFFER_LOG_LEVEL": "WARNING",
    }
    ceiling_port, coffer_port = free_port(), free_port()
    ceiling = start("bench.ceiling:app", ceiling_port, env)
    coffer = start("wsgi:app", coffer_port, env)
    base = f"http://127.0.0.1:{coffer_port}/api/v1"
    try:
        started = time.perf_counter()
        token = call(
            "POST", f"{base}/sessions", {"email": "bench@example.com", "password": PASSWORD}
        )["access_token"]
        record = call("POST", f"{base}/data/bench", {"data": {"status": "open"}}, token)
        scenarios = {
            "GET /users/me": (f"{base}/users/me", lua("GET", token)),
            "GET record": (f"{base}/data/bench/{record['id']}", lua("GET", token)),
            "GET list-20 (10k)": (
                f"{base}/data/bench?data.status=eq.open&sort=-data.priority&limit=20",
                lua("GET", token),
            ),
            "POST record": (f"{base}/data/bench", lua("POST", token, POSTED)),
        }
        print(
            f"\n== {name}: {args.workers} workers, {args.connections} connections, "
            f"{args.duration}s × {args.rounds} rounds "
            f"(first log-in {time.perf_counter() - started:.2f}s)"
        )
        ceiling_url = f"http://127.0.0.1:{ceiling_port}/"
        print(
            f"{'scenario':22} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'ceiling':>9} {'ratio':>6}"
            f" {'p99/p50':>7} {'ceiling p50/p99':>16}"
        )
        for label, (url_, script) in scenarios.items():
            rounds = []
            for _ in range(args.rounds):
                top = wrk(ceiling_url, duration=args.duration, connections=args.connections)
                got = wrk(url_, duration=args.duration, connections=args.connections, script=script)
                rounds.append((got, top))
            ratio = statistics.median(g["rps"] / t["rps"] for g, t in rounds)
            got = {k: statistics.median(g[k] for g, _ in rounds) for k in ("rps", "p50", "p99")}
            top = statistics.median(t["rps"] for _, t in rounds)
            # The ceiling's own latencies: the tail that the machine and the server add to any app.
            tail = {k: statistics.median(t[k] for _, t in rounds) for k in ("p50", "p99")}
            errors = sum(g["errors"] for g, _ in rounds)
            print(
                f"{label:22} {got['rps']:9.0f} {got['p50']:8.2f} {got['p99']:8.2f} "
                f"{top:9.0f} {ratio:6.2f} {got['p99'] / got['p50']:7.1f} "
                f"{tail['p50']:7.2f}/{tail['p99']:<8.2f}"
                + (f"  ({errors} non-2xx!)" if errors else "")
            )
        login = wrk(
            f"{base}/sessions",
            duration=args.duration,
            connections=2,
            script='wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
            f'wrk.body = [[{{"email": "bench@example.com", "password": "{PASSWORD}"}}]]\n',
        )
        print(
            f"{'POST /sessions':22} {login['rps']:9.1f} {login['p50']:8.1f} {login['p99']:8.1f}"
            f"   (log-in, 2 connections: ms per log-in = p50)"
        )
        print(
            f"peak RSS per worker: Coffer {peak_rss_mb(coffer):.0f} MB, "
            f"ceiling {peak_rss_mb(ceiling):.0f} MB"
        )
    finally:
        stop(coffer)
        stop(ceiling)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--duration", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--workers", type=int, default=(os.cpu_count() or 1) * 2 + 1)
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is needed: apt-get install wrk")
    print(f"machine: {os.cpu_count()} cores, {os.uname().sysname} {os.uname().release}")
    urls = database_urls(args.db)
    try:
        for name, url in urls.items():
            run(name, url, args)
    finally:
        if "postgres" in urls:
            drop_schema(f"bench_{os.getpid()}")


def drop_schema(schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(POSTGRES)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    engine.dispose()


if __name__ == "__main__":
    main()
