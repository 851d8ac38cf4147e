"""PostgreSQL goes away and comes back: 503s while it is gone, recovery without a restart."""

import threading
import time
from collections import Counter

import pytest
from gunicorn_run import migrate
from harness import CONNECTION_ERRORS, METRICS, instance_env, wait_for
from throwaway import ThrowawayPostgres, postgres_bindir
from traffic import Load, log_in, sign_up

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]
RECOVERY_SECONDS = 15
BLIPS = 3
# argon2 at 256 MiB: about a second per hash, spent between a log-in's SELECT and its INSERT,
# so that a log-in is reliably half-way through its transaction when PostgreSQL dies.
SLOW_HASHING = {"COFFER_ARGON2_MEMORY_KIB": "262144", "COFFER_ARGON2_TIME_COST": "3"}


@pytest.fixture
def cluster():
    bindir = postgres_bindir()
    if bindir is None:
        pytest.skip("initdb/pg_ctl not found (set TEST_PG_BINDIR)")
    cluster = ThrowawayPostgres(bindir)
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.destroy()


def _in_background(call) -> tuple[threading.Thread, dict]:
    outcome = {}

    def run() -> None:
        try:
            outcome["reply"] = call()
        except CONNECTION_ERRORS as exc:
            outcome["error"] = f"{type(exc).__name__}: {exc}"

    thread = threading.Thread(target=run)
    thread.start()
    return thread, outcome


def _assert_unavailable(reply, what: str = "") -> None:
    assert reply.status == 503, (what, reply.status, reply.body)
    assert reply.media_type == "application/problem+json"
    assert int(reply.headers["retry-after"]) > 0
    assert reply.json()["status"] == 503


def test_postgres_outage_answers_503_and_the_instance_recovers_by_itself(cluster, fleet, redis_url):
    # Four workers, eight readers: at any moment several requests are somewhere in the middle.
    env = instance_env(
        database_url=cluster.url, redis_url=redis_url, WEB_CONCURRENCY="4", **SLOW_HASHING
    )
    migrate(env)
    instance = fleet.start(("pg-outage", env), timeout=60)
    account = sign_up(instance)
    token = account.access_token
    created = instance.call("POST", "/api/v1/data/notes", json_body={"data": {"n": 1}}, token=token)
    assert created.status == 201
    record = f"/api/v1/data/notes/{created.json()['id']}"

    def read(_index, result):
        result.statuses[instance.call("GET", record, token=token).status] += 1

    # Readers run through the whole outage and recovery, so that requests are in flight when
    # PostgreSQL dies: they must only ever see 200 or 503, never a 500 or a dropped connection.
    with Load(read, threads=8) as readers:
        for _blip in range(BLIPS):  # short outages first: more requests caught half-way
            time.sleep(0.3)
            cluster.stop("immediate")
            time.sleep(0.2)
            cluster.start()
        time.sleep(0.3)
        log_in_thread, in_flight = _in_background(lambda: log_in(instance, account.email))
        time.sleep(0.3)
        cluster.stop("immediate")
        log_in_thread.join(timeout=30)
        assert "error" not in in_flight, f"in-flight log-in lost its connection: {in_flight}"
        _assert_unavailable(in_flight["reply"], "log-in in flight when PostgreSQL died")

        probes = {
            "read": lambda: instance.call("GET", record, token=token),
            "list": lambda: instance.call("GET", "/api/v1/data/notes", token=token),
            "create": lambda: instance.call(
                "POST", "/api/v1/data/notes", json_body={"data": {"n": 2}}, token=token
            ),
            "patch": lambda: instance.call(
                "PATCH", record, json_body={"data": {"n": 3}}, token=token
            ),
            "me": lambda: instance.call("GET", "/api/v1/users/me", token=token),
            "log-in": lambda: log_in(instance, account.email),
        }
        for _round in range(3):  # every worker, with its pooled connections gone stale
            for name, probe in probes.items():
                _assert_unavailable(probe(), name)
        _assert_unavailable(instance.call("GET", "/readyz"), "readyz")
        assert instance.call("GET", "/healthz").status == 200

        cluster.start()
        restarted = time.monotonic()
        recovered = wait_for(
            lambda: instance.call("GET", record, token=token).status == 200,
            timeout=RECOVERY_SECONDS,
            interval=0.2,
        )
        recovery = time.monotonic() - restarted
        assert recovered, f"not recovered {RECOVERY_SECONDS} s after PostgreSQL came back"
        time.sleep(0.3)

    for _ in range(6):
        assert instance.call("GET", record, token=token).status == 200
    assert instance.call("GET", "/readyz").status == 200
    assert log_in(instance, account.email).status == 201

    seen = readers.result
    METRICS.append(
        f"PostgreSQL outage: readers saw {dict(sorted(Counter(seen.statuses).items()))}, "
        f"{len(seen.connection_errors)} dropped connections; recovered {recovery:.1f} s after "
        "the restart (no instance restart)"
    )
    assert instance.crashes() == [], "gunicorn caught app exceptions or lost a worker"
    assert set(seen.statuses) <= {200, 503}, seen.statuses
    assert not seen.connection_errors and not seen.other_errors, seen
