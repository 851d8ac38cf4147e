"""gunicorn.conf.py: the JSON access log, what the master and the workers import, and the
problem+json answers of the worker class to what gunicorn refuses itself."""

import os
import runpy
import socket
import subprocess
import sys
import types
from datetime import timedelta
from http import HTTPStatus
from pathlib import Path

import orjson
import pytest
from gunicorn.config import Config
from gunicorn.glogging import Logger
from gunicorn.http.errors import (
    InvalidRequestLine,
    LimitRequestHeaders,
    LimitRequestLine,
    UnsupportedTransferCoding,
)
from gunicorn.workers.gthread import ThreadWorker

ROOT = Path(__file__).resolve().parent.parent
CONF = str(ROOT / "gunicorn.conf.py")
SECRET = "test-signing-key-" + "x7Qp2Lm9" * 6


def _python(code: str, **env: str) -> str:
    """Run `code` in a fresh interpreter (imports and gc.freeze() stay out of this process)."""
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


def _master_imports(
    app_uri: str, instance: Path, modules=("coffer", "api", "resources", "wsgi"), **env: str
) -> str:
    """Which of `modules` (by default Coffer's) gunicorn's master has imported once started
    (its bootstrap builds an app: in `instance`, never the repository's instance/)."""
    return _python(
        "import runpy, sys, types\n"
        f"conf = runpy.run_path({CONF!r})\n"
        f"server = types.SimpleNamespace(app=types.SimpleNamespace(app_uri={app_uri!r}))\n"
        "conf['on_starting'](server)\n"
        f"print(' '.join(m for m in {tuple(modules)!r} if m in sys.modules))\n",
        **{"COFFER_INSTANCE_PATH": str(instance), **env},
    )


def test_the_settings_import_no_flask():
    """The worker class lives in the settings, and the master that loads them stays light."""
    code = f"import runpy, sys\nrunpy.run_path({CONF!r})\nprint('flask' in sys.modules)"
    assert _python(code) == "False"


def test_the_master_imports_coffer_code_but_builds_no_app(tmp_path):
    assert _master_imports("wsgi:app", tmp_path) == "coffer api resources"


def test_a_master_serving_another_app_imports_no_coffer_code(tmp_path):
    assert _master_imports("bench.ceiling:app", tmp_path) == ""


