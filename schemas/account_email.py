"""Account e-mail schemas: confirming a mailed link or code, asking for a password reset."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.users import EmailAddress, EmailLookup, new_password_field

CODE_LENGTH = 6
_EITHER = "Send either `token`, or `email` and `code`."


class _TokenOrCode(Schema):
    """`{token}` from a link, or `{email, code}` from a mail read on another device."""

    token = fields.String(
        validate=validate.Length(min=1, max=512),
        metadata={"description": "From the link: what follows `#token=`. Or email and code."},
    )
    email = EmailLookup(
        validate=validate.Length(min=1, max=320),
        metadata={"description": "The address the mail went to; with `code`, not `token`."},
    )
    code = fields.String(
        validate=[
            validate.Length(equal=CODE_LENGTH),
            validate.Regexp(f"^[0-9]{{{CODE_LENGTH}}}$", error="Must be exactly 6 digits."),
        ],
        metadata={"description": "The 6-digit code of the mail; with `email`, not `token`."},
    )

    @validates_schema
    def token_or_code(self, data, **kwargs):
        if "token" in data:
            both = [name for name in ("email", "code") if name in data]
            if both:
                raise ValidationError({name: [_EITHER] for name in both})
        else:
            missing = [name for name in ("email", "code") if name not in data]
            if missing:
                raise ValidationError({name: [f"Missing. {_EITHER}"] for name in missing})


class EmailVerification(_TokenOrCode):
    """Verify an address, or confirm an e-mail change."""


class PasswordResetConfirmation(_TokenOrCode):
    new_password = new_password_field()


class PasswordResetRequest(Schema):
    email = EmailAddress(required=True, validate=validate.Length(max=320))


class Accepted(Schema):
    """A request that is under way: a mail is queued."""

    detail = fields.String(required=True)


email_verification = EmailVerification()
password_reset_confirmation = PasswordResetConfirmation()
password_reset_request = PasswordResetRequest()
accepted = Accepted()
