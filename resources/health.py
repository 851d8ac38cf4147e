"""Liveness and readiness probes."""

from flask_restful import Resource

from api import readiness
from api.http.operation import operation, other_responses, response
from api.http.problems import Problem
from schemas.health import status


class Liveness(Resource):
    tag = "operations"

    @operation("liveness")
    @response(status)
    def get(self):
        """Liveness probe: the process is up; touches nothing else."""
        return {"status": "ok"}


class Readiness(Resource):
    tag = "operations"

    @operation("readiness")
    @response(status)
    @other_responses({503: "The database or Redis does not answer."})
    def get(self):
        """Readiness probe: the database (and Redis, when configured) answers."""
        checks = readiness.dependencies_answer()
        failing = [name for name, ok in checks.items() if ok is False]
        if failing:
            raise Problem(
                503, f"Not ready: {', '.join(failing)} unavailable.", headers={"Retry-After": "5"}
            )
        return {"status": "ok", "checks": {k: "ok" for k, v in checks.items() if v}}
