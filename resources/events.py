"""Security events: the own account's, and any user's for admins."""

import uuid

from flask import g
from flask_restful import Resource

from api.auth import authenticate, require_role
from api.errors import Problem
from api.extensions import db
from api.models import SecurityEvent, User
from api.pagination import list_binding, newest_first, page
from api.web import load_query
from schemas.events import event_list_query, events_public


def _events_page(user_id: uuid.UUID):
    query = load_query(event_list_query)
    events, next_cursor = newest_first(
        db.select(SecurityEvent).where(SecurityEvent.user_id == user_id),
        SecurityEvent.id,
        binding=list_binding("events", user_id),
        limit=query["limit"],
        cursor=query["cursor"],
    )
    return page(events_public.dump(events), next_cursor)


class MyEvents(Resource):
    method_decorators = [authenticate]

    def get(self):
        """The caller's own security events, newest first."""
        return _events_page(g.caller.id)


class UserEvents(Resource):
    method_decorators = [require_role("admin"), authenticate]

    def get(self, user_id):
        """A user's security events (admin); kept after the user is deleted."""
        known = (
            db.session.get(User, user_id) is not None
            or db.session.execute(
                db.select(SecurityEvent.id).where(SecurityEvent.user_id == user_id).limit(1)
            ).first()
        )
        if not known:
            raise Problem(404, "No such user.")
        return _events_page(user_id)
