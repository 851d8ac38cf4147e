"""Wall-clock time per request, in-process, where the database's round trips count.

    DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \\
      .venv/bin/python bench/bench_round_trips.py [--declare data.status]

The `make bench` scenarios (bench/inprocess.py: the same 10k-record collection, data.priority
indexed) called one after another through the WSGI app, timed by the wall clock rather than
CPU time, so that each wait for PostgreSQL counts: a round trip on a local socket costs more
than the CPU work of most statements. Prints the median µs per call over interleaved rounds and
its ratio to the bare-Flask ceiling measured in the same rounds, and the CPU time beside it.
`--declare data.status` then runs `flask data-index add data.status` and measures the list
again, in the same run: on PostgreSQL its statistics let the list's filter walk the
data.priority index.
"""

import argparse
import statistics
import time

from bench_list import database_url, drop_schema  # bench/ is on sys.path
from ceiling import app as ceiling_app
from inprocess import call, environ, scenarios, seed

from api import indexes
from coffer import create_app

ROUNDS = 7


def per_call(app, env: dict, calls: int) -> tuple[float, float]:
    """Wall and CPU µs per call."""
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(calls):
        call(app, env)
    return (
        (time.perf_counter() - wall) / calls * 1e6,
        (time.process_time() - cpu) / calls * 1e6,
    )


def measure(app, cases: dict, rounds: int) -> dict[str, tuple[float, float]]:
    """Median wall and CPU µs per call of each case and of the ceiling, rounds interleaved."""
    ceiling_env = environ("GET", "/", None)
    for env, _ in cases.values():  # warm: pools filled, statements prepared
        per_call(app, env, 20)
    samples = {name: [] for name in ["ceiling", *cases]}
    for _ in range(rounds):
        samples["ceiling"].append(per_call(ceiling_app, ceiling_env, 500))
        for name, (env, calls) in cases.items():
            samples[name].append(per_call(app, env, calls))
    return {
        name: (statistics.median(w for w, _ in s), statistics.median(c for _, c in s))
        for name, s in samples.items()
    }


def report(results: dict[str, tuple[float, float]]) -> None:
    ceiling_wall, ceiling_cpu = results["ceiling"]
    for name, (wall, cpu) in results.items():
        print(
            f"{name:10} wall {wall:8.1f} µs  ratio {ceiling_wall / wall:.3f}   "
            f"CPU {cpu:8.1f} µs  ratio {ceiling_cpu / cpu:.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--declare", action="append", default=[], help="data keys to index")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
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
        cases = {name: (env, max(calls // 4, 50)) for name, (env, calls) in cases.items()}
        print(f"database: {url.split(':')[0]}; per call, median of {args.rounds} rounds")
        report(measure(app, cases, args.rounds))
        if args.declare:
            for field in args.declare:
                with app.app_context():
                    print(indexes.add(field))
            report(measure(app, {"list": cases["list"]}, args.rounds))
    finally:
        if schema:
            drop_schema(schema)


if __name__ == "__main__":
    main()
