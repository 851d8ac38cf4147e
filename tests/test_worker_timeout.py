"""A worker killed at its timeout answers its in-flight requests 500 in problem+json.

gunicorn's master sends SIGABRT to a worker that has not heartbeaten for the worker timeout;
a gthread worker heartbeats from its main loop, so that happens when the whole worker stalls.
Real gunicorn with gunicorn.conf.py serves tests/stalling_app.py (one worker, a 2 s timeout):
one request in flight waits, one has started its response, and a third stalls the worker.
"""

import http.client
import json
import os
import threading
import time
from pathlib import Path

import pytest
from gunicorn_run import coffer_env, free_port, request, start_gunicorn, stop_gunicorn
from werkzeug.test import EnvironBuilder

TIMEOUT = 2  # seconds: COFFER_WORKER_TIMEOUT
PROBLEM_KEYS = {"type", "title", "status", "detail", "request_id"}


@pytest.fixture
def server(tmp_path):
    """gunicorn serving the stalling app: (port, folder of in-flight markers, log path)."""
    markers, run_dir = tmp_path / "markers", tmp_path / "run"
    markers.mkdir()
    run_dir.mkdir(mode=0o700)
    port = free_port()
    env = coffer_env(
        COFFER_BIND=f"127.0.0.1:{port}",
        WEB_CONCURRENCY="1",
        COFFER_WORKER_TIMEOUT=str(TIMEOUT),
        COFFER_LOG_LEVEL="INFO",
        STALL_MARKERS=str(markers),
        XDG_RUNTIME_DIR=str(run_dir),
    )
    env["PYTHONPATH"] = os.pathsep.join(filter(None, ["tests", env.get("PYTHONPATH")]))
    log = tmp_path / "gunicorn.log"
    with open(log, "wb") as output:
        process = start_gunicorn(env, output, app="stalling_app:app")
    try:
        wait_for(lambda: answers(port), process, log)
        yield port, markers, log, process
    finally:
        stop_gunicorn(process, timeout=5)


def answers(port: int) -> bool:
    try:
        return request(port, "GET", "/ok", timeout=2).status == 200
    except OSError:
        return False


def wait_for(condition, process, log: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert process.poll() is None, log.read_text(errors="replace")
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.05)


class Exchange(threading.Thread):
    """One GET on a connection of its own, in the background: the status, headers and body
    it got, or the error that ended it."""

    def __init__(self, port: int, path: str, request_id: str) -> None:
        super().__init__(daemon=True)
        self.port, self.path, self.request_id = port, path, request_id
        self.status: int | None = None
        self.headers: dict[str, str] = {}
        self.body = b""
        self.error: Exception | None = None
        self.seconds = 0.0

    def run(self) -> None:
        started = time.monotonic()
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            connection.request("GET", self.path, headers={"X-Request-ID": self.request_id})
            response = connection.getresponse()
            self.status = response.status
            self.headers = {name.lower(): value for name, value in response.getheaders()}
            self.body = response.read()
        except Exception as error:  # noqa: BLE001  (what ended it is the result)
            self.error = error
        finally:
            self.seconds = time.monotonic() - started
            connection.close()


def test_a_worker_killed_at_its_timeout_answers_its_in_flight_requests_500(server):
    port, markers, log, process = server
    waiting = Exchange(port, "/wait", "waiting-1")
    started = Exchange(port, "/partial", "started-1")
    for exchange in (waiting, started):
        exchange.start()
        wait_for(lambda e=exchange: (markers / e.request_id).exists(), process, log)
    stalling = Exchange(port, "/stall", "stalling-1")
    stalling.start()
    for exchange in (waiting, started, stalling):
        exchange.join(timeout=20)
        assert not exchange.is_alive(), f"{exchange.path}: still no answer"

    for exchange in (waiting, stalling):
        assert exchange.error is None, (exchange.path, exchange.error)
        assert exchange.status == 500, (exchange.path, exchange.status, exchange.body)
        assert exchange.headers["content-type"] == "application/problem+json"
        assert exchange.headers["x-request-id"] == exchange.request_id
        assert exchange.headers["connection"] == "close"
        assert exchange.body.endswith(b"}\n")
        problem = json.loads(exchange.body)
        assert problem.keys() == PROBLEM_KEYS
        assert (problem["status"], problem["title"]) == (500, "Internal Server Error")
        assert problem["request_id"] == exchange.request_id
        assert f"over {TIMEOUT} s" in problem["detail"]
        assert exchange.seconds < 30  # answered when the worker was killed, not at 60 s

    # Its response had started: cut short, never a 500 written into it.
    assert started.status == 200
    assert isinstance(started.error, http.client.IncompleteRead), started.error
    assert b"problem" not in started.error.partial

    text = log.read_text(errors="replace")
    assert "WORKER TIMEOUT" in text
    assert "2 in-flight request(s) answered 500" in text
    wait_for(lambda: answers(port), process, log)  # a new worker serves again


def test_coffers_app_puts_the_request_id_in_the_wsgi_environ(app):
    """Where the worker finds it: in the environ gunicorn passed, as the app answered it."""
    for sent in ({"X-Request-ID": "trace-7"}, {}):
        environ = EnvironBuilder(path="/healthz", headers=sent).get_environ()
        answered = {}
        body = app(environ, lambda status, headers, a=answered: a.update(headers, status=status))
        b"".join(body)
        assert answered["status"].startswith("200")
        assert environ["coffer.request_id"] == answered["X-Request-ID"]
    assert environ["coffer.request_id"] != "trace-7"
