"""Session schemas: log-in and refresh requests, sessions and token responses."""

from flask import g
from marshmallow import Schema, fields, validate

from schemas.common import PageQuery, Timestamp
from schemas.users import EmailLookup


class LoginRequest(Schema):
    email = EmailLookup(required=True, validate=validate.Length(min=1, max=320))
    password = fields.String(required=True, load_only=True, validate=validate.Length(max=4096))
    device_name = fields.String(allow_none=True, validate=validate.Length(max=100))


class RefreshRequest(Schema):
    refresh_token = fields.String(required=True, validate=validate.Length(min=1, max=512))


class SessionPublic(Schema):
    id = fields.UUID()
    device_name = fields.String(allow_none=True)
    user_agent = fields.String(allow_none=True)
    ip = fields.String(allow_none=True)
    created_at = Timestamp()
    last_used_at = Timestamp()
    expires_at = Timestamp()
    current = fields.Method("is_current")

    def is_current(self, session) -> bool:
        caller = g.get("caller")  # an authenticated request, or a log-in / refresh
        current = caller.session_id if caller is not None else g.get("issued_session_id")
        return current == session.id


class RevokeAllQuery(Schema):
    keep_current = fields.Boolean(load_default=False, truthy={"true", "1"}, falsy={"false", "0"})


login_request = LoginRequest()
refresh_request = RefreshRequest()
session_public = SessionPublic()
sessions_public = SessionPublic(many=True)
session_list_query = PageQuery()
revoke_all_query = RevokeAllQuery()
