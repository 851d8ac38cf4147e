"""The committed OpenAPI document, served as YAML and JSON."""

import os

import orjson
import yaml
from flask import Flask, current_app
from flask_restful import Resource

SPEC_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.yaml"
)


def load(app: Flask) -> None:
    """Read openapi.yaml once at start-up; the routes serve these bytes as they are."""
    with open(SPEC_FILE, "rb") as handle:
        text = handle.read()
    app.extensions["coffer_openapi"] = {
        "yaml": text,
        "json": orjson.dumps(yaml.safe_load(text)),
    }


def _serve(kind: str, mimetype: str):
    body = current_app.extensions["coffer_openapi"][kind]
    response = current_app.response_class(body, mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


class OpenApiJson(Resource):
    def get(self):
        """This document as JSON."""
        return _serve("json", "application/json")


class OpenApiYaml(Resource):
    def get(self):
        """This document as YAML."""
        return _serve("yaml", "application/yaml")
