"""Multi-factor authentication: enrolling a TOTP factor, recovery codes, turning it off, and
an admin's reset. The second log-in step is a session's (resources/sessions.py)."""

from flask import g
from flask_restful import Resource

from api import accounts, mfa
from api.http.auth import authenticate, require_role
from api.http.limits import log_in_limit
from api.http.operation import body, operation, other_responses, response
from schemas.mfa import (
    code_request,
    enrolment_request,
    mfa_disable_request,
    password_and_code,
    recovery_codes,
    totp_enrolment,
)

_ON_ALREADY = {409: "Two-factor authentication is on already: disable it first."}
_NOT_ON = {404: "Two-factor authentication is not on for this account."}


class MyTotp(Resource):
    @authenticate
    @operation("enrolTotp")
    @body(enrolment_request)
    @response(totp_enrolment, 201)
    @other_responses(_ON_ALREADY)
    @log_in_limit
    def post(self, confirmation):
        """Start enrolling a TOTP factor (it replaces an unconfirmed one)."""
        return mfa.start_enrolment(accounts.get_user(g.caller.id), **confirmation)

    @authenticate
    @operation("disableTotp")
    @body(mfa_disable_request)
    @response(None, 204)
    @other_responses(_NOT_ON)
    @log_in_limit
    def delete(self, confirmation):
        """Turn two-factor authentication off (password and a code or a recovery code)."""
        mfa.disable(accounts.get_user(g.caller.id), **confirmation)


class MyTotpConfirmation(Resource):
    @authenticate
    @operation("confirmTotp")
    @body(code_request)
    @response(recovery_codes)
    @other_responses({409: "No factor awaits confirmation, or MFA is on already."})
    @log_in_limit
    def post(self, confirmation):
        """Turn the enrolled factor on with a first code; answers the recovery codes, once."""
        codes = mfa.confirm_enrolment(accounts.get_user(g.caller.id), **confirmation)
        return {"recovery_codes": codes}


class MyRecoveryCodes(Resource):
    @authenticate
    @operation("regenerateRecoveryCodes")
    @body(password_and_code)
    @response(recovery_codes)
    @other_responses(_NOT_ON)
    @log_in_limit
    def post(self, confirmation):
        """A new set of recovery codes; the old set stops working."""
        user = accounts.get_user(g.caller.id)
        return {"recovery_codes": mfa.regenerate_recovery_codes(user, **confirmation)}


class UserMfa(Resource):
    @authenticate
    @require_role("admin")
    @operation("resetUserMfa")
    @response(None, 204)
    @other_responses({404: "No such user."})
    def delete(self, user_id):
        """Remove a user's second factor (admin); revokes the user's sessions."""
        accounts.reset_mfa(accounts.get_user(user_id), by=g.caller.id)
