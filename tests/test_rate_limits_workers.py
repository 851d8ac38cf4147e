"""Without Redis, rate limits hold across the worker processes of one instance: the counters
file of api/counters.py under concurrent processes, and real gunicorn with two workers.
"""

import contextlib
import http.client
import json
import multiprocessing
import os
import random
import secrets
import signal
import time
from pathlib import Path

import pytest
from gunicorn_run import coffer_env, free_port, start_gunicorn, stop_gunicorn
from limits import parse
from limits.strategies import SlidingWindowCounterRateLimiter

from api.counters import FileStorage
from api.ratelimit import _SweptMemoryStorage

PROCESSES = 6
HITS_PER_PROCESS = 20


# --- the storage ------------------------------------------------------------------------------


def hit_many(limiter, limit, start, results) -> None:
    """In a forked child: count HITS_PER_PROCESS hits at once with the other children."""
    start.wait(timeout=30)
    results.put(sum(limiter.hit(limit, "test", "one-key") for _ in range(HITS_PER_PROCESS)))


@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_processes_hitting_one_key_are_allowed_exactly_the_limit_between_them(tmp_path):
    limiter = SlidingWindowCounterRateLimiter(FileStorage(str(tmp_path / "counters")))
    limit = parse("37/day")  # a window so long that no test run crosses into the next one
    assert limiter.hit(limit, "test", "one-key")  # the parent's connection exists before fork
    forked = multiprocessing.get_context("fork")
    start, results = forked.Barrier(PROCESSES), forked.Queue()
    children = [
        forked.Process(target=hit_many, args=(limiter, limit, start, results))
        for _ in range(PROCESSES)
    ]
    for child in children:
        child.start()
    allowed = [results.get(timeout=60) for _ in children]
    for child in children:
        child.join(timeout=10)
        assert child.exitcode == 0
    assert 1 + sum(allowed) == 37, allowed
    assert limiter.get_window_stats(limit, "test", "one-key").remaining == 0
    assert not limiter.hit(limit, "test", "one-key")  # the parent's connection still works


def test_the_file_counts_exactly_as_limits_memory_storage(tmp_path, monkeypatch):
    """Same hits at the same (simulated) times: same answers, same window stats."""
    clock = [1_800_000_000.0]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    limit = parse("10/minute")
    memory = SlidingWindowCounterRateLimiter(_SweptMemoryStorage())
    shared = SlidingWindowCounterRateLimiter(FileStorage(str(tmp_path / "counters")))
    steps = random.Random(7)
    for _ in range(300):  # about five minutes of hits on two keys, some bursts, some pauses
        clock[0] += steps.choice([0.05, 0.5, 2.0, 7.0, 31.0])
        key = steps.choice(["a", "b"])
        assert shared.hit(limit, key) == memory.hit(limit, key)
        assert shared.get_window_stats(limit, key) == memory.get_window_stats(limit, key)
        assert shared.test(limit, key) == memory.test(limit, key)


# --- gunicorn ---------------------------------------------------------------------------------


def instance_env(database_url: str, port: int, run_dir: Path, **settings) -> dict[str, str]:
    """A production instance without Redis, that allows 10 log-ins a minute."""
    return coffer_env(
        **settings,
        COFFER_BIND=f"127.0.0.1:{port}",
        DATABASE_URL=database_url,
        WEB_CONCURRENCY="2",
        COFFER_RATE_LIMIT_AUTH="10/minute",
        COFFER_TRUSTED_PROXIES="1",  # the test's client address comes in X-Forwarded-For
        XDG_RUNTIME_DIR=str(run_dir),
    )


def post(port: int, path: str, body: dict, headers: dict) -> http.client.HTTPResponse:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request(
            "POST", path, json.dumps(body), {"Content-Type": "application/json", **headers}
        )
        response = connection.getresponse()
        response.read()
        return response
    finally:
        connection.close()


def answers(port: int) -> bool:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


def state_and_parent(pid: int) -> tuple[str, int] | None:
    """A process's state (R, S, T for stopped, Z…) and parent, from /proc; None once gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return fields[0], int(fields[1])


def workers_of(master: int) -> list[int]:
    """The live child processes of gunicorn's master: its workers."""
    pids = (int(entry) for entry in os.listdir("/proc") if entry.isdigit())
    return sorted(
        pid
        for pid in pids
        if (stat := state_and_parent(pid)) and stat[1] == master and stat[0] != "Z"
    )


