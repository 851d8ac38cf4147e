"""Tokens for other services: the public signing keys, and RFC 7662 introspection."""

from flask import current_app
from flask_restful import Resource

from api import signing
from api.auth import authenticate, introspect_token, require_role
from api.web import JSON, load_body
from schemas.tokens import introspection_request

JWKS_MAX_AGE = 300  # seconds other services may cache the key set


class Jwks(Resource):
    def get(self):
        """The public keys that verify access tokens (RFC 7517); none under HS256."""
        response = current_app.response_class(signing.keyring().jwks, mimetype=JSON)
        response.headers["Cache-Control"] = f"public, max-age={JWKS_MAX_AGE}"
        return response


class Introspection(Resource):
    method_decorators = [require_role("service", "admin"), authenticate]

    def post(self):
        """Whether an access token is live (RFC 7662), with its claims when it is."""
        return introspect_token(load_body(introspection_request)["token"])
