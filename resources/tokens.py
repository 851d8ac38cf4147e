"""Tokens for other services: the public signing keys, and RFC 7662 introspection."""

from flask_restful import Resource

from api import signing, tokens
from api.http.auth import authenticate, require_role
from api.http.operation import body, operation, response
from schemas.tokens import introspection, introspection_request, jwks

JWKS_MAX_AGE = 300  # seconds other services may cache the key set


class KeySet(Resource):
    @operation("jwks")
    @response(jwks)
    def get(self):
        """Public signing keys (RFC 7517); none under HS256."""
        cache = {"Cache-Control": f"public, max-age={JWKS_MAX_AGE}"}
        return {"keys": signing.keyring().public_keys}, cache


class Introspection(Resource):
    @authenticate
    @require_role("service", "admin")
    @operation("introspectToken")
    @body(introspection_request)
    @response(introspection)
    def post(self, request):
        """RFC 7662 token introspection (role service or admin)."""
        return tokens.introspect_token(request["token"])
