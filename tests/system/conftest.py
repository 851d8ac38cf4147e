"""System tests: real gunicorn processes on PostgreSQL and Redis, and the faults they survive.

Run on their own, without xdist (they start servers, kill processes and time things):

    TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test \
    TEST_REDIS_URL=redis://127.0.0.1:6379/0 \
    .venv/bin/pytest -p no:cacheprovider tests/system

Isolation: one fresh PostgreSQL schema per run (`coffer_system_…`, dropped at the end; a test
that must see only what its own instances write takes one of its own, `own_postgres_url`),
Redis logical db TEST_SYSTEM_REDIS_DB (default 5) of the TEST_REDIS_URL server, never flushed:
tests that count rate limits use a client IP (X-Forwarded-For) and accounts of their own, so two
runs at once cannot disturb each other. SOAK_SECONDS (default 60) bounds the soak test.
"""

import os
import secrets
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
import sqlalchemy as sa
from gunicorn_run import migrate
from harness import METRICS, Fleet, instance_env

TEST_DATABASE_URL = os.environ.get("TEST_DATABASE_URL")
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL")
HERE = Path(__file__).parent
SKIP_REASON = (
    "system tests need TEST_DATABASE_URL (PostgreSQL) and TEST_REDIS_URL (Redis): "
    "they run real gunicorn instances against both"
)


def pytest_collection_modifyitems(config, items):
    # A hook rather than a module-level skip here: that one breaks `pytest tests/system`.
    if TEST_DATABASE_URL and TEST_REDIS_URL:
        return
    if os.environ.get("CI"):
        raise pytest.UsageError(f"CI runs every system test, but {SKIP_REASON}")
    skip = pytest.mark.skip(reason=SKIP_REASON)
    for item in items:
        if HERE in item.path.parents:
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if METRICS:
        terminalreporter.section("coffer system measurements")
        for line in METRICS:
            terminalreporter.write_line(line)


def _with_redis_db(url: str, db: int) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{db}"))


@contextmanager
def _fresh_schema():
    """A new schema of the TEST_DATABASE_URL database, as a URL that works in it; dropped
    afterwards with whatever is in it."""
    schema = f"coffer_system_{secrets.token_hex(4)}"
    engine = sa.create_engine(TEST_DATABASE_URL)
    with engine.begin() as conn:
        conn.execute(sa.text(f'CREATE SCHEMA "{schema}"'))
    separator = "&" if "?" in TEST_DATABASE_URL else "?"
    try:
        yield f"{TEST_DATABASE_URL}{separator}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh schema of the TEST_DATABASE_URL database for this run, dropped afterwards."""
    with _fresh_schema() as url:
        yield url


@pytest.fixture
def own_postgres_url():
    """A fresh, migrated schema for one test, dropped after it: for a test that must see only
    what its own instances write (the mail outbox, say), not the run's other instances."""
    with _fresh_schema() as url:
        migrate(instance_env(database_url=url, redis_url=None))
        yield url


@pytest.fixture(scope="session")
def redis_url():
    return _with_redis_db(TEST_REDIS_URL, int(os.environ.get("TEST_SYSTEM_REDIS_DB", "5")))


@pytest.fixture(scope="session")
def shared_env(postgres_url, redis_url):
    """The environment of an instance on the run's PostgreSQL schema and Redis, migrated."""
    env = instance_env(database_url=postgres_url, redis_url=redis_url)
    migrate(env)
    return env


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("gunicorn-logs")


@pytest.fixture(scope="session")
def pair(shared_env, log_dir):
    """Instances A and B: two ports, one database, one Redis, one signing key."""
    fleet = Fleet(log_dir)
    yield fleet.start(("a", shared_env), ("b", shared_env))
    fleet.stop_all()


@pytest.fixture
def fleet(log_dir):
    """Instances of one test, stopped (SIGTERM, then SIGKILL) when it ends."""
    fleet = Fleet(log_dir)
    yield fleet
    fleet.stop_all()
