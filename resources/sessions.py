"""Sessions: log-in, refresh, listing and revocation."""

from flask import current_app, g, request
from flask_restful import Resource

from api import accounts
from api.auth import authenticate, issue_access_token
from api.email_address import InvalidEmail, normalise_email
from api.models import Session, User
from api.pagination import list_binding, newest_first, page
from api.ratelimit import auth_limit
from api.web import client_ip, load_body, load_query
from schemas.sessions import (
    login_request,
    refresh_request,
    revoke_all_query,
    session_list_query,
    session_public,
    sessions_public,
)
from schemas.users import user_public


def attempted_account() -> str | None:
    """The account a log-in attempt names (its normalised email), for the per-account limit."""
    body = request.get_json(silent=True)
    email = body.get("email") if isinstance(body, dict) else None
    if not isinstance(email, str):
        return None
    try:
        return normalise_email(email)
    except InvalidEmail:  # refused with 422 by the schema, before any password is checked
        return None


def tokens(user: User, session: Session, refresh_token: str) -> dict:
    """The body of a successful log-in or refresh."""
    access_token, expires_in = issue_access_token(user, session)
    g.issued_session_id = session.id  # so that the session is marked `current`
    refresh_ttl = current_app.config["COFFER_REFRESH_TOKEN_TTL"]
    return {
        "access_token": access_token,
        "token_type": "Bearer",
        "expires_in": expires_in,
        "refresh_token": refresh_token,
        "refresh_expires_in": refresh_ttl,
        "session": session_public.dump(session),
        "user": user_public.dump(user),
    }


class SessionList(Resource):
    method_decorators = {
        "get": [authenticate],
        "delete": [authenticate],
        "post": [auth_limit(accounts.LOG_IN, account=attempted_account)],
    }

    def post(self):
        """Log in: a new session with an access token and a refresh token."""
        body = load_body(login_request)
        user, session, refresh_token = accounts.log_in(
            email=body["email"],
            password=body["password"],
            device_name=body.get("device_name"),
            user_agent=request.user_agent.string,
            ip=client_ip(),
        )
        return tokens(user, session, refresh_token), 201

    def get(self):
        """The caller's active sessions, newest first."""
        query = load_query(session_list_query)
        sessions, next_cursor = newest_first(
            accounts.active_sessions(g.caller.id),
            Session.id,
            binding=list_binding("sessions", g.caller.id),
            limit=query["limit"],
            cursor=query["cursor"],
        )
        return page(sessions_public.dump(sessions), next_cursor)

    def delete(self):
        """Revoke all own sessions (`?keep_current=true` keeps this one)."""
        query = load_query(revoke_all_query)
        accounts.end_sessions(
            g.caller.id, keep=g.caller.session_id if query["keep_current"] else None
        )
        return None, 204


class SessionRefresh(Resource):
    method_decorators = [auth_limit("refresh")]

    def post(self):
        """Exchange a refresh token for new tokens; the old refresh token stops working."""
        body = load_body(refresh_request)
        user, session, refresh_token = accounts.refresh(body["refresh_token"])
        return tokens(user, session, refresh_token)


class CurrentSession(Resource):
    method_decorators = [authenticate]

    def get(self):
        """The session of the presented token."""
        return session_public.dump(accounts.get_session(g.caller.id, g.caller.session_id))

    def delete(self):
        """Log out."""
        accounts.end_session(accounts.get_session(g.caller.id, g.caller.session_id))
        return None, 204


class SessionItem(Resource):
    method_decorators = [authenticate]

    def get(self, session_id):
        """One own active session; another user's is 404."""
        return session_public.dump(accounts.get_session(g.caller.id, session_id))

    def delete(self, session_id):
        """Revoke one own session."""
        accounts.end_session(accounts.get_session(g.caller.id, session_id))
        return None, 204
