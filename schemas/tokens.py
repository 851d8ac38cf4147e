"""Token schemas: RFC 7662 introspection, and the public key set (RFC 7517)."""

from marshmallow import Schema, fields, validate


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


class PublicKey(Schema):
    kid = fields.String(required=True)
    kty = fields.String(required=True)
    alg = fields.String(required=True)
    use = fields.String(required=True)


class Jwks(Schema):
    keys = fields.List(fields.Nested(PublicKey), required=True)


introspection_request = IntrospectionRequest()
introspection = Introspection()
jwks = Jwks()
