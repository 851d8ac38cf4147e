"""The first admin: COFFER_ADMIN_EMAIL/COFFER_ADMIN_PASSWORD at start-up, and `create-admin`.

Start-up creates the admin only while the database has no admin at all, and never promotes or
re-activates an account; the CLI is the operator's tool that does (API.md: Users).
"""

import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import API, bearer, log_in, register
from sqlalchemy.orm import Session as OrmSession

import api.accounts
import coffer
from api.extensions import db
from api.models import User
from api.passwords import hash_password

ADMIN_PASSWORD = "violet lantern harbour ninety"
ROOT = Path(__file__).resolve().parent.parent
ADMIN = {"COFFER_ADMIN_EMAIL": "root@example.com", "COFFER_ADMIN_PASSWORD": ADMIN_PASSWORD}


def stored(app, email: str) -> User | None:
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(email=email)).scalar_one_or_none()
        if user is not None:
            db.session.expunge(user)
        return user


def user_count(app) -> int:
    with app.app_context():
        return db.session.scalar(db.select(db.func.count()).select_from(User))


@pytest.fixture
def booted(make_app):
    """An app with the admin settings, and the start-up bootstrap to run on it."""
    app = make_app(**ADMIN)

    def boot():
        coffer.bootstrap_admin(app)
        return stored(app, "root@example.com")

    boot.app = app
    return boot


@pytest.fixture
def account_warnings(caplog):
    """Warnings of api.accounts (the `api` logger writes JSON lines and does not propagate)."""
    logger = logging.getLogger("api.accounts")
    logger.addHandler(caplog.handler)
    yield caplog
    logger.removeHandler(caplog.handler)


def create_admin(app, *args: str, password_input: str | None = None):
    runner = app.test_cli_runner()
    with app.app_context():
        return runner.invoke(args=["create-admin", *args], input=password_input)


# --- start-up -------------------------------------------------------------------------------


def test_start_up_creates_the_admin_when_there_is_no_admin(make_app):
    app = make_app(COFFER_ADMIN_EMAIL=" Root@Example.com ", COFFER_ADMIN_PASSWORD=ADMIN_PASSWORD)
    coffer.bootstrap_admin(app)
    client = app.test_client()
    response = log_in(client, "root@example.com", ADMIN_PASSWORD)
    assert response.status_code == 201
    tokens = response.get_json()
    assert tokens["user"]["role"] == "admin" and tokens["user"]["is_active"] is True
    listed = client.get(f"{API}/users", headers=bearer(tokens["access_token"]))
    assert listed.status_code == 200


def test_building_an_app_creates_no_admin(make_app):
    """Every worker builds the app: the bootstrap is not part of it."""
    app = make_app(**ADMIN)
    assert user_count(app) == 0


def test_start_up_is_idempotent(booted):
    first = booted()
    assert booted().id == first.id
    assert user_count(booted.app) == 1


def test_start_up_leaves_an_account_registered_under_that_address_as_it_is(
    booted, account_warnings
):
    client = booted.app.test_client()
    assert register(client, "Root@Example.com").status_code == 201
    account = booted()
    assert (account.role, account.is_active) == ("user", True)
    assert log_in(client, "root@example.com").status_code == 201
    assert log_in(client, "root@example.com", ADMIN_PASSWORD).status_code == 401
    warning = account_warnings.records[-1]
    assert warning.levelno == logging.WARNING and "root@example.com" in warning.getMessage()


def test_start_up_leaves_a_deactivated_admin_deactivated(booted, accounts):
    client = booted.app.test_client()
    root = booted()
    admin = accounts.create(role="admin")
    deactivate = {"is_active": False}
    response = client.patch(f"{API}/users/{root.id}", json=deactivate, headers=admin.headers)
    assert response.status_code == 200
    # No active admin is left, and start-up still does not bring this one back.
    assert client.delete(f"{API}/users/{admin.id}", headers=admin.headers).status_code == 204
    assert booted().is_active is False
    assert log_in(client, "root@example.com", ADMIN_PASSWORD).status_code == 401


