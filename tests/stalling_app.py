"""A tiny WSGI app whose requests stall, for tests/test_worker_timeout.py under real gunicorn.

A gthread worker heartbeats from its main loop, so the worker timeout fires only when that
loop stalls, not when one request is slow. `GET /stall` stalls it: SIGUSR2 makes the worker's
main thread sleep in a signal handler (as a long call holding it would), while the request
itself sleeps too. Other paths stay in flight meanwhile: `GET /wait` sleeps before answering,
`GET /partial` sends its headers and a first chunk, then sleeps.

Each request puts its request id where Coffer's app puts it (the sent X-Request-ID, else a
new one), and, once in flight, a file named after it in $STALL_MARKERS, for the test to see.
"""

import os
import signal
import time
import uuid
from pathlib import Path

REQUEST_ID = "coffer.request_id"  # api/http/web.py's key in the WSGI environ
SLEEP = 60  # seconds: far longer than the worker timeout of the test


def _stall_main_thread(signum, frame) -> None:
    time.sleep(SLEEP)


signal.signal(signal.SIGUSR2, _stall_main_thread)  # imported in the worker's main thread


def app(environ, start_response):
    path = environ["PATH_INFO"]
    environ[REQUEST_ID] = environ.get("HTTP_X_REQUEST_ID") or uuid.uuid4().hex
    if path == "/ok":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "3")])
        return [b"ok\n"]
    Path(os.environ["STALL_MARKERS"], environ[REQUEST_ID]).touch()
    if path == "/stall":
        os.kill(os.getpid(), signal.SIGUSR2)
        time.sleep(SLEEP)
    elif path == "/wait":
        time.sleep(SLEEP)
    elif path == "/partial":
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "100")])
        return _partial()
    start_response("204 No Content", [])
    return []


def _partial():
    yield b"first chunk\n"
    time.sleep(SLEEP)
    yield b"never sent\n"
