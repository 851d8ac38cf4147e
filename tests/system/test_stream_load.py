"""Open streams must not starve ordinary requests (API.md: Change feed): 500 streams held by one
instance on a 2-core machine while wrk measures GET /users/me, and the cap beyond them."""

import multiprocessing
import re
import shutil
import subprocess
import time

import pytest
from harness import METRICS, rss_kib
from sse_client import StreamClient
from traffic import sign_up

pytestmark = [
    pytest.mark.system,
    pytest.mark.xdist_group("system"),
    pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk not installed"),
]
STREAMS = 500
WRK_SECONDS = 8


def requests_per_second(instance, token: str) -> float:
    done = subprocess.run(
        ["wrk", "-t2", "-c16", f"-d{WRK_SECONDS}s", "-H", f"Authorization: Bearer {token}"]
        + [f"http://127.0.0.1:{instance.port}/api/v1/users/me"],
        capture_output=True,
        text=True,
        timeout=WRK_SECONDS + 30,
    )
    assert done.returncode == 0, done.stderr
    assert "Non-2xx" not in done.stdout, done.stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", done.stdout).group(1))


def memory_kib(instance) -> int:
    return sum(rss_kib(pid) or 0 for pid in [instance.master_pid, *instance.workers()])


def test_500_open_streams_keep_80_percent_of_throughput_and_the_cap_holds(fleet, shared_env):
    workers = multiprocessing.cpu_count() * 2 + 1  # gunicorn.conf.py's default
    env = {**shared_env, "WEB_CONCURRENCY": str(workers), "COFFER_MAX_STREAMS": str(STREAMS)}
    instance = fleet.start(("stream-load", env))
    instance.wait_for_workers(workers)
    account = sign_up(instance)
    headers = {"Authorization": f"Bearer {account.access_token}"}

    requests_per_second(instance, account.access_token)  # warm-up: every worker's first requests
    # Each state is measured three times and its best run counts: other work on this machine
    # (a shared 2-core host) slows a run at random, and must not decide the ratio. Streams
    # that starved requests would hold every run with them down, the best one included.
    alone = [requests_per_second(instance, account.access_token) for _ in range(2)]
    before = memory_kib(instance)

    streams = []
    try:
        for _ in range(STREAMS):
            stream = StreamClient(instance.port, "/api/v1/changes?collections=notes", headers)
            streams.append(stream)
            assert stream.status == 200, stream.buffer
            assert stream.block(10)["retry"] == "2000"
        refused = StreamClient(instance.port, "/api/v1/changes?collections=notes", headers)
        assert refused.status == 503
        assert int(refused.headers["retry-after"]) > 0
        refused.close()
        time.sleep(1)  # the streams settle: every one waits for changes
        held = memory_kib(instance)
        with_streams = [requests_per_second(instance, account.access_token) for _ in range(3)]

        # Every stream is still open and live: a write reaches a sample of them at once.
        write = instance.call(
            "POST", "/api/v1/data/notes", json_body={"data": {}}, token=account.access_token
        )
        assert write.status == 201
        for stream in streams[:: STREAMS // 10]:
            assert stream.event(timeout=5)["data"]["record"]["id"] == write.json()["id"]
    finally:
        for stream in streams:
            stream.close()
    alone.append(requests_per_second(instance, account.access_token))

    alone, with_streams = max(alone), max(with_streams)
    ratio = with_streams / alone
    per_stream = (held - before) / STREAMS
    METRICS.append(
        f"stream load ({workers} gthread workers, 2 cores): GET /users/me {alone:.0f} req/s "
        f"alone, {with_streams:.0f} req/s with {STREAMS} open streams ({ratio:.0%}); "
        f"{per_stream:.0f} KiB of memory per open stream"
    )
    assert ratio >= 0.8, f"{with_streams:.0f} req/s with streams against {alone:.0f} alone"
    assert instance.crashes() == []