def test_start_up_does_not_recreate_a_deleted_admin_while_another_admin_exists(booted, accounts):
    client = booted.app.test_client()
    root = booted()
    admin = accounts.create(role="admin")
    assert client.delete(f"{API}/users/{root.id}", headers=admin.headers).status_code == 204
    assert booted() is None
    # Someone registers the freed address: it stays a user at every later start.
    assert register(client, "root@example.com").status_code == 201
    assert booted().role == "user"
    assert user_count(booted.app) == 2


def test_start_up_racing_another_instance_for_the_address_is_quiet(booted, monkeypatch):
    """Two instances starting at once: the unique email stops the second insert."""

    def created_meanwhile(email):
        """The address is free when looked up; the other instance inserts it right after."""
        with OrmSession(db.engine) as other:
            other.add(User(email=email, password_hash=hash_password(ADMIN_PASSWORD), role="admin"))
            other.commit()
        return None

    monkeypatch.setattr(api.accounts, "find_user", created_meanwhile)
    assert booted().role == "admin"
    assert user_count(booted.app) == 1


def test_start_up_without_both_settings_creates_nobody(make_app):
    for settings in ({"COFFER_ADMIN_EMAIL": "root@example.com"}, {"COFFER_ADMIN_PASSWORD": "x"}):
        app = make_app(**settings)
        coffer.bootstrap_admin(app)
    assert user_count(app) == 0


@pytest.mark.parametrize(
    "password",
    ["short pass1", "qwerty123456", "root@example.com", "ＲＯＯＴ@example.com", "x" * 257],
    ids=["too-short", "common", "the-email", "the-email-full-width", "too-long"],
)
def test_start_up_refuses_a_weak_admin_password(make_app, password):
    app = make_app(COFFER_ADMIN_EMAIL="root@example.com", COFFER_ADMIN_PASSWORD=password)
    with pytest.raises(RuntimeError, match="COFFER_ADMIN_PASSWORD"):
        coffer.bootstrap_admin(app)
    assert user_count(app) == 0


def test_start_up_refuses_an_admin_email_with_invisible_characters(make_app):
    app = make_app(
        COFFER_ADMIN_EMAIL="root\u200b@example.com", COFFER_ADMIN_PASSWORD=ADMIN_PASSWORD
    )
    with pytest.raises(RuntimeError, match="COFFER_ADMIN_EMAIL"):
        coffer.bootstrap_admin(app)
    assert user_count(app) == 0


def _gunicorn_env(app, database_url: str) -> dict:
    env = {
        **os.environ,
        **ADMIN,
        "DATABASE_URL": database_url,
        "COFFER_INSTANCE_PATH": app.instance_path,  # never the repository's instance/
        "COFFER_SECRET_KEY": app.config["COFFER_SECRET_KEY"],
        "COFFER_ARGON2_TIME_COST": "1",
        "COFFER_ARGON2_MEMORY_KIB": "1024",
        "COFFER_ARGON2_PARALLELISM": "1",
    }
    for name in ("REDIS_URL", "COFFER_ENV", "COFFER_THREADS", "COFFER_BIND"):
        env.pop(name, None)
    return env


