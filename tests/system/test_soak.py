"""A bounded soak: mixed traffic over both instances, no 5xx, worker memory stable."""

import os
import time

import pytest
from harness import METRICS, rss_kib
from helpers import PASSWORD
from traffic import Load, log_in, new_email

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]
SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "60"))
CONNECTIONS = 32
# RSS growth allowed per worker between 25 % of the run and its end: either bound passes.
MAX_GROWTH_KIB = 15 * 1024
MAX_GROWTH_RATIO = 0.20


class Client:
    """One simulated user: signs up now and then, and works on its records in between."""

    def __init__(self, pair, index: int) -> None:
        self.pair = pair
        self.turn = index
        self.rounds = 0
        self.token = None

    def call(self, result, expected: int, method: str, path: str, **kwargs):
        self.turn += 1
        reply = self.pair[self.turn % 2].call(method, path, token=self.token, **kwargs)
        result.statuses[reply.status] += 1
        if reply.status != expected:
            result.other_errors.append(f"{method} {path} -> {reply.status} {reply.body[:200]!r}")
            return None
        return reply

    def sign_up(self, result) -> bool:
        self.token = None
        email = new_email("soak")
        body = {"email": email, "password": PASSWORD}
        if not self.call(result, 201, "POST", "/api/v1/users", json_body=body):
            return False
        self.turn += 1
        session = log_in(self.pair[self.turn % 2], email)
        result.statuses[session.status] += 1
        if session.status != 201:
            result.other_errors.append(f"log-in -> {session.status} {session.body[:200]!r}")
            return False
        self.token = session.json()["access_token"]
        return True

    def round(self, result) -> None:
        self.rounds += 1
        if (self.token is None or self.rounds % 25 == 0) and not self.sign_up(result):
            return
        self.call(result, 200, "GET", "/api/v1/users/me")
        created = self.call(
            result, 201, "POST", "/api/v1/data/soak", json_body={"data": {"n": self.rounds}}
        )
        if not created:
            return
        path = f"/api/v1/data/soak/{created.json()['id']}"
        self.call(result, 200, "GET", path)
        patched = self.call(
            result,
            200,
            "PATCH",
            path,
            json_body={"data": {"tag": "x" * (self.rounds % 50)}},
            headers={"If-Match": created.headers["etag"]},
        )
        self.call(result, 200, "GET", "/api/v1/data/soak?limit=5&sort=-created_at")
        if self.rounds % 5 == 0:
            self.call(result, 200, "GET", "/api/v1/data")
        if patched:
            self.call(result, 204, "DELETE", path, headers={"If-Match": patched.headers["etag"]})


def _worker_rss(pair) -> dict[int, int]:
    sizes = {pid: rss_kib(pid) for instance in pair for pid in instance.workers()}
    return {pid: size for pid, size in sizes.items() if size}


def test_mixed_load_soak_has_no_5xx_and_stable_worker_memory(pair):
    clients = [Client(pair, index) for index in range(CONNECTIONS)]
    started = time.monotonic()
    with Load(lambda index, result: clients[index].round(result), threads=CONNECTIONS) as load:
        time.sleep(SOAK_SECONDS * 0.25)
        early = _worker_rss(pair)
        time.sleep(SOAK_SECONDS * 0.75)
    elapsed = time.monotonic() - started
    late = _worker_rss(pair)

    result = load.result
    fivexx = {status: n for status, n in result.statuses.items() if status >= 500}
    kept = sorted(set(early) & set(late))
    growth = {pid: late[pid] - early[pid] for pid in kept}
    METRICS.append(
        f"soak {SOAK_SECONDS:.0f} s x {CONNECTIONS} connections: {result.requests} requests "
        f"({result.requests / elapsed:.0f}/s), statuses {dict(sorted(result.statuses.items()))}, "
        f"{len(result.connection_errors)} connection errors"
    )
    METRICS.append(
        "worker RSS KiB at 25 % -> end: "
        + ", ".join(f"{pid}: {early[pid]} -> {late[pid]}" for pid in kept)
        + f"; {len(set(early) - set(late))} worker(s) recycled meanwhile"
    )

    assert fivexx == {}, result.other_errors[:10]
    assert result.other_errors == [], result.other_errors[:10]
    assert result.connection_errors == [], result.connection_errors[:10]
    assert result.statuses[201] > 0 and result.statuses[204] > 0
    assert kept, "every worker was recycled during the soak: no memory comparison possible"
    for pid in kept:
        allowed = max(MAX_GROWTH_KIB, early[pid] * MAX_GROWTH_RATIO)
        assert growth[pid] <= allowed, f"worker {pid} grew {growth[pid]} KiB"
