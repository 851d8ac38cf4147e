"""Multi-factor authentication schemas: enrolment, codes, recovery codes, the second log-in
step."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from schemas.users import step_up_code_field

_password = {"required": True, "load_only": True, "validate": validate.Length(min=1, max=4096)}
_code = {"validate": validate.Length(min=1, max=64)}


class EnrolmentRequest(Schema):
    password = fields.String(**_password)


class TotpEnrolment(Schema):
    """A new factor, not active until a first code confirms it."""

    secret = fields.String(
        required=True, metadata={"description": "Base32 secret, for typing into an app."}
    )
    otpauth_uri = fields.String(
        required=True,
        metadata={"description": "otpauth://totp/… URI that authenticator apps scan."},
    )
    qr_svg = fields.String(
        required=True, metadata={"description": "The URI as an SVG QR code, to show as is."}
    )


class CodeRequest(Schema):
    code = fields.String(
        required=True,
        metadata={"description": "A current 6-digit code of the authenticator app."},
        **_code,
    )


class RecoveryCodes(Schema):
    recovery_codes = fields.List(
        fields.String(),
        required=True,
        metadata={"description": "10 single-use codes, shown this once."},
    )


class PasswordAndCode(Schema):
    password = fields.String(**_password)
    code = step_up_code_field(required=True)


class MfaDisableRequest(Schema):
    password = fields.String(**_password)
    code = step_up_code_field(
        required=True,
        metadata={"description": "A current code of the authenticator app, or a recovery code."},
    )


class MfaLogIn(Schema):
    """The second step of a log-in: the problem's mfa_token and one code."""

    mfa_token = fields.String(required=True, validate=validate.Length(min=1, max=512))
    code = fields.String(metadata={"description": "A current 6-digit TOTP code."}, **_code)
    recovery_code = fields.String(
        metadata={"description": "One of the recovery codes (single-use)."}, **_code
    )

    @validates_schema
    def one_code(self, data, **kwargs):
        if ("code" in data) == ("recovery_code" in data):
            raise ValidationError("Send either `code` or `recovery_code`.", "code")


enrolment_request = EnrolmentRequest()
totp_enrolment = TotpEnrolment()
code_request = CodeRequest()
recovery_codes = RecoveryCodes()
password_and_code = PasswordAndCode()
mfa_disable_request = MfaDisableRequest()
mfa_log_in = MfaLogIn()
