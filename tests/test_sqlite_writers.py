"""SQLite's record writers queue on a lock beside the database file (api/database/writers.py),
across the host's processes, instead of sleeping in SQLite's busy handler."""

import fcntl
import os
import subprocess
import sys
import threading

import pytest
from helpers import API

from api.extensions import db


@pytest.fixture
def lock_path(app) -> str:
    with app.app_context():
        if db.engine.dialect.name != "sqlite":
            pytest.skip("PostgreSQL's writers run in parallel")
        return db.engine.url.database + "-writers.lock"


def test_a_record_write_waits_for_the_writer_of_another_process(app, client, user, lock_path):
    client.post(f"{API}/data/tasks", json={"data": {"n": 0}}, headers=user.headers)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys; fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT);"
            "fcntl.flock(fd, fcntl.LOCK_EX); print('held', flush=True); sys.stdin.read()",
            lock_path,
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        answers = []
        writer = threading.Thread(
            target=lambda: answers.append(
                client.post(f"{API}/data/tasks", json={"data": {"n": 1}}, headers=user.headers)
            )
        )
        writer.start()
        writer.join(1.0)
        assert writer.is_alive() and not answers, "the write did not wait for its turn"
        assert client.get(f"{API}/users/me", headers=user.headers).status_code == 200  # reads go on
    finally:
        holder.stdin.close()
        holder.wait(5)
        holder.stdout.close()
    writer.join(5)
    assert answers[0].status_code == 201
    listed = client.get(f"{API}/data/tasks", headers=user.headers).get_json()["items"]
    assert sorted(item["data"]["n"] for item in listed) == [0, 1]


def test_the_lock_is_free_again_after_a_write_and_after_a_refused_one(client, user, lock_path):
    created = client.post(f"{API}/data/tasks", json={"data": {"n": 0}}, headers=user.headers)
    url = f"{API}/data/tasks/{created.get_json()['id']}"
    stale = client.delete(url, headers={**user.headers, "If-Match": '"stale"'})
    assert stale.status_code == 412
    fd = os.open(lock_path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # BlockingIOError if still held
    finally:
        os.close(fd)