def stop_process(pid: int) -> None:
    """SIGSTOP, and wait until the process is stopped: then it accepts no connection."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 5
    while state_and_parent(pid)[0] != "T":
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.001)


class Gunicorn:
    """`gunicorn --config gunicorn.conf.py wsgi:app` with two workers, in its own group."""

    def __init__(self, database_url: str, run_dir: Path, **settings: str) -> None:
        self.port = free_port()
        self.log_path = run_dir / "gunicorn.log"
        env = instance_env(database_url, self.port, run_dir, **settings)
        with open(self.log_path, "wb") as log:
            self.process = start_gunicorn(env, log)
        self.workers: list[int] = []

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for_both_workers(self, timeout: float = 30) -> None:
        """Until there are two workers and each one answers while the other is stopped."""
        deadline = time.monotonic() + timeout
        while len(self.workers) != 2 or not all(self.answers_on(w) for w in self.workers):
            assert self.process.poll() is None, self.log()
            assert time.monotonic() < deadline, f"two workers never answered:\n{self.log()}"
            time.sleep(0.1)
            self.workers = workers_of(self.process.pid)

    def answers_on(self, worker: int) -> bool:
        with self.only(worker):
            return answers(self.port)

    @contextlib.contextmanager
    def only(self, worker: int):
        """While in this block, only `worker` accepts connections: the other one is stopped."""
        others = [pid for pid in self.workers if pid != worker]
        for pid in others:
            stop_process(pid)
        try:
            yield
        finally:
            for pid in others:
                os.kill(pid, signal.SIGCONT)

    def stop(self) -> None:
        for worker in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(worker, signal.SIGCONT)
        stop_gunicorn(self.process)


@pytest.fixture
def gunicorn(database_url, tmp_path):
    yield from running(Gunicorn(database_url, tmp_path))


@pytest.fixture
def gunicorn_without_sender(database_url, tmp_path):
    """No mail sender threads: a worker stopped in its sender's write of the outbox would
    hold SQLite's write lock, and the other worker's requests would wait for it."""
    yield from running(Gunicorn(database_url, tmp_path, COFFER_MAIL_SENDER="off"))


def running(server: Gunicorn):
    try:
        server.wait_for_both_workers()
        yield server
    finally:
        server.stop()


def wait_clear_of_a_minute_boundary(margin: float = 5.0) -> None:
    """Windows start on the minute: near one, the last minute's hits still count in part."""
    into_minute = time.time() % 60
    if into_minute > 60 - margin:
        time.sleep(60 - into_minute + 0.1)


def test_two_gunicorn_workers_share_the_log_in_limit(gunicorn, accounts):
    user = accounts.create()
    body = {"email": user.email, "password": "not the password of this account"}
    client = {"X-Forwarded-For": f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"}
    wait_clear_of_a_minute_boundary()
    responses = []
    for n in range(12):  # the workers take turns: each sees only every other attempt
        with gunicorn.only(gunicorn.workers[n % 2]):
            responses.append(post(gunicorn.port, "/api/v1/sessions", body, client))

    statuses = [response.status for response in responses]
    assert statuses == [401] * 10 + [429] * 2, statuses
    remaining = [int(response.getheader("X-RateLimit-Remaining")) for response in responses]
    assert remaining == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 0, 0]
    assert int(responses[-1].getheader("Retry-After")) > 0


def test_two_gunicorn_workers_share_the_mail_limit_of_an_address(gunicorn_without_sender):
    """COFFER_RATE_LIMIT_MAIL (5 an hour per target address, its default) holds across the
    workers: the sixth reset for one address is refused whichever worker gets it. The
    address needs no account: unknown addresses are limited alike."""
    gunicorn = gunicorn_without_sender
    body = {"email": f"grace-{secrets.token_hex(6)}@example.com"}
    client = {"X-Forwarded-For": f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"}
    statuses = []
    for n in range(7):
        with gunicorn.only(gunicorn.workers[n % 2]):
            response = post(gunicorn.port, "/api/v1/password-resets", body, client)
        statuses.append(response.status)

    assert statuses == [202] * 5 + [429] * 2, statuses
    assert int(response.getheader("Retry-After")) > 0


def test_two_gunicorn_workers_share_the_limit_of_the_reset_confirmation(gunicorn):
    """The confirmation counts under COFFER_RATE_LIMIT_AUTH (10 a minute here) per client IP,
    across the workers: the eleventh wrong code is refused, not checked."""
    body = {"email": "grace@example.com", "code": "123456", "new_password": "a new passphrase 42"}
    client = {"X-Forwarded-For": f"2001:db8::{secrets.token_hex(2)}:{secrets.token_hex(2)}"}
    wait_clear_of_a_minute_boundary()
    statuses = []
    for n in range(12):
        with gunicorn.only(gunicorn.workers[n % 2]):
            response = post(gunicorn.port, "/api/v1/password-resets/confirm", body, client)
        statuses.append(response.status)

    assert statuses == [400] * 10 + [429] * 2, statuses
    assert int(response.getheader("Retry-After")) > 0
