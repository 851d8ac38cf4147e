"""Sum every test run of a CI job into one plain line: `ci: N passed, N failed, N skipped`.

Usage: summary.py [--exit-status N] FILE...

- A pytest log (`*.log`) may hold several runs (`make test` runs the unit suite, then the
  system tests), each closing with a line such as `== 856 passed, 3 skipped in 80.1s ==`. A log
  without any such line (a run that crashed before its summary) counts as one failure.
- A schemathesis JUnit report (`*.xml`) counts each API operation it tested as one test.
- `--exit-status` is the job's own: a job that failed outside every counted run (lint, a server
  that never started) counts as one failure, so the line never reads `0 failed` for a red job.
"""

import argparse
import re
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

RUN_SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+) in [\d.]+s")
COUNT = re.compile(r"(\d+) ([a-z]+)")


def pytest_log(path: Path, totals: dict[str, int]) -> None:
    runs = [
        match[1]
        for line in path.read_text(errors="replace").splitlines()
        if (match := RUN_SUMMARY.match(line.strip()))
    ]
    if not runs:
        totals["failed"] += 1
    for run in runs:
        for number, word in COUNT.findall(run):
            key = {"error": "failed", "errors": "failed"}.get(word, word)
            if key in totals:
                totals[key] += int(number)


def junit_report(path: Path, totals: dict[str, int]) -> None:
    try:
        root = ET.parse(path).getroot()
    except ET.ParseError:
        totals["failed"] += 1
        return
    numbers = {key: int(root.get(key, 0)) for key in ("tests", "failures", "errors", "skipped")}
    failed = numbers["failures"] + numbers["errors"]
    totals["failed"] += failed
    totals["skipped"] += numbers["skipped"]
    totals["passed"] += numbers["tests"] - failed - numbers["skipped"]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--exit-status", type=int, default=0)
    parser.add_argument("files", nargs="*")
    args = parser.parse_args(argv)
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for path in map(Path, args.files):
        if not path.is_file():  # an unmatched glob: CI stopped before that step
            continue
        (junit_report if path.suffix == ".xml" else pytest_log)(path, totals)
    if args.exit_status and not totals["failed"]:
        totals["failed"] = 1
    print(f"ci: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
