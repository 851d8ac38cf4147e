"""Whether the services Coffer depends on answer now: the readiness probe's question."""

from flask import current_app

from api.extensions import db


def dependencies_answer() -> dict[str, bool | None]:
    """Whether the database and Redis answer now (None: Redis is not configured)."""
    return {"database": _database_answers(), "redis": _redis_answers()}


def _database_answers() -> bool:
    try:
        db.session.execute(db.select(1)).scalar_one()
        return True
    except Exception as exc:
        current_app.logger.warning("readiness: database check failed: %s", type(exc).__name__)
        db.session.rollback()
        return False


def _redis_answers() -> bool | None:
    client = current_app.extensions.get("coffer_redis")
    if client is None:
        return None
    try:
        return bool(client.ping())
    except Exception as exc:
        current_app.logger.warning("readiness: redis check failed: %s", type(exc).__name__)
        return False
