"""Several versions of Coffer, each scenario of bench/inprocess.py interleaved between them.

    .venv/bin/python bench/compare.py before=/path/to/tree after=. [--slices 20]

Each NAME=TREE is a checkout (say `git worktree add` or `git archive | tar -x`) whose `api`,
`resources` and `schemas` packages are imported instead of the installed ones. One process per
tree seeds its own database and then runs short slices of each scenario in turn with the
others, so that a busy machine slows every version alike; it prints the median CPU µs per
request of each version and scenario, and the bare-Flask ceiling's.
"""

import argparse
import os
import random
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
CALLS = {"me": 300, "record": 300, "list": 30, "post": 150, "ceiling": 2000}


def start(tree: str) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve())}
    worker = subprocess.Popen(
        [sys.executable, str(HERE / "inprocess.py"), "--serve"],
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    for line in worker.stdout:
        if line.strip() == "ready":
            return worker
    raise RuntimeError(f"{tree}: the benchmark did not start")


def ask(worker: subprocess.Popen, scenario: str) -> float:
    worker.stdin.write(f"{scenario} {CALLS[scenario]}\n")
    worker.stdin.flush()
    return float(worker.stdout.readline())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("trees", nargs="+", metavar="NAME=TREE")
    parser.add_argument("--slices", type=int, default=20)
    args = parser.parse_args()
    trees = dict(entry.split("=", 1) for entry in args.trees)
    workers = {name: start(tree) for name, tree in trees.items()}
    times = {(name, scenario): [] for name in trees for scenario in CALLS}
    rng = random.Random(1)
    try:
        for _ in range(args.slices):
            for scenario in CALLS:
                order = list(workers)
                rng.shuffle(order)
                for name in order:
                    times[name, scenario].append(ask(workers[name], scenario))
    finally:
        for worker in workers.values():
            worker.stdin.close()
            worker.wait(timeout=30)
    print(f"CPU µs per request, median of {args.slices} interleaved slices")
    print(f"{'version':12}" + "".join(f"{scenario:>10}" for scenario in CALLS))
    for name in trees:
        medians = [statistics.median(times[name, scenario]) for scenario in CALLS]
        print(f"{name:12}" + "".join(f"{median:10.1f}" for median in medians))


if __name__ == "__main__":
    main()
