"""Liveness and readiness probes."""

from flask import current_app
from flask_restful import Resource

from api.errors import Problem
from api.extensions import db


class Liveness(Resource):
    def get(self):
        """The process is up; touches nothing else."""
        return {"status": "ok"}


class Readiness(Resource):
    def get(self):
        """Ready when the database (and Redis, when configured) answers."""
        checks = {"database": _database_answers(), "redis": _redis_answers()}
        failing = [name for name, ok in checks.items() if ok is False]
        if failing:
            raise Problem(
                503, f"Not ready: {', '.join(failing)} unavailable.", headers={"Retry-After": "5"}
            )
        return {"status": "ok", "checks": {k: "ok" for k, v in checks.items() if v}}


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
