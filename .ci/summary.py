"""Sum the closing lines of every pytest run in the given logs into one plain line.

pytest ends each run with a line such as `== 856 passed, 3 skipped in 80.1s ==`; a log may
hold several runs (`make test` runs the unit suite, then the system tests). A log without
any such line (a run that crashed before its summary) counts as one failure.
"""

import re
import sys
from pathlib import Path

RUN_SUMMARY = re.compile(r"^=*\s*((?:\d+ [a-z]+(?:, )?)+) in [\d.]+s")
COUNT = re.compile(r"(\d+) ([a-z]+)")


def main(paths: list[str]) -> int:
    totals = {"passed": 0, "failed": 0, "skipped": 0}
    for path in filter(lambda p: Path(p).is_file(), paths):  # no logs: CI stopped before tests
        runs = [
            match[1]
            for line in Path(path).read_text(errors="replace").splitlines()
            if (match := RUN_SUMMARY.match(line.strip()))
        ]
        if not runs:
            totals["failed"] += 1
        for run in runs:
            for number, word in COUNT.findall(run):
                key = {"error": "failed", "errors": "failed"}.get(word, word)
                if key in totals:
                    totals[key] += int(number)
    print(f"ci: {totals['passed']} passed, {totals['failed']} failed, {totals['skipped']} skipped")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
