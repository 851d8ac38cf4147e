"""Token schemas: RFC 7662 introspection, and the public key set (RFC 7517)."""

from marshmallow import Schema, fields, validate

from api.constants import ASYMMETRIC


class IntrospectionRequest(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1))


class Introspection(Schema):
    """RFC 7662; `{"active": false}` alone for a dead or forged token."""

    class Meta:
        description = 'RFC 7662; `{"active": false}` alone for a dead or forged token.'

    active = fields.Boolean(required=True)
    sub = fields.String()
    sid = fields.String()
    role = fields.String()
    exp = fields.Integer()
    iat = fields.Integer()
    nbf = fields.Integer()
    iss = fields.String()
    aud = fields.String()
    jti = fields.String()
    amr = fields.List(
        fields.String(),
        metadata={"description": 'RFC 8176: ["pwd"], or ["pwd", "otp"] after a second factor.'},
    )
    token_type = fields.String()


def _member(description: str) -> fields.String:
    return fields.String(metadata={"description": description})


class PublicKey(Schema):
    """A public signing key as a JWK (RFC 7517/7518/8037): the members of its key type only."""

    kid = fields.String(required=True)
    kty = fields.String(required=True, validate=validate.OneOf(("OKP", "EC", "RSA")))
    alg = fields.String(required=True, validate=validate.OneOf(ASYMMETRIC))
    use = fields.String(required=True, validate=validate.OneOf(("sig",)))
    crv = _member("OKP and EC keys: Ed25519 or P-256.")
    x = _member("OKP and EC keys: the public key, or its x coordinate (base64url).")
    y = _member("EC keys: the y coordinate (base64url).")
    n = _member("RSA keys: the modulus (base64url).")
    e = _member("RSA keys: the public exponent (base64url).")


class Jwks(Schema):
    keys = fields.List(fields.Nested(PublicKey), required=True)


introspection_request = IntrospectionRequest()
introspection = Introspection()
jwks = Jwks()
