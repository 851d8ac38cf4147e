"""The routing table: every endpoint of Coffer, at a glance."""

from flask import Blueprint, Flask

from api.errors import ProblemApi
from api.web import V1, json_response
from resources.health import Liveness, Readiness

blueprint = Blueprint("coffer", __name__)
api = ProblemApi(blueprint)
api.representations = {"application/json": json_response}

api.add_resource(Liveness, "/healthz")
api.add_resource(Readiness, "/readyz")


def init_app(app: Flask) -> None:
    app.register_blueprint(blueprint)


__all__ = ["V1", "init_app"]
