"""Sharing data: collection policies, grants, groups and their members."""

from marshmallow import Schema, fields, validate

from api.constants import CREATE_POLICIES, GRANT_ACCESS, GRANTEE_PATTERN, READ_POLICIES
from schemas.common import Timestamp

# A grant's grantee, as a path parameter documents it.
grantee_field = fields.String(
    validate=validate.Regexp(GRANTEE_PATTERN), metadata={"description": "user:<id> or group:<id>"}
)


class PolicyWrite(Schema):
    """Body of PUT /collections/{name}: both fields are required."""

    read = fields.String(required=True, validate=validate.OneOf(READ_POLICIES))
    create = fields.String(required=True, validate=validate.OneOf(CREATE_POLICIES))


class PolicyPublic(Schema):
    name = fields.String()
    read = fields.String(metadata={"enum": list(READ_POLICIES)})
    create = fields.String(metadata={"enum": list(CREATE_POLICIES)})
    updated_at = Timestamp(allow_none=True, metadata={"description": "null: the default policy"})


class CollectionSummary(PolicyPublic):
    """A collection in the admins' list: its policy and how many records it holds."""

    count = fields.Integer()


class GrantWrite(Schema):
    access = fields.String(required=True, validate=validate.OneOf(GRANT_ACCESS))


class GrantPublic(Schema):
    grantee = fields.String(metadata={"pattern": "^(user|group):[0-9a-f-]{36}$"})
    access = fields.String(metadata={"enum": list(GRANT_ACCESS)})
    created_at = Timestamp()


class GroupWrite(Schema):
    """Body of POST and PATCH /groups."""

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))


class GroupPublic(Schema):
    id = fields.UUID()
    name = fields.String()
    owner_id = fields.UUID()
    created_at = Timestamp()


class MemberPublic(Schema):
    user_id = fields.UUID()
    email = fields.String()
    added_at = Timestamp()


policy_write = PolicyWrite()
policy_public = PolicyPublic()
collection_summary = CollectionSummary()
grant_write = GrantWrite()
grant_public = GrantPublic()
group_write = GroupWrite()
group_public = GroupPublic()
member_public = MemberPublic()
