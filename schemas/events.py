"""Security event schemas."""

from marshmallow import Schema, fields, validate

from api.constants import EVENT_TYPES
from schemas.common import Timestamp


class SecurityEvent(Schema):
    id = fields.UUID()
    type = fields.String(validate=validate.OneOf(EVENT_TYPES))  # the spec's enum of event types
    user_id = fields.UUID(allow_none=True)
    session_id = fields.UUID(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    created_at = Timestamp()
    details = fields.Dict(keys=fields.String())


security_event = SecurityEvent()
