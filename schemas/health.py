"""Probe answers."""

from marshmallow import Schema, fields


class Status(Schema):
    status = fields.String(required=True)
    checks = fields.Dict(keys=fields.String(), values=fields.String())


status = Status()
