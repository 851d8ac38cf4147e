"""The first admin: COFFER_ADMIN_EMAIL/COFFER_ADMIN_PASSWORD at start-up, and `create-admin`."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

import api.cli
from api.extensions import db
from api.models import User

API = "/api/v1"
PASSWORD = "correct horse battery staple"  # the same as tests/conftest.py
ADMIN_PASSWORD = "violet lantern harbour ninety"
ROOT = Path(__file__).resolve().parent.parent


def log_in(client, email: str, password: str):
    return client.post(f"{API}/sessions", json={"email": email, "password": password})


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
def failed_apps(monkeypatch):
    """Apps whose start-up failed: their engines are disposed here, since no fixture owns them."""
    built = []
    bootstrap = api.cli.bootstrap_admin

    def recording(app):
        built.append(app)
        bootstrap(app)

    monkeypatch.setattr(api.cli, "bootstrap_admin", recording)
    yield built
    for app in built:
        with app.app_context():
            db.engine.dispose()


def create_admin(app, *args: str, password_input: str | None = None):
    runner = app.test_cli_runner()
    with app.app_context():
        return runner.invoke(args=["create-admin", *args], input=password_input)


# --- start-up -------------------------------------------------------------------------------


def test_start_up_creates_the_admin(make_app):
    app = make_app(COFFER_ADMIN_EMAIL=" Root@Example.com ", COFFER_ADMIN_PASSWORD=ADMIN_PASSWORD)
    client = app.test_client()
    response = log_in(client, "root@example.com", ADMIN_PASSWORD)
    assert response.status_code == 201
    tokens = response.get_json()
    assert tokens["user"]["role"] == "admin" and tokens["user"]["is_active"] is True
    listed = client.get(
        f"{API}/users", headers={"Authorization": f"Bearer {tokens['access_token']}"}
    )
    assert listed.status_code == 200


def test_start_up_is_idempotent(make_app):
    config = {"COFFER_ADMIN_EMAIL": "root@example.com", "COFFER_ADMIN_PASSWORD": ADMIN_PASSWORD}
    first = make_app(**config)
    make_app(**config)
    assert user_count(first) == 1


def test_start_up_promotes_and_reactivates_an_existing_user_keeping_its_password(
    app, make_app, accounts, admin
):
    user = accounts.create(email="ops@example.com")
    client = app.test_client()
    client.patch(f"{API}/users/{user.id}", json={"is_active": False}, headers=admin.headers)
    booted = make_app(COFFER_ADMIN_EMAIL="ops@example.com", COFFER_ADMIN_PASSWORD=ADMIN_PASSWORD)
    promoted = stored(booted, "ops@example.com")
    assert promoted.role == "admin" and promoted.is_active is True
    assert str(promoted.id) == user.id
    assert log_in(client, "ops@example.com", PASSWORD).status_code == 201
    assert log_in(client, "ops@example.com", ADMIN_PASSWORD).status_code == 401


def test_start_up_without_both_settings_creates_nobody(make_app):
    app = make_app(COFFER_ADMIN_EMAIL="root@example.com")
    make_app(COFFER_ADMIN_PASSWORD=ADMIN_PASSWORD)
    assert user_count(app) == 0


@pytest.mark.parametrize(
    "password",
    ["short pass1", "qwerty123456", "root@example.com", "x" * 257],
    ids=["too-short", "common", "the-email", "too-long"],
)
def test_start_up_refuses_a_weak_admin_password(make_app, failed_apps, password):
    with pytest.raises(RuntimeError, match="COFFER_ADMIN_PASSWORD"):
        make_app(COFFER_ADMIN_EMAIL="root@example.com", COFFER_ADMIN_PASSWORD=password)
    assert len(failed_apps) == 1
    assert stored(failed_apps[0], "root@example.com") is None


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
    assert log_in(client, "ops@example.com", PASSWORD).status_code == 201


def test_flask_create_admin_command_line(app, database_url, tmp_path):
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
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
