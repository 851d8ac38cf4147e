"""Security event schemas."""

from marshmallow import Schema, fields

from schemas.common import PageQuery, Timestamp


class SecurityEventPublic(Schema):
    id = fields.UUID()
    type = fields.String()
    user_id = fields.UUID(allow_none=True)
    session_id = fields.UUID(allow_none=True)
    ip = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    created_at = Timestamp()
    details = fields.Dict(keys=fields.String())


events_public = SecurityEventPublic(many=True)
event_list_query = PageQuery()
