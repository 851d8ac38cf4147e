"""User schemas: what clients may send (UserCreate, …) and what they get back (UserPublic)."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from api.constants import ROLES
from api.email_address import InvalidEmail, normalise_email
from api.password_rules import password_problems
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


# A second-factor code next to a password: required when the account has MFA on.
_step_up_code = {
    "load_only": True,
    "validate": validate.Length(max=64),
    "metadata": {
        "description": "With two-factor authentication on: a current code of the "
        "authenticator app (422 naming `code` when it is missing or wrong)."
    },
}


def step_up_code_field(**options) -> fields.String:
    return fields.String(**{**_step_up_code, **options})


def new_password_field() -> fields.String:
    """A new password, with the policy's defaults documented (the policy itself is checked
    where the account's address is known)."""
    return fields.String(**_new_password)


NORMALISED = (
    "Normalised as accounts are stored: trimmed, Unicode NFKC, lower-cased (look-alike "
    "spellings of one address are one address); invisible format characters (Unicode Cf, "
    "e.g. zero-width spaces) are 422."
)


class _Normalised:
    """Loads an e-mail address in the one form accounts are stored and looked up in, and
    says so in the spec (after what the field's own description says)."""

    def __init__(self, *args, metadata: dict | None = None, **kwargs):
        said = (metadata or {}).get("description")
        described = {"description": f"{said} {NORMALISED}" if said else NORMALISED}
        super().__init__(*args, metadata={**(metadata or {}), **described}, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            return normalise_email(text)
        except InvalidEmail as exc:
            raise ValidationError(str(exc)) from None


class EmailAddress(_Normalised, fields.Email):
    """An address to store: normalised, then validated as an address."""


class EmailLookup(_Normalised, fields.String):
    """An address to look an account up by (log-in, filters): normalised, else any string."""


class UserPublic(Schema):
    id = fields.UUID()
    email = fields.String()
    email_verified = fields.Boolean(
        metadata={"description": "Whether a mail to `email` reached its reader (a link or code)."}
    )
    pending_email = fields.String(
        allow_none=True,
        metadata={"description": "The new address of an e-mail change that awaits confirmation."},
    )
    mfa_enabled = fields.Boolean(
        metadata={"description": "Whether log-in asks for a second factor (TOTP)."}
    )
    name = fields.String(allow_none=True)
    role = fields.String()
    is_active = fields.Boolean()
    created_at = Timestamp()
    updated_at = Timestamp()


class UserCreate(Schema):
    email = EmailAddress(required=True, **_email)
    password = fields.String(**_new_password)
    name = fields.String(**_name)

    @validates_schema
    def password_policy(self, data, **kwargs):
        problems = password_problems(data.get("password", ""), data.get("email"))
        if problems:
            raise ValidationError(problems, "password")


class UserSelfUpdate(Schema):
    name = fields.String(**_name)
    email = EmailAddress(
        **_email,
        metadata={
            "description": "A new address starts a change (202): confirmed by the link + code "
            "mailed to it, it becomes `email`; until then it is `pending_email`."
        },
    )
    current_password = fields.String(load_only=True, validate=validate.Length(max=4096))
    code = step_up_code_field()


class UserAdminUpdate(Schema):
    name = fields.String(**_name)
    email = EmailAddress(
        **_email,
        metadata={
            "description": "Applies at once and unconfirmed (an admin's change): "
            "`email_verified` becomes false, and no mail is sent."
        },
    )
    role = fields.String(validate=validate.OneOf(ROLES))
    is_active = StrictBoolean()


class PasswordChange(Schema):
    current_password = fields.String(**_password)
    new_password = fields.String(**_new_password)
    code = step_up_code_field()


class PasswordConfirmation(Schema):
    password = fields.String(**_password)
    code = step_up_code_field()


class UserListQuery(PageQuery):
    email = EmailLookup(validate=validate.Length(min=1, max=320))
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
