"""The committed OpenAPI document, served as YAML and JSON."""

import functools
import os

import orjson
import yaml
from flask import Flask, current_app
from flask_restful import Resource

SPEC_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.yaml"
)
_Loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available


@functools.cache
def _documents(path: str) -> dict[str, bytes]:
    """The file's bytes and their JSON form; parsed once per process."""
    with open(path, "rb") as handle:
        text = handle.read()
    return {"yaml": text, "json": orjson.dumps(yaml.load(text, Loader=_Loader))}


def load(app: Flask) -> None:
    """Read openapi.yaml at start-up; the routes serve these bytes as they are."""
    app.extensions["coffer_openapi"] = _documents(SPEC_FILE)


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
