"""Token schemas: the body of an RFC 7662 introspection request."""

from marshmallow import Schema, fields, validate


class IntrospectionRequest(Schema):
    token = fields.String(required=True, validate=validate.Length(min=1))


introspection_request = IntrospectionRequest()
