"""Session schemas: log-in and refresh requests, sessions and token responses."""

from marshmallow import Schema, fields, validate

from schemas.common import PageQuery, Timestamp
from schemas.users import EmailLookup, UserPublic


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
    current = fields.Boolean(metadata={"description": "The session of the presented token."})


class Tokens(Schema):
    """What a log-in or a refresh answers."""

    access_token = fields.String(
        required=True, metadata={"description": "JWT, sent as a Bearer token"}
    )
    token_type = fields.String(required=True, validate=validate.OneOf(["Bearer"]))
    expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    refresh_token = fields.String(required=True)
    refresh_expires_in = fields.Integer(required=True, metadata={"description": "seconds"})
    session = fields.Nested(SessionPublic, required=True)
    user = fields.Nested(UserPublic, required=True)


class RevokeAllQuery(Schema):
    keep_current = fields.Boolean(load_default=False, truthy={"true", "1"}, falsy={"false", "0"})


login_request = LoginRequest()
refresh_request = RefreshRequest()
session_public = SessionPublic()
tokens = Tokens()
session_list_query = PageQuery()
revoke_all_query = RevokeAllQuery()
