"""SQLite in WAL mode: every write that got its 201 survives kill -9 of every process."""

import threading
import time

import pytest
from gunicorn_run import migrate
from harness import METRICS, instance_env
from traffic import Load, sign_up

pytestmark = [pytest.mark.system, pytest.mark.xdist_group("system")]


def test_every_acknowledged_sqlite_write_survives_kill_9(fleet, tmp_path):
    env = instance_env(database_url=f"sqlite:///{tmp_path / 'coffer.db'}", redis_url=None)
    migrate(env)
    first = fleet.start(("sqlite", env))
    token = sign_up(first).access_token
    acknowledged: dict[str, dict] = {}
    lock = threading.Lock()

    def write(index, result):
        data = {"writer": index, "at": time.monotonic_ns()}
        reply = first.call("POST", "/api/v1/data/journal", json_body={"data": data}, token=token)
        result.statuses[reply.status] += 1
        if reply.status == 201:
            with lock:
                acknowledged[reply.json()["id"]] = data

    with Load(write, threads=4) as writers:
        time.sleep(2)
        first.kill()  # master and workers at once, mid-write
        time.sleep(0.3)

    assert set(writers.result.statuses) == {201}, writers.result.statuses
    assert len(acknowledged) >= 50
    second = fleet.start(("sqlite-after-crash", env))
    missing = []
    for record_id, data in acknowledged.items():
        reply = second.call("GET", f"/api/v1/data/journal/{record_id}", token=token)
        if reply.status != 200 or reply.json()["data"] != data:
            missing.append((record_id, reply.status))
    METRICS.append(
        f"SQLite kill -9: {len(acknowledged)} acknowledged writes, {len(missing)} missing "
        f"after restart; {len(writers.result.connection_errors)} requests cut off by the kill"
    )
    assert missing == []
