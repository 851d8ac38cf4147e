""".ci/summary.py: the last line of a CI log sums every test run and never hides a failure."""

import subprocess
import sys
from pathlib import Path

SUMMARY = Path(__file__).resolve().parent.parent / ".ci" / "summary.py"

JUNIT = """<?xml version="1.0" encoding="utf-8"?>
<testsuites errors="{errors}" failures="{failures}" skipped="0" tests="{tests}" time="1.0">
  <testsuite name="schemathesis" errors="{errors}" failures="{failures}" skipped="0"
             tests="{tests}" time="1.0" />
</testsuites>
"""


def summarise(*args) -> str:
    done = subprocess.run(
        [sys.executable, SUMMARY, *map(str, args)], capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


def test_pytest_runs_and_schemathesis_reports_add_up(tmp_path):
    (tmp_path / "sqlite.log").write_text(
        "....\n==== 10 passed, 2 skipped in 3.1s ====\n== 4 passed, 1 failed, 1 error in 9.0s ==\n"
    )
    (tmp_path / "user.xml").write_text(JUNIT.format(tests=60, failures=0, errors=0))
    (tmp_path / "admin.xml").write_text(JUNIT.format(tests=59, failures=1, errors=0))
    line = summarise(*sorted(tmp_path.iterdir()))
    assert line == "ci: 132 passed, 3 failed, 2 skipped"


def test_a_log_cut_short_before_its_summary_is_a_failure(tmp_path):
    (tmp_path / "postgresql.log").write_text("....F\nKilled\n")
    assert summarise(tmp_path / "postgresql.log") == "ci: 0 passed, 1 failed, 0 skipped"


def test_a_red_job_never_reads_zero_failed(tmp_path):
    (tmp_path / "sqlite.log").write_text("== 7 passed in 1.0s ==\n")
    log = tmp_path / "sqlite.log"
    assert summarise("--exit-status", 1, log) == "ci: 7 passed, 1 failed, 0 skipped"
    assert summarise("--exit-status", 0, log) == "ci: 7 passed, 0 failed, 0 skipped"
    assert summarise("--exit-status", 2, tmp_path / "missing.log") == (
        "ci: 0 passed, 1 failed, 0 skipped"
    )