def _wait_for(path: Path, text: str, count: int, timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        log = path.read_text()
        if log.count(text) >= count:
            return log
        time.sleep(0.1)
    raise AssertionError(f"{count} x {text!r} not logged in {timeout} s:\n{path.read_text()}")


def test_gunicorn_runs_the_bootstrap_once_in_its_master_not_in_each_worker(
    app, database_url, tmp_path
):
    # Coffer's config, plus a hook that says when a worker has built its app.
    conf = tmp_path / "gunicorn.conf.py"
    real = ROOT / "gunicorn.conf.py"
    conf.write_text(
        f"exec(compile(open({str(real)!r}).read(), {str(real)!r}, 'exec'))\n"
        "def post_worker_init(worker):\n"
        "    worker.log.info('worker app ready')\n"
    )
    log = tmp_path / "gunicorn.log"
    gunicorn = Path(sys.executable).with_name("gunicorn")
    # No control socket: it lives in $HOME, shared with any other gunicorn running there.
    options = ["-c", str(conf), "-w", "2", "-b", "127.0.0.1:0", "--no-control-socket"]
    command = [str(gunicorn), *options, "wsgi:app"]
    with log.open("w") as out:
        master = subprocess.Popen(
            command, cwd=ROOT, env=_gunicorn_env(app, database_url), stdout=out, stderr=out
        )
    try:
        _wait_for(log, "worker app ready", 2)
    finally:
        master.send_signal(signal.SIGTERM)
        master.wait(timeout=30)
    assert log.read_text().count("created the first admin") == 1
    assert stored(app, "root@example.com").role == "admin"
    assert user_count(app) == 1


# --- the CLI --------------------------------------------------------------------------------


def test_create_admin_reads_the_password_from_the_environment(app, monkeypatch):
    monkeypatch.setenv("COFFER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    result = create_admin(app, "Ops@Example.com")
    assert result.exit_code == 0, result.output
    assert stored(app, "ops@example.com").role == "admin"
    assert log_in(app.test_client(), "ops@example.com", ADMIN_PASSWORD).status_code == 201


def test_create_admin_prompts_for_the_password(app, monkeypatch):
    monkeypatch.delenv("COFFER_ADMIN_PASSWORD", raising=False)
    result = create_admin(app, "ops@example.com", password_input=f"{ADMIN_PASSWORD}\n" * 2)
    assert result.exit_code == 0, result.output
    assert ADMIN_PASSWORD not in result.output
    assert log_in(app.test_client(), "ops@example.com", ADMIN_PASSWORD).status_code == 201


def test_create_admin_refuses_a_weak_password(app, monkeypatch):
    monkeypatch.setenv("COFFER_ADMIN_PASSWORD", "qwerty123456")
    result = create_admin(app, "ops@example.com")
    assert result.exit_code != 0
    assert stored(app, "ops@example.com") is None


def test_create_admin_promotes_an_existing_user(app, accounts, monkeypatch):
    user = accounts.create(email="ops@example.com")
    monkeypatch.setenv("COFFER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    result = create_admin(app, "ops@example.com")
    assert result.exit_code == 0, result.output
    assert stored(app, "ops@example.com").role == "admin"
    client = app.test_client()
    assert client.get(f"{API}/users/me", headers=user.headers).status_code == 401
    assert log_in(client, "ops@example.com").status_code == 201


def test_create_admin_reactivates_a_deactivated_admin(app, accounts, admin, monkeypatch):
    ops = accounts.create(email="ops@example.com", role="admin")
    client = app.test_client()
    client.patch(f"{API}/users/{ops.id}", json={"is_active": False}, headers=admin.headers)
    monkeypatch.setenv("COFFER_ADMIN_PASSWORD", ADMIN_PASSWORD)
    result = create_admin(app, "ＯＰＳ@example.com")  # full-width: the same address
    assert result.exit_code == 0, result.output
    reactivated = stored(app, "ops@example.com")
    assert (reactivated.role, reactivated.is_active) == ("admin", True)
    assert log_in(client, "ops@example.com").status_code == 201


def test_flask_create_admin_command_line(app, database_url, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "COFFER_INSTANCE_PATH": app.instance_path,  # never the repository's instance/
        "COFFER_SECRET_KEY": app.config["COFFER_SECRET_KEY"],
        "COFFER_ADMIN_PASSWORD": ADMIN_PASSWORD,
        "COFFER_ARGON2_TIME_COST": "1",
        "COFFER_ARGON2_MEMORY_KIB": "1024",
        "COFFER_ARGON2_PARALLELISM": "1",
    }
    env.pop("COFFER_ADMIN_EMAIL", None)
    env.pop("REDIS_URL", None)
    flask = Path(sys.executable).with_name("flask")
    result = subprocess.run(
        [str(flask), "--app", "wsgi", "create-admin", "cli@example.com"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert stored(app, "cli@example.com").role == "admin"
