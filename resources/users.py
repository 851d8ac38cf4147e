"""Users: registration, the own profile, and admin management."""

from flask import g
from flask_restful import Resource

from api import accounts
from api.auth import authenticate, require_role
from api.errors import Problem
from api.idempotency import idempotent
from api.models import User
from api.pagination import list_binding, newest_first, page
from api.ratelimit import auth_limit
from api.web import V1, load_body, load_query
from schemas.users import (
    password_change,
    password_confirmation,
    user_admin_update,
    user_create,
    user_list_query,
    user_public,
    user_self_update,
    users_public,
)


def _created(user: User):
    return user_public.dump(user), 201, {"Location": f"{V1}/users/{user.id}"}


class UserList(Resource):
    method_decorators = {
        "get": [require_role("admin"), authenticate],
        "post": [idempotent, auth_limit("registration")],
    }

    def post(self):
        """Register a new user."""
        return _created(accounts.create_user(**load_body(user_create)))

    def get(self):
        """List users, newest first (admin)."""
        query = load_query(user_list_query)
        users, next_cursor = newest_first(
            accounts.user_list(query),
            User.id,
            binding=list_binding("users", g.caller.id, query),
            limit=query["limit"],
            cursor=query["cursor"],
        )
        return page(users_public.dump(users), next_cursor)


class Me(Resource):
    method_decorators = [authenticate]

    def get(self):
        """The caller's own profile."""
        return user_public.dump(g.caller)

    def patch(self):
        """Change the own name or email (an email change needs current_password)."""
        changes = load_body(user_self_update)
        current_password = changes.pop("current_password", None)
        user = accounts.get_user(g.caller.id)
        if "email" in changes and changes["email"] != user.email:
            accounts.require_password(user, current_password, "current_password")
        return user_public.dump(accounts.update_user(user, changes, by=g.caller.id))

    def delete(self):
        """Delete the own account, its sessions and its records."""
        body = load_body(password_confirmation)
        user = accounts.get_user(g.caller.id)
        accounts.require_password(user, body["password"], "password")
        accounts.delete_user(user, by=g.caller.id)
        return None, 204


class MyPassword(Resource):
    method_decorators = [authenticate]

    def put(self):
        """Change the own password; every other session is revoked."""
        body = load_body(password_change)
        accounts.change_password(
            accounts.get_user(g.caller.id),
            current=body["current_password"],
            new=body["new_password"],
            keep_session=g.caller.session_id,
        )
        return None, 204


class UserItem(Resource):
    method_decorators = {
        "get": [authenticate],
        "patch": [require_role("admin"), authenticate],
        "delete": [require_role("admin"), authenticate],
    }

    def get(self, user_id):
        """One user: admins see anyone, a user only itself (anyone else is 404)."""
        if g.caller.role != "admin" and g.caller.id != user_id:
            raise Problem(404, "No such user.")
        return user_public.dump(accounts.get_user(user_id))

    def patch(self, user_id):
        """Change a user's name, email, role or active flag (admin)."""
        user = accounts.get_user(user_id)
        changes = load_body(user_admin_update)
        return user_public.dump(accounts.update_user(user, changes, by=g.caller.id))

    def delete(self, user_id):
        """Delete a user with its sessions and records (admin)."""
        accounts.delete_user(accounts.get_user(user_id), by=g.caller.id)
        return None, 204
