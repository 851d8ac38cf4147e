"""Account e-mail: verification mails and their confirmation, password resets by mail."""

from flask import g
from flask_restful import Resource

from api import account_email
from api.account_email import MAIL
from api.http.auth import authenticate
from api.http.limits import auth_limit
from api.http.operation import body, operation, other_responses, response
from schemas.account_email import (
    accepted,
    email_verification,
    password_reset_confirmation,
    password_reset_request,
)
from schemas.users import user_public

_INVALID = {400: "The link or code is invalid, used or expired (one answer for all three)."}
_MAILS = {429: "Too many mails to this address (COFFER_RATE_LIMIT_MAIL), or from this client."}


class MyEmailVerification(Resource):
    @authenticate
    @operation("sendEmailVerification")
    @auth_limit(MAIL)
    @response(accepted, 202)
    @other_responses({409: "The address is verified already.", **_MAILS})
    def post(self):
        """(Re)send the verification mail for the own address."""
        return {"detail": account_email.resend_verification(g.caller)}


class EmailVerification(Resource):
    @operation("verifyEmail")
    @auth_limit("email-verification")
    @body(email_verification)
    @response(user_public)
    @other_responses({**_INVALID, 409: "The new address of a change got an account meanwhile."})
    def post(self, proof):
        """Verify an address, or complete an e-mail change, with a mailed token or code."""
        return account_email.verify_email(**proof)


class PasswordResets(Resource):
    @operation("requestPasswordReset")
    @auth_limit(MAIL)
    @body(password_reset_request)
    @response(accepted, 202)
    @other_responses(_MAILS)
    def post(self, reset):
        """Mail a password reset link + code to the address.

        The answer is the same, and takes about as long, whether the address has an account or
        not; only an existing, active account gets the mail. The address is normalised as at
        registration.
        """
        return {"detail": account_email.request_password_reset(reset["email"])}


class PasswordResetConfirmation(Resource):
    @operation("confirmPasswordReset")
    @auth_limit("password-reset")
    @body(password_reset_confirmation)
    @response(None, 204)
    @other_responses(_INVALID)
    def post(self, confirmation):
        """Set a new password with a mailed token or code; revokes every session."""
        account_email.confirm_password_reset(**confirmation)
