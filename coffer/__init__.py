"""Coffer: a JSON REST backend with users, JWT sessions and owner-scoped JSON records.

This package composes the others: `create_app` binds the core (`api`), the HTTP layer
(`api.http`) and the routes (`resources`) into one Flask app, `cli` adds the operator's
commands, and `bootstrap_at_start` creates the first admin once per start of the service.
Nothing in `api`, `schemas` or `resources` imports it."""

import os
import re
import sys
from collections.abc import Mapping

import sqlalchemy as sa
from flask import Flask, current_app
from werkzeug.middleware.proxy_fix import ProxyFix

from api import (
    accounts,
    database,
    events,
    feed,
    keys,
    mail,
    models,
    pagination,
    passwords,
    ratelimit,
    tokens,
)
from api.config import from_env
from api.email_address import InvalidEmail
from api.extensions import db
from api.http import limits, logs, problems, web
from coffer import cli

MIGRATIONS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "migrations")
CORS_ALLOW_HEADERS = [
    "Authorization",
    "Content-Type",
    "If-Match",
    "If-None-Match",
    "Idempotency-Key",
    "Last-Event-ID",
]
CORS_EXPOSE_HEADERS = [
    "ETag",
    "Location",
    "Link",
    "Retry-After",
    "X-Request-ID",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "Idempotent-Replayed",
    "WWW-Authenticate",
    "Allow",
]


__all__ = ["bootstrap_admin", "bootstrap_at_start", "create_app", "models"]


def create_app(config: Mapping | None = None, *, instance_path: str | None = None) -> Flask:
    """Build a Coffer app from the environment, with `config` overriding any setting;
    `instance_path` (absolute) replaces COFFER_INSTANCE_PATH, whose default is Flask's
    instance folder, `instance/` beside `api/`."""
    settings = {**from_env(), **(config or {})}  # COFFER_INSTANCE_PATH, when no argument
    # Named "api": the app's logger is then the parent of the core's module loggers
    # (api.accounts, api.mail, …), whose records it writes as JSON lines (api/http/logs.py).
    app = web.App("api", instance_path=instance_path or settings["COFFER_INSTANCE_PATH"])
    app.config.update(settings)
    app.config["MAX_CONTENT_LENGTH"] = app.config["COFFER_MAX_BODY_BYTES"]
    os.makedirs(app.instance_path, exist_ok=True)

    logs.init_app(app)
    keys.init_app(app)
    passwords.init_app(app)
    tokens.init_app(app)
    pagination.init_app(app)
    database.init_app(app)
    web.init_app(app)
    problems.init_app(app)
    events.connect(context=web.event_context)
    db.init_app(app)
    # release_session ends the request's session, as Flask-SQLAlchemy's own teardown did
    # (which it replaces), and outlives a database that died mid-request.
    app.teardown_appcontext_funcs.remove(db._teardown_session)
    app.teardown_appcontext(database.release_session)
    _init_migrations(app)
    _init_redis(app)
    feed.init_app(app)
    ratelimit.init_app(app)
    mail.init_app(app)
    limits.init_app(app)
    _init_cors(app)
    if app.config["COFFER_TRUSTED_PROXIES"] > 0:
        hops = app.config["COFFER_TRUSTED_PROXIES"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops, x_host=hops)

    import resources  # the routes need the extensions bound first

    resources.init_app(app)
    cli.init_app(app)
    return app


def bootstrap_at_start() -> None:
    """What gunicorn's master runs once per start of the service, before any worker forks:
    the first admin. Not in create_app, which every worker (and every worker that replaces
    one) runs; no app is built when COFFER_ADMIN_EMAIL and COFFER_ADMIN_PASSWORD are unset."""
    settings = from_env()
    if settings["COFFER_ADMIN_EMAIL"] and settings["COFFER_ADMIN_PASSWORD"]:
        bootstrap_admin(create_app())


