"""Sessions: log-in, refresh, listing and revocation."""

from flask import g, request
from flask_restful import Resource

from api import sessions
from api.accounts import LOG_IN
from api.http.auth import authenticate
from api.http.limits import auth_limit, log_in_limit
from api.http.operation import arguments, body, operation, other_responses, paginated, response
from api.http.problems import MfaCodeProblemSchema, MfaRequiredProblemSchema
from api.http.web import client_ip
from schemas.common import page_query
from schemas.mfa import mfa_log_in
from schemas.sessions import (
    login_request,
    refresh_request,
    revoke_all_query,
    session_public,
    tokens,
)

_SESSION = {"session_id": "$response.body#/items/0/id"}
_UNVERIFIED_LOG_IN = {
    403: "The password was right, but the account's address is unverified and "
    "COFFER_REQUIRE_VERIFIED_EMAIL is on: `type` is `urn:coffer:problem:email-not-verified`."
}
_UNVERIFIED_REFRESH = {
    403: "The account's address is unverified and COFFER_REQUIRE_VERIFIED_EMAIL is on: no "
    "new tokens until it is verified (`type` is `urn:coffer:problem:email-not-verified`); "
    "the refresh token stays as it was."
}
_NO_SESSION = {404: "No such session of yours, or one that has ended."}
_MFA_REQUIRED = (
    "The email or password is incorrect; or the password is right and the account has a "
    "second factor: `type` is `urn:coffer:problem:mfa-required`, with the `mfa_token` to POST "
    "to /sessions/mfa with a code, and the `methods` it takes.",
    MfaRequiredProblemSchema(),
)


class SessionList(Resource):
    @operation("logIn")
    @auth_limit(LOG_IN)
    @body(login_request)
    @response(tokens, 201)
    @other_responses({401: _MFA_REQUIRED, **_UNVERIFIED_LOG_IN})
    @log_in_limit
    def post(self, credentials):
        """Log in."""
        return sessions.log_in(**credentials, user_agent=request.user_agent.string, ip=client_ip())

    @authenticate
    @operation("listSessions", links=dict.fromkeys(("getSession", "revokeSession"), _SESSION))
    @arguments(page_query)
    @paginated(session_public)
    def get(self, query):
        """Own active sessions, newest first."""
        return sessions.sessions_page(g.caller, limit=query["limit"], cursor=query["cursor"])

    @authenticate
    @operation("revokeAllSessions")
    @arguments(revoke_all_query)
    @response(None, 204)
    def delete(self, query):
        """Revoke all own sessions (`?keep_current=true` keeps this one)."""
        keep = g.caller.session_id if query["keep_current"] else None
        sessions.end_sessions(g.caller.id, keep=keep)


class SessionRefresh(Resource):
    @operation("refreshSession")
    @auth_limit("refresh")
    @body(refresh_request)
    @response(tokens)
    @other_responses(
        {401: "The refresh token is invalid, expired or revoked.", **_UNVERIFIED_REFRESH}
    )
    def post(self, presented):
        """Rotate a refresh token; the old one stops working."""
        return sessions.refresh(presented["refresh_token"])


class SessionMfa(Resource):
    @operation("completeMfaLogIn")
    @auth_limit("mfa")
    @body(mfa_log_in)
    @response(tokens, 201)
    @other_responses(
        {
            401: (
                "The mfa_token is unknown, used or expired; or the code is wrong, and "
                "`attempts_left` says how many more the mfa_token takes (5 in all).",
                MfaCodeProblemSchema(),
            )
        }
    )
    @log_in_limit
    def post(self, second_step):
        """Log in, second step: a code of the authenticator app or a recovery code."""
        return sessions.complete_mfa_log_in(**second_step)


class CurrentSession(Resource):
    @authenticate
    @operation("getCurrentSession")
    @response(session_public)
    def get(self):
        """The session of the presented token."""
        return sessions.get_session(g.caller, g.caller.session_id)

    @authenticate
    @operation("logOut")
    @response(None, 204)
    def delete(self):
        """Log out."""
        sessions.end_session(sessions.get_session(g.caller, g.caller.session_id))


class SessionItem(Resource):
    @authenticate
    @operation("getSession")
    @response(session_public)
    @other_responses(_NO_SESSION)
    def get(self, session_id):
        """One own active session."""
        return sessions.get_session(g.caller, session_id)

    @authenticate
    @operation("revokeSession")
    @response(None, 204)
    @other_responses(_NO_SESSION)
    def delete(self, session_id):
        """Revoke one own session."""
        sessions.end_session(sessions.get_session(g.caller, session_id))
