"""User schemas: what clients may send (UserCreate, …) and what they get back (UserPublic)."""

from marshmallow import Schema, ValidationError, fields, pre_load, validate, validates_schema

from api.auth import password_problems
from api.models import ROLES
from schemas.common import PageQuery, QueryBoolean, StrictBoolean, Timestamp

_email = {"validate": validate.Length(max=320)}
_name = {"allow_none": True, "validate": validate.Length(max=200)}
# Length is checked by the policy (in code points, never truncated); this only caps the work.
_password = {"required": True, "load_only": True, "validate": validate.Length(min=1, max=4096)}
# What the spec documents for a new password: the policy's defaults.
_new_password = {
    **_password,
    "metadata": {
        "minLength": 12,
        "maxLength": 256,
        "description": "At least COFFER_PASSWORD_MIN_LENGTH (default 12) and at most 256 "
        "characters; not the email; not a common password.",
    },
}


def _normalise_email(data):
    if isinstance(data, dict) and isinstance(data.get("email"), str):
        data = {**data, "email": data["email"].strip().lower()}
    return data


class UserPublic(Schema):
    id = fields.UUID()
    email = fields.String()
    name = fields.String(allow_none=True)
    role = fields.String()
    is_active = fields.Boolean()
    created_at = Timestamp()
    updated_at = Timestamp()


class UserCreate(Schema):
    email = fields.Email(required=True, **_email)
    password = fields.String(**_new_password)
    name = fields.String(**_name)

    @pre_load
    def normalise(self, data, **kwargs):
        return _normalise_email(data)

    @validates_schema
    def password_policy(self, data, **kwargs):
        problems = password_problems(data.get("password", ""), data.get("email"))
        if problems:
            raise ValidationError(problems, "password")


class UserSelfUpdate(Schema):
    name = fields.String(**_name)
    email = fields.Email(**_email)
    current_password = fields.String(load_only=True, validate=validate.Length(max=4096))

    @pre_load
    def normalise(self, data, **kwargs):
        return _normalise_email(data)


class UserAdminUpdate(Schema):
    name = fields.String(**_name)
    email = fields.Email(**_email)
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = StrictBoolean()

    @pre_load
    def normalise(self, data, **kwargs):
        return _normalise_email(data)


class PasswordChange(Schema):
    current_password = fields.String(**_password)
    new_password = fields.String(**_new_password)


class PasswordConfirmation(Schema):
    password = fields.String(**_password)


class UserListQuery(PageQuery):
    email = fields.String(validate=validate.Length(min=1, max=320))
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = QueryBoolean()


user_public = UserPublic()
users_public = UserPublic(many=True)
user_create = UserCreate()
user_self_update = UserSelfUpdate()
user_admin_update = UserAdminUpdate()
password_change = PasswordChange()
password_confirmation = PasswordConfirmation()
user_list_query = UserListQuery()