def test_the_master_imports_the_clients_of_the_configured_services_only(tmp_path, monkeypatch):
    """Shared with the workers when configured; otherwise neither imports them."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)
    clients = ("psycopg", "redis", "flask_migrate")
    assert _master_imports("wsgi:app", tmp_path, clients) == ""
    postgres = "postgresql://coffer@127.0.0.1:1/coffer"  # the master connects to nothing
    configured = _master_imports(
        "wsgi:app", tmp_path, clients, DATABASE_URL=postgres, REDIS_URL="redis://127.0.0.1:1/0"
    )
    assert configured == "psycopg redis"


# What a worker on SQLite without Redis never needs to serve: the spec's builder (its route
# serves openapi.yaml), the migrations (`flask db`), Redis's and PostgreSQL's clients, and the
# libraries of MFA's enrolment and codes, imported at their first use.
NOT_FOR_SERVING = (
    "yaml",
    "apispec",
    "api.http.spec",
    "flask_migrate",
    "alembic",
    "redis",
    "psycopg",
    "pyotp",
    "segno",
)


def _worker_imports(tmp_path: Path, code: str = "", **env: str) -> set[str]:
    """Which of NOT_FOR_SERVING a process has imported once it built a worker's app (as
    gunicorn's master and worker do: wsgi imports coffer, the factory builds the app), then
    ran `code`."""
    loaded = _python(
        "import sys\n"
        "from coffer import create_app\n"
        f"app = create_app(instance_path={str(tmp_path)!r})\n"
        f"{code}\n"
        f"print(' '.join(m for m in {NOT_FOR_SERVING!r} if m in sys.modules))\n",
        **{"DATABASE_URL": f"sqlite:///{tmp_path}/coffer.db", "COFFER_SECRET_KEY": SECRET, **env},
    )
    return set(loaded.split())


def test_a_worker_app_leaves_cli_and_docs_only_modules_unimported(tmp_path, monkeypatch):
    monkeypatch.delenv("REDIS_URL", raising=False)
    monkeypatch.delenv("FLASK_RUN_FROM_CLI", raising=False)
    assert _worker_imports(tmp_path) == set()


def test_redis_is_imported_only_with_a_redis_url(tmp_path, monkeypatch):
    monkeypatch.delenv("FLASK_RUN_FROM_CLI", raising=False)
    # A client is made, not connected: no Redis server is needed to build the app.
    loaded = _worker_imports(tmp_path, REDIS_URL="redis://127.0.0.1:1/0")
    assert loaded == {"redis"}


def test_the_flask_command_binds_the_migrations(tmp_path, monkeypatch):
    """Under the `flask` command the app has its migrations (`flask db upgrade`); a process
    that imported Flask-Migrate to migrate in-process (the tests' conftest) has them too."""
    monkeypatch.delenv("REDIS_URL", raising=False)
    check = "assert 'migrate' in app.extensions"
    assert {"flask_migrate", "alembic"} <= _worker_imports(
        tmp_path, check, FLASK_RUN_FROM_CLI="true"
    )
    code = "import flask_migrate\napp = create_app(instance_path=app.instance_path)\n" + check
    _worker_imports(tmp_path, code)


@pytest.fixture
def access_lines(monkeypatch):
    conf = runpy.run_path(CONF)
    assert isinstance(conf["logger_class"], type)
    config = Config()
    config.set("accesslog", "-")
    logger = conf["logger_class"](config)
    lines = []
    monkeypatch.setattr(logger.access_log, "info", lines.append)

    def log(resp) -> dict:
        environ = {
            "REMOTE_ADDR": "203.0.113.9",
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/healthz",
            "HTTP_USER_AGENT": "pytest",
        }
        logger.access(resp, None, environ, timedelta(milliseconds=12.345))
        return orjson.loads(lines.pop())

    return log


def test_access_log_is_one_json_line_per_request(access_lines):
    resp = types.SimpleNamespace(
        headers=[("Content-Type", "application/json"), ("X-Request-ID", "abc-123")],
        status_code=200,
        status="200 OK",
        sent=17,
    )
    entry = access_lines(resp)
    assert entry["logger"] == "gunicorn.access"
    assert entry["request_id"] == "abc-123"
    assert (entry["method"], entry["path"], entry["status"]) == ("GET", "/healthz", 200)
    assert (entry["bytes"], entry["duration_ms"]) == (17, 12.35)
    assert (entry["remote_addr"], entry["user_agent"]) == ("203.0.113.9", "pytest")


def test_access_log_reads_the_status_of_gunicorns_own_error_responses(access_lines):
    resp = types.SimpleNamespace(headers=[], status="500 Internal Server Error", sent=0)
    entry = access_lines(resp)
    assert entry["status"] == 500
    assert entry["request_id"] is None


# --- what gunicorn refuses itself -------------------------------------------------------------


def test_the_workers_are_gthread_workers_with_a_thread_for_every_stream(monkeypatch):
    monkeypatch.setenv("COFFER_THREADS", "3")
    monkeypatch.setenv("COFFER_MAX_STREAMS", "50")
    conf = runpy.run_path(CONF)
    assert issubclass(conf["worker_class"], conf["ProblemErrors"])
    assert issubclass(conf["worker_class"], ThreadWorker)
    # Every stream the instance may hold fits in any one worker, and 3 threads stay for requests.
    assert conf["threads"] == 53


def _refusal(worker_class_name: str, exc: BaseException) -> tuple[str, dict, bytes]:
    """What a worker of the settings' class writes for `exc`: status line, headers, body."""
    conf = runpy.run_path(CONF)
    config = Config()
    for name in ("limit_request_line", "limit_request_fields", "limit_request_field_size"):
        config.set(name, conf[name])
    worker = object.__new__(conf[worker_class_name])  # no process, no sockets: just the method
    worker.cfg, worker.log = config, Logger(config)
    server, client = socket.socketpair()
    with server, client:
        worker.handle_error(None, server, ("203.0.113.9", 40000), exc)
        server.shutdown(socket.SHUT_WR)
        received = b"".join(iter(lambda: client.recv(65536), b""))
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return status_line, headers, body


@pytest.mark.parametrize("worker_class_name", ["ProblemThreadWorker"])
@pytest.mark.parametrize(
    "exc, status, title, detail",
    [
        (LimitRequestLine(9000, 8190), 414, "URI Too Long", "longer than 8190 bytes"),
        (LimitRequestHeaders("limit request headers fields"), 431, None, "100 header fields"),
        (InvalidRequestLine("GARBAGE"), 400, "Bad Request", "GARBAGE"),
        (UnsupportedTransferCoding("gzip"), 501, "Not Implemented", "gzip"),
        (RuntimeError("secret internals"), 500, None, "An unexpected error occurred."),
    ],
    ids=["request-line", "headers", "malformed", "transfer-coding", "crash"],
)
def test_gunicorns_own_errors_are_problem_json(worker_class_name, exc, status, title, detail):
    title = title or HTTPStatus(status).phrase
    status_line, headers, body = _refusal(worker_class_name, exc)
    assert status_line == f"HTTP/1.1 {status} {title}"
    assert headers["Content-Type"] == "application/problem+json"
    assert headers["Content-Length"] == str(len(body)) and body.endswith(b"}\n")
    assert (headers["Connection"], headers["X-Content-Type-Options"]) == ("close", "nosniff")
    problem = orjson.loads(body)
    assert detail in problem.pop("detail")
    assert problem == {
        "type": "about:blank",
        "title": title,
        "status": status,
        "request_id": headers["X-Request-ID"],
    }
    assert b"secret" not in body and len(headers["X-Request-ID"]) == 32
