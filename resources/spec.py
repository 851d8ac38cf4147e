"""The committed OpenAPI document, served as YAML and JSON."""

import os

import orjson
from flask import Flask, current_app
from flask_restful import Resource

from api.http.operation import operation, response

SPEC_FILE = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openapi.yaml"
)


def _to_json(text: bytes) -> bytes:
    # Imported and parsed on the first request for the JSON form, not at start-up: PyYAML and
    # the parse leave a few MB behind in every worker, and most workers never serve it.
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when available
    return orjson.dumps(yaml.load(text, Loader=loader))


def load(app: Flask) -> None:
    """Read openapi.yaml at start-up; the routes serve these bytes as they are."""
    with open(SPEC_FILE, "rb") as handle:
        app.extensions["coffer_openapi"] = {"yaml": handle.read()}


def _document(kind: str) -> bytes:
    documents = current_app.extensions["coffer_openapi"]
    if kind not in documents:
        documents[kind] = _to_json(documents["yaml"])  # once per process
    return documents[kind]


def _serve(kind: str, mimetype: str):
    response = current_app.response_class(_document(kind), mimetype=mimetype)
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


class OpenApiJson(Resource):
    tag = "operations"

    @operation("openapiJson")
    @response(None, 200)
    def get(self):
        """This document as JSON."""
        return _serve("json", "application/json")


class OpenApiYaml(Resource):
    tag = "operations"

    @operation("openapiYaml")
    @response(None, 200)
    def get(self):
        """This document as YAML."""
        return _serve("yaml", "application/yaml")