def bootstrap_admin(app: Flask) -> None:
    """Create the first admin from COFFER_ADMIN_EMAIL/COFFER_ADMIN_PASSWORD when the database
    has no admin (accounts.bootstrap_admin), then close the app's database connections, so
    that no process forked afterwards (a gunicorn worker) shares one."""
    email = app.config.get("COFFER_ADMIN_EMAIL")
    password = app.config.get("COFFER_ADMIN_PASSWORD")
    if not (email and password):
        return
    with app.app_context():
        try:
            _bootstrap_admin(email, password)
        finally:
            db.session.remove()  # its connection goes back to the pool, which dispose() closes
            db.engine.dispose()


def _bootstrap_admin(email: str, password: str) -> None:
    if not sa.inspect(db.engine).has_table("users"):
        current_app.logger.warning("admin bootstrap skipped: run `flask db upgrade` first")
        return
    try:
        user = accounts.bootstrap_admin(email, password)
    except InvalidEmail as exc:
        raise RuntimeError(f"COFFER_ADMIN_EMAIL: {exc}") from None
    except ValueError as exc:
        raise RuntimeError(f"COFFER_ADMIN_PASSWORD: {exc}") from None
    if user is not None:
        current_app.logger.info("admin bootstrap: created the first admin %s", user.email)


def _init_migrations(app: Flask) -> None:
    """Alembic's migrations (`flask db …`, migrations/), bound only in a process that may run
    them: one started by the `flask` command (which sets FLASK_RUN_FROM_CLI, and has imported
    Flask-Migrate for its `db` group before it builds the app), or one that imported
    Flask-Migrate itself to migrate in-process (`flask_migrate.upgrade()`: the tests, the
    benchmarks). A gunicorn worker never imports Flask-Migrate and Alembic (about 11 MB)."""
    if os.environ.get("FLASK_RUN_FROM_CLI") != "true" and "flask_migrate" not in sys.modules:
        return
    from flask_migrate import Migrate

    Migrate(app, db, directory=MIGRATIONS, render_as_batch=True)


def _init_redis(app: Flask) -> None:
    """The app's Redis client, when REDIS_URL is set; only then is redis-py imported (~6 MB)."""
    url = app.config.get("REDIS_URL")
    if url:
        import redis

        app.extensions["coffer_redis"] = redis.Redis.from_url(
            url, socket_connect_timeout=1, socket_timeout=1, health_check_interval=30
        )


# An allowed origin: scheme://host[:port], where the whole leftmost label may be `*`.
_ORIGIN = re.compile(r"(?P<scheme>[a-z][a-z0-9+.-]*)://(?P<wild>\*\.)?(?P<host>[a-z0-9.-]+(:\d+)?)")
_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"


def cors_origins(entries: list[str]) -> list[str | re.Pattern]:
    """COFFER_CORS_ORIGINS as flask-cors matches them: `*`, exact origins, and
    `https://*.example.org` as a pattern that matches one label in place of the `*`."""
    origins: list[str | re.Pattern] = []
    for entry in entries:
        match = _ORIGIN.fullmatch(entry.lower())
        if entry == "*":
            origins.append(entry)
        elif match is None:
            raise RuntimeError(
                f"COFFER_CORS_ORIGINS: {entry!r} is not an origin (scheme://host[:port], "
                "optionally with `*` as the whole first label: https://*.example.org)"
            )
        elif match["wild"]:
            host = re.escape(match["host"])
            origins.append(re.compile(rf"{match['scheme']}://{_LABEL}\.{host}\Z", re.IGNORECASE))
        else:
            origins.append(entry.lower())
    return origins


def _init_cors(app: Flask) -> None:
    options = {
        "origins": cors_origins(app.config["COFFER_CORS_ORIGINS"]),
        "allow_headers": CORS_ALLOW_HEADERS,
        "expose_headers": CORS_EXPOSE_HEADERS,
        "methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        "max_age": 600,
        "supports_credentials": False,  # bearer tokens only: no ambient credentials
        "send_wildcard": "*" in app.config["COFFER_CORS_ORIGINS"],
    }
    web.init_cors(app, options, [r"/api/*", r"/.well-known/*"])
