"""Extension singletons. Each is bound to an app only inside `create_app`."""

from flask import current_app
from flask_cors import CORS
from flask_limiter import ApplicationLimit, Limiter
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import MetaData

from api.web import client_ip

# Deterministic constraint names keep Alembic migrations identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def _api_limit() -> str:
    return current_app.config["COFFER_RATE_LIMIT_API"]


def _api_limit_key() -> str:
    from api.auth import rate_limit_subject  # auth needs `db` from this module

    return rate_limit_subject()


def _anonymous() -> bool:
    return _api_limit_key() == ""


db = SQLAlchemy(metadata=MetaData(naming_convention=NAMING_CONVENTION))
migrate = Migrate()
cors = CORS()
# Log-in, registration and refresh carry their own per-route limits (resources/); every
# request with a valid bearer token also counts against one limit per user, shared by all routes.
limiter = Limiter(
    key_func=client_ip,
    application_limits=[
        ApplicationLimit(
            _api_limit, key_function=_api_limit_key, scope="api", exempt_when=_anonymous
        )
    ],
)
