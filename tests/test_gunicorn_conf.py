"""gunicorn.conf.py: the JSON access log, and what the master and the workers import."""

import os
import runpy
import subprocess
import sys
import types
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from gunicorn.config import Config

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


def _master_imports(app_uri: str) -> str:
    return _python(
        "import runpy, sys, types\n"
        f"conf = runpy.run_path({CONF!r})\n"
        f"server = types.SimpleNamespace(app=types.SimpleNamespace(app_uri={app_uri!r}))\n"
        "conf['on_starting'](server)\n"
        "print(' '.join(m for m in ('api', 'resources', 'wsgi') if m in sys.modules))\n"
    )


def test_the_master_imports_coffer_code_but_builds_no_app():
    assert _master_imports("wsgi:app") == "api resources"


def test_a_master_serving_another_app_imports_no_coffer_code():
    assert _master_imports("bench.ceiling:app") == ""


def test_a_worker_app_leaves_cli_and_docs_only_modules_unimported(tmp_path):
    loaded = _python(
        "import sys\n"
        "from api import create_app\n"
        "create_app()\n"
        "print(' '.join(m for m in ('yaml', 'apispec', 'api.openapi') if m in sys.modules))\n",
        DATABASE_URL=f"sqlite:///{tmp_path}/coffer.db",
        COFFER_SECRET_KEY=SECRET,
    )
    assert loaded == ""


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
