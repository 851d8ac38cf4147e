"""Fixtures: one migrated database per test worker, a fresh app and empty tables per test.

SQLite (a temporary file) by default; PostgreSQL when TEST_DATABASE_URL is set (one schema per
xdist worker), Redis-backed rate limits when TEST_REDIS_URL is set.
"""

import os
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa
from flask_migrate import upgrade
from helpers import ASYMMETRIC, PASSWORD, bearer
from werkzeug.serving import make_server

from api import clock
from api.extensions import db
from api.models import Session, User, utcnow
from api.passwords import hash_password
from api.tokens import issue_access_token
from coffer import create_app

pytest_plugins = ["smtp_sink"]  # the smtp_sink fixture: a real SMTP server
TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
SECRET = "test-signing-key-" + "x7Qp2Lm9" * 6


def _postgres_schema_url(base: str, schema: str) -> str:
    engine = sa.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    engine.dispose()
    separator = "&" if "?" in base else "?"
    return f"{base}{separator}options=-csearch_path%3D{schema}"


@pytest.fixture(scope="session")
def database_url(tmp_path_factory, worker_id):
    if TEST_DATABASE_URL:
        prefix = os.environ.get("TEST_SCHEMA_PREFIX", "coffer_test")
        url = _postgres_schema_url(TEST_DATABASE_URL, f"{prefix}_{worker_id}")
    else:
        url = "sqlite:///" + str(tmp_path_factory.mktemp("db") / "coffer.db")
    config = {"DATABASE_URL": url, "COFFER_SECRET_KEY": SECRET, "TESTING": True}
    app = create_app(config, instance_path=str(tmp_path_factory.mktemp("instance")))
    with app.app_context():
        upgrade()
        db.engine.dispose()
    return url


def base_config(database_url: str) -> dict:
    config = {
        "TESTING": True,
        "DATABASE_URL": database_url,
        "COFFER_SECRET_KEY": SECRET,
        "COFFER_RATE_LIMIT_AUTH": "10000/minute",
        "COFFER_RATE_LIMIT_API": "10000/minute",
        # Cheap hashing keeps the suite fast; tests/test_argon2_params.py checks the defaults.
        "COFFER_ARGON2_TIME_COST": 1,
        "COFFER_ARGON2_MEMORY_KIB": 1024,
        "COFFER_ARGON2_PARALLELISM": 1,
        "COFFER_RATE_LIMIT_PREFIX": f"coffer-test-{uuid.uuid4().hex}",
    }
    if TEST_REDIS_URL:
        config["REDIS_URL"] = TEST_REDIS_URL
    return config


@pytest.fixture
def make_app(database_url, tmp_path):
    """Build an app on the shared test database, its instance folder the test's tmp_path
    unless `instance_path` says otherwise; tables are emptied after the test."""
    apps = []

    def factory(*, instance_path: str | None = None, **overrides):
        config = {**base_config(database_url), **overrides}
        app = create_app(config, instance_path=instance_path or str(tmp_path))
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["coffer_feed"].stop()
        with app.app_context():
            db.engine.dispose()
    engine = sa.create_engine(database_url)
    with engine.begin() as conn:
        for table in reversed(db.metadata.sorted_tables):
            conn.execute(table.delete())
    engine.dispose()


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@dataclass
class Account:
    id: str
    email: str
    password: str
    session_id: str
    token: str
    headers: dict = field(default_factory=dict)


class Accounts:
    """Creates users with a live session each, through the same functions log-in uses."""

    def __init__(self, app):
        self.app = app
        self.count = 0

    def create(self, *, role: str = "user", email: str | None = None, password: str = PASSWORD):
        self.count += 1
        email = email or f"{role}{self.count}-{uuid.uuid4().hex[:8]}@example.com"
        with self.app.app_context():
            user = User(email=email, password_hash=hash_password(password), role=role)
            db.session.add(user)
            db.session.flush()
            ttl = timedelta(seconds=self.app.config["COFFER_REFRESH_TOKEN_TTL"])
            session = Session(user_id=user.id, device_name="pytest", expires_at=utcnow() + ttl)
            db.session.add(session)
            db.session.commit()
            token, _ = issue_access_token(user, session)
            return Account(
                id=str(user.id),
                email=email,
                password=password,
                session_id=str(session.id),
                token=token,
                headers=bearer(token),
            )


@pytest.fixture
def accounts(app):
    return Accounts(app)


@pytest.fixture
def accounts_for():
    """Accounts of an app that a test built itself (make_app with other settings)."""
    return Accounts


@pytest.fixture
def user(accounts):
    return accounts.create()


@pytest.fixture
def admin(accounts):
    return accounts.create(role="admin")


class FrozenClock:
    """api.clock stopped at one instant; only `advance` moves it."""

    def __init__(self, start: float) -> None:
        self.seconds = start

    def timestamp(self) -> float:
        return self.seconds

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds, UTC)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds


@pytest.fixture
def frozen_clock(monkeypatch) -> FrozenClock:
    """Coffer's clock stopped at the real now, for tests that let time pass: `advance(seconds)`
    instead of sleeping. (PyJWT checks a new token's times by the real clock the first time the
    app verifies it: past the 30 s leeway, issue the tokens before advancing.)"""
    frozen = FrozenClock(float(int(time.time())))  # a whole second: advance(0.001) is exact
    monkeypatch.setattr(clock, "now", frozen.now)
    monkeypatch.setattr(clock, "timestamp", frozen.timestamp)
    return frozen


@pytest.fixture
def serve():
    """Run an app on a real threaded HTTP server (stopped after the test); returns its URL."""
    running = []

    def start(app) -> str:
        server = make_server("127.0.0.1", 0, app, threaded=True)
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}"

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture(params=ASYMMETRIC)
def algorithm(request):
    """Each asymmetric signing algorithm in turn."""
    return request.param


@pytest.fixture
def key_dir(tmp_path):
    return str(tmp_path / "jwt-keys")


@pytest.fixture
def signed_app(make_app, algorithm, key_dir):
    """An app that signs access tokens with `algorithm` keys from `key_dir`."""
    return make_app(COFFER_JWT_ALGORITHM=algorithm, COFFER_JWT_KEY_DIR=key_dir)
