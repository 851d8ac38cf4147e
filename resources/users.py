"""Users: registration, the own profile, and admin management."""

from flask import g
from flask_restful import Resource

from api import accounts, ratelimit
from api.account_email import MAIL
from api.http.auth import authenticate, require_role
from api.http.idempotency import idempotent
from api.http.limits import auth_limit, log_in_limit
from api.http.operation import (
    arguments,
    body,
    operation,
    other_responses,
    paginated,
    response,
)
from api.http.web import V1, client_ip
from schemas.users import (
    password_change,
    password_confirmation,
    user_admin_update,
    user_create,
    user_list_query,
    user_public,
    user_self_update,
)

_TAKEN = {409: "The email address is already registered."}
_CHANGE_STARTED = (
    "A change of email has started: `email` is unchanged and `pending_email` is the new "
    "address until the link + code mailed to it is confirmed (a name applies at once)."
)
# Users are linked from the list that shows them to their reader (an admin), not from
# registration: its Location names an account that only its owner and admins may read.
_USER = {"user_id": "$response.body#/items/0/id"}
_USER_LINKS = dict.fromkeys(("getUser", "updateUser", "deleteUser", "listUserEvents"), _USER)


class UserList(Resource):
    @operation("registerUser")
    @auth_limit("registration")
    @idempotent
    @body(user_create)
    @response(user_public, 201, headers=("Location",))
    @other_responses(_TAKEN)
    def post(self, new):
        """Register a user, and mail a link + code that verifies the address.

        The address is stored normalised: trimmed, Unicode NFKC, lower-cased, so that
        look-alike spellings of one address are one account; an address with invisible format
        characters (zero-width spaces, direction marks: Unicode Cf) is 422.
        """
        user = accounts.create_user(**new)
        return user, {"Location": f"{V1}/users/{user.id}"}

    @authenticate
    @require_role("admin")
    @operation("listUsers", links=_USER_LINKS)
    @arguments(user_list_query)
    @paginated(user_public)
    def get(self, query):
        """List users, newest first (admin)."""
        return accounts.users_page(g.caller, query, limit=query["limit"], cursor=query["cursor"])


class Me(Resource):
    @authenticate
    @operation("getMe")
    @response(user_public)
    def get(self):
        """Own profile."""
        return g.caller  # as the auth check read it: no second query

    @authenticate
    @operation("updateMe")
    @body(user_self_update)
    @response(user_public, also={202: _CHANGE_STARTED})
    @log_in_limit
    @other_responses({**_TAKEN, 429: "Too many mails to the new address, or from this client."})
    def patch(self, changes):
        """Change own name, or start a change of email (which needs current_password)."""
        if "email" in changes:  # a mail-sending route (API.md: Account e-mail)
            ratelimit.enforce_auth_limit(MAIL, client_ip())
        confirmation = {
            "current_password": changes.pop("current_password", None),
            "code": changes.pop("code", None),
        }
        user = accounts.update_own_profile(g.caller, changes, **confirmation)
        if changes.get("email", user.email) != user.email:
            return user, {}, 202
        return user

    @authenticate
    @operation("deleteMe")
    @body(password_confirmation)
    @response(None, 204)
    @log_in_limit
    def delete(self, confirmation):
        """Delete own account, its sessions and its records."""
        accounts.delete_own_account(
            g.caller, password=confirmation["password"], code=confirmation.get("code")
        )


class MyPassword(Resource):
    @authenticate
    @operation("changePassword")
    @body(password_change)
    @response(None, 204)
    @log_in_limit
    def put(self, change):
        """Change own password; revokes every other session."""
        accounts.change_password(
            accounts.get_user(g.caller.id),
            current=change["current_password"],
            new=change["new_password"],
            keep_session=g.caller.session_id,
            code=change.get("code"),
        )


class UserItem(Resource):
    @authenticate
    @operation("getUser")
    @response(user_public)
    @other_responses({404: "No such user, or another user's (to anyone but an admin)."})
    def get(self, user_id):
        """One user (admin, or the user itself)."""
        return accounts.visible_user(g.caller, user_id)

    @authenticate
    @require_role("admin")
    @operation("updateUser")
    @body(user_admin_update)
    @response(user_public)
    @other_responses({404: "No such user.", **_TAKEN})
    def patch(self, changes, user_id):
        """Change a user (admin); a new role or deactivation revokes its sessions.

        A new `email` applies at once, unconfirmed: `email_verified` becomes false, no mail is
        sent, and every link or code mailed for the old address (and a pending change) dies.
        """
        return accounts.update_user(accounts.get_user(user_id), changes, by=g.caller.id)

    @authenticate
    @require_role("admin")
    @operation("deleteUser")
    @response(None, 204)
    @other_responses({404: "No such user."})
    def delete(self, user_id):
        """Delete a user with its sessions and records (admin)."""
        accounts.delete_user(accounts.get_user(user_id), by=g.caller.id)
