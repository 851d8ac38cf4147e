"""The apps the tests build keep their instance folder (secret key, signing keys, rate-limit
counters) where they are told: building one leaves the repository's instance/ alone.
COFFER_INSTANCE_PATH tells it to create_app(), wsgi.py and so to gunicorn.

Flask's default instance folder is moved here to a folder that does not exist yet, standing
for the repository's instance/: an app that so much as created it would show. A real gunicorn
(another process) is checked against the repository's instance/ itself.
"""

import subprocess
import sys
import time
from pathlib import Path

import flask
import pytest
from gunicorn_run import (
    ROOT,
    coffer_env,
    free_port,
    migrate,
    request,
    start_gunicorn,
    stop_gunicorn,
)
from helpers import register

from api.extensions import db
from coffer import create_app


@pytest.fixture
def default_instance(tmp_path, monkeypatch):
    """Where an app's instance folder is unless it is told otherwise (`instance/` beside `api/`)."""
    folder = tmp_path / "repository" / "instance"
    monkeypatch.setattr(flask.Flask, "auto_find_instance_path", lambda self: str(folder))
    return folder


def test_create_app_puts_the_instance_folder_where_it_is_told(
    database_url, default_instance, tmp_path
):
    folder = tmp_path / "elsewhere"
    config = {"DATABASE_URL": database_url, "TESTING": True, "COFFER_SECRET_KEY": None}
    app = create_app(config, instance_path=str(folder))
    with app.app_context():
        db.engine.dispose()
    assert not default_instance.exists()
    assert app.instance_path == str(folder)
    assert (folder / "secret_key").is_file()  # a development key, generated on first use


def test_the_test_apps_leave_the_default_instance_folder_alone(
    make_app, default_instance, tmp_path
):
    app = make_app(COFFER_SECRET_KEY=None, REDIS_URL="")  # a key file, and counters in a file
    assert register(app.test_client(), "ada@example.com").status_code == 201
    assert not default_instance.exists()
    assert app.instance_path == str(tmp_path)
    assert (tmp_path / "secret_key").is_file() and (tmp_path / "rate-limits").is_dir()


def test_coffer_instance_path_moves_the_instance_folder(
    database_url, default_instance, tmp_path, monkeypatch
):
    folder = tmp_path / "configured"
    monkeypatch.setenv("COFFER_INSTANCE_PATH", str(folder))
    config = {"DATABASE_URL": database_url, "TESTING": True, "COFFER_SECRET_KEY": None}
    app = create_app(config)
    with app.app_context():
        db.engine.dispose()
    assert app.instance_path == str(folder)
    assert (folder / "secret_key").is_file()
    assert not default_instance.exists()


def test_wsgi_builds_its_app_in_coffer_instance_path(tmp_path):
    """`wsgi.py`, as gunicorn and `flask --app wsgi` load it, in a process of its own."""
    folder, default = tmp_path / "configured", tmp_path / "repository" / "instance"
    env = coffer_env(
        COFFER_ENV="development",
        COFFER_SECRET_KEY="",  # unset: a development key, generated into the instance folder
        DATABASE_URL=f"sqlite:///{tmp_path / 'coffer.db'}",
        COFFER_INSTANCE_PATH=str(folder),
    )
    script = (
        "import flask\n"
        f"flask.Flask.auto_find_instance_path = lambda self: {str(default)!r}\n"
        "import wsgi\n"
        "print(wsgi.app.instance_path)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(folder)
    assert (folder / "secret_key").is_file()
    assert not default.exists()


def snapshot(folder: Path) -> dict[str, float] | None:
    """Every path under `folder` with its modification time; None when it does not exist."""
    if not folder.exists():
        return None
    paths = [folder, *folder.rglob("*")]
    return {str(path): path.stat().st_mtime for path in paths}


def test_gunicorn_of_the_tests_keeps_its_state_in_a_folder_of_its_own(tmp_path):
    """An instance as tests/gunicorn_run.py starts it, on its default SQLite database: the
    database, the migrations and the rate-limit counters of a log-in all land in its own
    instance folder, and the repository's instance/ is neither created nor written."""
    repository_instance = ROOT / "instance"
    before = snapshot(repository_instance)
    run_dir = tmp_path / "run"
    run_dir.mkdir(mode=0o700)
    port = free_port()
    env = coffer_env(COFFER_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="1")
    env["XDG_RUNTIME_DIR"] = str(run_dir)
    folder = Path(env["COFFER_INSTANCE_PATH"])
    assert folder.is_absolute() and folder != repository_instance
    assert coffer_env()["COFFER_INSTANCE_PATH"] != str(folder)  # one folder per instance
    migrate(env)
    with open(tmp_path / "gunicorn.log", "wb") as log:
        process = start_gunicorn(env, log)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert process.poll() is None, (tmp_path / "gunicorn.log").read_text()
            try:
                if request(port, "GET", "/healthz", timeout=5).status == 200:
                    break
            except OSError:
                assert time.monotonic() < deadline, (tmp_path / "gunicorn.log").read_text()
                time.sleep(0.1)
        wrong = {"email": "nobody@example.com", "password": "not the password"}
        reply = request(port, "POST", "/api/v1/sessions", json_body=wrong)
        assert reply.status == 401 and "x-ratelimit-remaining" in reply.headers
    finally:
        stop_gunicorn(process)
    assert (folder / "coffer.db").is_file()
    assert any((folder / "rate-limits").rglob("*.counters"))
    assert snapshot(repository_instance) == before
