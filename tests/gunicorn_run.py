"""Coffer under real gunicorn, for the tests that run it (tests/system, tests/browser and a few
unit modules): an instance's environment, a free port, the migrations,
`gunicorn --config gunicorn.conf.py wsgi:app` started and stopped in a process group of its own,
and a small HTTP client. Standard library only."""

from __future__ import annotations

import atexit
import functools
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from helpers import bearer

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent  # the venv that runs pytest also has gunicorn and flask
# One strong key per test process, shared by the instances it starts (as in production).
SECRET_KEY = secrets.token_urlsafe(48)
# What configures Coffer: an instance takes none of it from the environment of the tests.
_COFFER_PREFIXES = ("COFFER_", "TEST_", "RATELIMIT_")
_COFFER_NAMES = {"DATABASE_URL", "REDIS_URL", "WEB_CONCURRENCY", "FLASK_APP"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def coffer_env(**settings: str) -> dict[str, str]:
    """A production instance's environment with cheap hashing and an instance folder of its
    own (a temporary one, never the repository's `instance/`), then `settings`; nothing
    inherited configures Coffer."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_COFFER_PREFIXES) and name not in _COFFER_NAMES
    }
    env.update(
        COFFER_ENV="production",
        COFFER_SECRET_KEY=SECRET_KEY,
        COFFER_ARGON2_TIME_COST="1",
        COFFER_ARGON2_MEMORY_KIB="1024",
        COFFER_ARGON2_PARALLELISM="1",
        COFFER_LOG_LEVEL="WARNING",
    )
    env.update(settings)
    env.setdefault("COFFER_INSTANCE_PATH", instance_folder())
    return env


def instance_folder() -> str:
    """A new temporary instance folder, deleted when the test process ends."""
    folder = tempfile.mkdtemp(prefix="coffer-instance-")
    atexit.register(functools.partial(shutil.rmtree, folder, ignore_errors=True))
    return folder


def migrate(env: dict[str, str]) -> None:
    """`flask db upgrade`, exactly as the Dockerfile runs it before gunicorn."""
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "db", "upgrade"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrations failed:\n{done.stdout}\n{done.stderr}")


def start_gunicorn(env: dict[str, str], log: IO[bytes], app: str = "wsgi:app") -> subprocess.Popen:
    """gunicorn with Coffer's settings, its output to `log`. `env` binds it (COFFER_BIND) and
    gives it an XDG_RUNTIME_DIR of its own: gunicorn opens a control socket there, and two
    instances must never take over each other's. `app`: another WSGI app to serve."""
    return subprocess.Popen(
        [str(BIN / "gunicorn"), "--config", "gunicorn.conf.py", app],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so that stop_gunicorn reaches workers
    )


def stop_gunicorn(process: subprocess.Popen, timeout: float = 25) -> None:
    """SIGTERM (gunicorn's graceful shutdown, given `timeout`, longer than its
    graceful_timeout), then SIGKILL to the whole group: no worker is left behind."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()


# --- HTTP ------------------------------------------------------------------------------------


@dataclass
class Reply:
    status: int
    headers: dict[str, str]  # names lower-cased
    body: bytes

    def json(self):
        return json.loads(self.body) if self.body else None

    @property
    def media_type(self) -> str:
        return self.headers.get("content-type", "").split(";")[0].strip()


def request(
    port: int,
    method: str,
    path: str,
    *,
    json_body: object = None,
    token: str | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30,
) -> Reply:
    """One request on a new connection (gunicorn's sync workers close every connection)."""
    sent = dict(headers or {})
    body = None
    if json_body is not None:
        body = json.dumps(json_body).encode()
        sent["Content-Type"] = "application/json"
    if token:
        sent.update(bearer(token))
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        received = {name.lower(): value for name, value in response.getheaders()}
        return Reply(response.status, received, response.read())
    finally:
        conn.close()
